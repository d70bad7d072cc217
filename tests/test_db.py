"""The Database layer against a real PostgreSQL: idempotent loads, pool recovery, identifiers."""

from __future__ import annotations

import threading

import psycopg2
import pytest
from psycopg2 import sql

from etl.core.errors import ConfigError
from etl.core.models import transform
from etl.store.db import Database
from etl.store.events import Events
from etl.store.rejects import RejectRow, Rejects
from sources.synthetic.flows.events import record
from tests.staged import stage_events, stage_page


def make_events(n: int, seed: int = 1):
    events, rejects = transform(record(seed, 0.0, i) for i in range(n))
    assert not rejects
    return events


def test_loading_the_same_events_twice_keeps_one_row_each(db):
    events = make_events(100_000)
    assert Events(db).insert(events).inserted == 100_000
    assert Events(db).insert(events).inserted == 0
    assert db.count_events() == 100_000


def test_duplicates_inside_one_batch_are_inserted_once(db):
    events = make_events(90)
    batch = events + events[:10]
    assert Events(db).insert(batch).inserted == 90
    assert db.count_events() == 90


def test_a_page_partly_loaded_inserts_the_rest_and_records_who_loaded_each_row(db):
    # The first load is the direct COPY; the second meets 120 events already there, so its COPY
    # fails on the unique index and the page goes the ON CONFLICT way: the 80 others, once.
    events = make_events(200, seed=5)
    first, who = "run\\N\r1", "flow\twith\\odd\nid"  # backslash, \N, CR, tab, newline: COPY's own escapes
    assert Events(db).insert(events[:120], loaded_by=first).inserted == 120
    assert Events(db).insert(events, loaded_by=who).inserted == 80
    assert Events(db).insert(events, loaded_by="third").inserted == 0
    rows = db.run(lambda cur: (cur.execute(
        f'SELECT loaded_by, count(*), count(loaded_at) FROM "{db.tables.name}" GROUP BY loaded_by'),
        {r[0]: (r[1], r[2]) for r in cur.fetchall()})[1])
    assert rows == {first: (120, 120), who: (80, 80)}


def test_a_batch_staged_in_several_parts_loads_each_event_once(db, monkeypatch):
    from etl.store import staging as staging_module
    from etl.store.staging import Staging

    events = make_events(1_000, seed=9)
    monkeypatch.setattr(staging_module, "PART_CHARS", 50_000)  # about 110 events a part
    staging = Staging(db)
    key = "parts-test/run/b0"
    assert stage_events(staging, key, events + events[:5])  # five events twice, across parts
    parts = db.scalar(sql.SQL("SELECT count(*) FROM {} WHERE batch_key = %s").format(db.tables.staged_batches),
                      (key,))
    assert parts >= 5
    counts = staging.load_staged(key, 1_005)
    assert (counts.staged, counts.inserted) == (1_005, 1_000)
    assert staging.load_staged(key, 1_005) == counts  # a repeated load answers from the ledger
    assert db.count_events() == 1_000


def test_a_transform_that_finds_pages_missing_stages_nothing(db):
    """Pages lost with the UNLOGGED table's contents: the transform says so and leaves nothing staged
    (nor the rejects it found on the pages it did read), so the batch is extracted again cleanly."""
    from etl.store.staging import StagedBatchMissing, Staging

    staging = Staging(db)
    key = "missing-test/run/b0"
    stage_page(staging, key, 0, [record(23, 0.0, i) for i in range(10)] + [{"event_id": "no time"}])

    def convert(cur, records):
        events, rejects = transform(records)
        Rejects(db).write([RejectRow(key=f"k{i}", record=r, reason=why) for i, (r, why) in enumerate(rejects)], cur)
        return [e.copy_row() for e in events]

    with pytest.raises(StagedBatchMissing, match="11 records staged, 20 extracted"):
        staging.transform_raw(key, 20, convert)
    assert db.count_rejects() == 0
    assert db.scalar(sql.SQL("SELECT count(*) FROM {}").format(db.tables.staged_batches)) == 0
    assert staging.transform_raw(key, 11, convert) == (11, 10)
    assert db.count_rejects() == 1


def test_derived_columns_are_stored(db):
    events, _ = transform([{"event_id": "x1", "employee_id": "bob", "timezone": "Europe/Berlin",
                            "event_time_utc": "2024-03-31T01:30:00Z", "metrics": {"heat": 3}}])
    Events(db).insert(events)
    row = db.run(lambda cur: (cur.execute(
        f'SELECT event_time::text, week::text, timezone, metrics FROM "{db.tables.name}" WHERE event_id = %s',
        ("x1",)), cur.fetchone())[1])
    assert row == ("2024-03-31 03:30:00", "2024-03-25", "Europe/Berlin", {"heat": 3})


def test_pool_recovers_after_every_backend_is_killed(db, stack):
    Events(db).insert(make_events(10, seed=2))
    before = db.get_pool_status()
    assert before["open"] and before["in_use"] == 0

    admin = psycopg2.connect(stack.settings.dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    admin.close()

    assert Events(db).insert(make_events(20, seed=2)).inserted == 10
    after = db.get_pool_status()
    assert after["replaced"] >= before["replaced"] + 1
    assert after["in_use"] == 0 and after["max"] == db.settings.db_max_conn


def test_bad_table_name_is_refused_before_any_sql(settings):
    with pytest.raises(ConfigError) as err:
        settings.replace(events_table="events; drop table x")
    assert err.value.variable == "EVENTS_TABLE"


def test_rejects_are_recorded_once(db):
    rows = [RejectRow(key="k1", record={"a": 1}, reason="event_id is missing", source="s", strategy="s-x"),
            RejectRow(key="k2", record={"b": "\x00nul"}, reason="NUL", source="s", strategy="s-x")]
    assert Rejects(db).write(rows) == 2
    assert Rejects(db).write(rows) == 0
    assert db.count_rejects() == 2


def test_health_and_concurrent_inserts_share_the_pool(db):
    assert db.health_check()
    errors: list[BaseException] = []

    def insert(seed: int) -> None:
        try:
            Events(db).insert(make_events(500, seed=seed))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(100 + i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert db.count_events() == 30 * 500
    assert db.get_pool_status()["in_use"] == 0


def test_one_instance_per_configuration(settings):
    assert Database.get(settings) is Database.get(settings)
    assert Database.get(settings.replace(events_table="other_table")) is not Database.get(settings)
