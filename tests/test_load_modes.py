"""Load modes (insert, upsert, history) where the rows are written: a changed event replaces its row
only in upsert and history, an unchanged one is not written at all, history keeps each replaced
version with its validity, and nothing is updated or kept twice, whatever is retried."""

from __future__ import annotations

import dataclasses

import pytest
from psycopg2 import sql

from etl.core.models import Event, transform
from etl.store.events import Events
from etl.store.staging import Staging
from sources.synthetic.flows.events import record
from tests.staged import stage_events

MODES = ("insert", "upsert", "history")


def events(n: int = 10, title: str = "v1", seed: int = 5) -> list[Event]:
    made, _ = transform(dict(record(seed, 0.0, i), event_properties={"title": title, "i": i}) for i in range(n))
    return made


def changed(originals: list[Event], which: range, title: str) -> list[Event]:
    return [dataclasses.replace(e, event_properties={**e.event_properties, "title": title}, _json=None)
            if i in which else e for i, e in enumerate(originals)]


def rows(db) -> dict[str, tuple]:
    """event_id -> (title, loaded_by, xmin): xmin moves when PostgreSQL writes the row again."""
    query = sql.SQL("SELECT event_id, event_properties->>'title', loaded_by, xmin::text FROM {}").format(
        db.tables.events)
    return {r[0]: r[1:] for r in db.run(lambda cur: (cur.execute(query), cur.fetchall())[1])}


def history(db) -> list[tuple]:
    query = sql.SQL("SELECT event_id, event_properties->>'title', valid_from < valid_to, replaced_by FROM {} "
                    "ORDER BY event_id, valid_to").format(db.tables.history)
    return db.run(lambda cur: (cur.execute(query), cur.fetchall())[1])


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_treats_a_changed_event_as_it_says(db, mode):
    first = events(10)
    assert Events(db).insert(first, loaded_by="wf-1", mode=mode).inserted == 10
    before = rows(db)
    second = changed(first, range(3), "v2") + events(12, seed=5)[10:]  # 3 changed, 7 the same, 2 new

    written = Events(db).insert(second, loaded_by="wf-2", mode=mode)

    after = rows(db)
    assert written.inserted == 2
    ids = [e.event_id for e in first]
    if mode == "insert":
        assert written.updated == 0 and all(after[i] == before[i] for i in ids)
    else:
        assert written.updated == 3
        assert [after[i][:2] for i in ids[:3]] == [("v2", "wf-2")] * 3
        # Unchanged events are not written at all: the same row version, the first loader.
        assert all(after[i] == before[i] for i in ids[3:])
    kept = history(db)
    assert kept == ([(i, "v1", True, "wf-2") for i in sorted(ids[:3])] if mode == "history" else [])

    again = Events(db).insert(second, loaded_by="wf-3", mode=mode)  # a third, identical run
    assert (again.inserted, again.updated) == (0, 0) and rows(db) == after and history(db) == kept


@pytest.mark.parametrize("mode", MODES)
def test_the_later_of_two_records_with_one_event_id_in_a_page_wins(db, mode):
    base = events(3)
    twice = base + [dataclasses.replace(base[1], event_properties={"title": "later"}, _json=None)]
    written = Events(db).insert(twice, loaded_by="wf-1", mode=mode)
    assert written.inserted == 3 and rows(db)[base[1].event_id][0] == "later"
    # And over a stored row: the later of two changed versions is the one kept.
    again = [dataclasses.replace(base[0], event_properties={"title": t}, _json=None) for t in ("x", "y")]
    Events(db).insert(again, loaded_by="wf-2", mode=mode)
    assert rows(db)[base[0].event_id][0] == ("v1" if mode == "insert" else "y")
    assert len(history(db)) == (1 if mode == "history" else 0)


@pytest.mark.parametrize("mode", ["upsert", "history"])
def test_a_load_that_failed_mid_page_and_ran_again_updates_and_keeps_once(db, mode):
    first = events(10)
    Events(db).insert(first, loaded_by="wf-1", mode=mode)
    second = changed(first, range(4), "v2")
    calls = []

    def crash_once(cur, written) -> None:  # the page's resume point fails to commit, the first time
        calls.append(written)
        if len(calls) == 1:
            raise RuntimeError("worker killed before the commit")

    with pytest.raises(RuntimeError):
        Events(db).insert(second, loaded_by="wf-2", mode=mode, then=crash_once)
    written = Events(db).insert(second, loaded_by="wf-2", mode=mode, then=crash_once)
    assert written.updated == 4 and calls[0] == written  # the rolled-back attempt did the same, undone
    assert len(history(db)) == (4 if mode == "history" else 0)


@pytest.mark.parametrize("mode", ["upsert", "history"])
def test_rows_loaded_before_content_hashes_are_compared_column_by_column(db, mode):
    first = events(6)
    Events(db).insert(first, loaded_by="wf-old", mode="insert")  # as an older build or insert mode left them
    assert db.scalar(sql.SQL("SELECT count(content_hash) FROM {}").format(db.tables.events)) == 0
    same = Events(db).insert(first, loaded_by="wf-2", mode=mode)
    assert (same.inserted, same.updated) == (0, 0) and {r[1] for r in rows(db).values()} == {"wf-old"}
    written = Events(db).insert(changed(first, range(2), "v2"), loaded_by="wf-3", mode=mode)
    assert written.updated == 2 and len(history(db)) == (2 if mode == "history" else 0)


@pytest.mark.parametrize("mode", MODES)
def test_a_staged_batch_loads_in_each_mode_and_a_repeat_answers_from_the_ledger(db, mode):
    staging = Staging(db)
    first = events(20)
    assert stage_events(staging, "modes/run/b0", first, hashed=mode != "insert")
    assert staging.load_staged("modes/run/b0", 20, mode=mode).inserted == 20
    second = changed(first, range(5), "v2")
    assert stage_events(staging, "modes/run/b1", second, hashed=mode != "insert")
    counts = staging.load_staged("modes/run/b1", 20, loaded_by="wf-2", mode=mode)
    assert (counts.inserted, counts.updated) == (0, 0 if mode == "insert" else 5)
    assert staging.load_staged("modes/run/b1", 20, mode=mode) == counts  # a retried load: the first counts
    assert len(history(db)) == (5 if mode == "history" else 0)


def test_the_content_hash_is_the_rows_and_sees_every_change():
    base = events(1)[0]
    same = dataclasses.replace(base, event_properties=dict(base.event_properties), _json=None)
    assert same.content_hash() == base.content_hash() and len(base.content_hash()) == 32
    for change in ({"employee_id": "someone"}, {"relation_type": "x"}, {"metrics": {"n": 1}},
                   {"event_properties": {**base.event_properties, "title": "v2"}}, {"timezone": "Europe/Berlin"}):
        assert dataclasses.replace(base, **change, _json=None).content_hash() != base.content_hash(), change


# -- through both workflows, against the sources' fixtures -----------------------------------------

TOKEN = "modes-token-7d2a"


@pytest.fixture
def github():
    from sources.github.fixture.server import GitHubFixture

    with GitHubFixture(seed=7, max_per_page=5, require_token=TOKEN) as fixture:
        yield fixture


@pytest.fixture
def launchpad():
    from sources.launchpad.fixture.server import FixtureService

    with FixtureService(seed=0) as service:  # its own: the test changes its data
        yield service


@pytest.fixture
def settings(stack, table_name, github, launchpad, tmp_path):
    return stack.settings.replace(events_table=table_name).with_env(
        GITHUB_API_URL=github.url, GITHUB_TOKEN=TOKEN, LP_WEB_ROOT=launchpad.root, LP_CACHE_DIR=str(tmp_path / "lp"))


def _busiest(db, key: str) -> str:
    query = sql.SQL("SELECT " + key + ", count(*) FROM {} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1").format(
        db.tables.events)
    return db.run(lambda cur: (cur.execute(query), cur.fetchone())[1])[0]


def _rows_of(db, key: str, value: str) -> dict[str, tuple]:
    query = sql.SQL("SELECT event_id, event_properties::text, loaded_by FROM {} WHERE " + key + " = %s").format(
        db.tables.events)
    return {r[0]: r[1:] for r in db.run(lambda cur: (cur.execute(query, (value,)), cur.fetchall())[1])}


def _all_rows(db) -> dict[str, tuple]:
    query = sql.SQL("SELECT event_id, event_properties::text, loaded_by, xmin::text FROM {}").format(db.tables.events)
    return {r[0]: r[1:] for r in db.run(lambda cur: (cur.execute(query), cur.fetchall())[1])}


@pytest.mark.parametrize("streaming", [False, True], ids=["ETLFlow", "StreamingETLFlow"])
@pytest.mark.parametrize("source", ["github", "launchpad"])
async def test_an_item_changed_at_the_source_changes_its_rows_as_each_mode_says(run_flow, db, github, launchpad,
                                                                               source, streaming):
    fields = {"streaming": True, "pages_per_call": 3} if streaming else {"batch_size": 20}
    if source == "github":
        flow = "github-issues"
        args = {"owner": "octo-org", "repo": "hello-world", "since": "2024-01-01T00:00:00+00:00",
                "until": "2026-01-01T00:00:00+00:00"}
    else:
        from sources.launchpad.fixture.world import WINDOW

        flow = "launchpad-bugs"
        args = {"member": "bob", "data_date_start": WINDOW[0].date().isoformat(),
                "data_date_end": WINDOW[1].date().isoformat()}
    first = await run_flow(flow, args, load_mode="insert", **fields)
    assert first["loaded"] > 0
    if source == "github":
        key = "event_properties->>'number'"
        item = _busiest(db, key)

        def change(n: int) -> None:
            github.edit_issue(int(item), title=f"edited {n}", add_label=f"label-{n}")
    else:
        key = "parent_item_id"
        item = _busiest(db, key)
        importances = iter(["Critical", "Wishlist", "Low"])

        def change(n: int) -> None:
            launchpad.set_importance(int(item), next(importances))
    changing = len(_rows_of(db, key, item))
    assert changing > 1, "the busiest item has several events"
    before = _all_rows(db)

    change(1)
    insert = await run_flow(flow, args, load_mode="insert", **fields)  # insert keeps the old rows
    assert (insert["loaded"], insert["updated"], insert["unchanged"]) == (0, 0, first["loaded"])
    assert _all_rows(db) == before

    upsert = await run_flow(flow, args, load_mode="upsert", **fields)  # exactly the item's rows change
    assert (upsert["loaded"], upsert["updated"], upsert["unchanged"]) == (0, changing, first["loaded"] - changing)
    after = _all_rows(db)
    replaced = {i for i in before if after[i] != before[i]}
    assert replaced == set(_rows_of(db, key, item)) and {after[i][1] for i in replaced} == {upsert["workflow_id"]}
    assert upsert["extracted"] == upsert["loaded"] + upsert["updated"] + upsert["unchanged"] + upsert["rejected"]
    again = await run_flow(flow, args, load_mode="upsert", **fields)
    assert (again["updated"], again["unchanged"]) == (0, first["loaded"]) and _all_rows(db) == after

    change(2)
    kept = await run_flow(flow, args, load_mode="history", **fields)
    assert kept["updated"] == changing
    versions = db.run(lambda cur: (cur.execute(sql.SQL(
        "SELECT event_id, event_properties::text, valid_from < valid_to, replaced_by FROM {}").format(
        db.tables.history)), cur.fetchall())[1])
    assert sorted(v[0] for v in versions) == sorted(replaced)
    assert all(v[1] == after[v[0]][0] and v[2] and v[3] == kept["workflow_id"] for v in versions)
    third = await run_flow(flow, args, load_mode="history", **fields)  # identical: nothing changes
    assert third["updated"] == 0 and db.scalar(sql.SQL("SELECT count(*) FROM {}").format(
        db.tables.history)) == changing
