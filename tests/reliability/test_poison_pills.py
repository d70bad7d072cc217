"""Poison pills: one record of each kind that used to wedge a worker, stall a flow for the whole retry
span, or be silently changed (issue 12), hidden in a 20,000-record run, batch and streaming. The
flow completes, the record is in the rejects table with its reason (or loads exactly as given, where
it is valid), no activity is retried, and a healthy flow started on the same worker meanwhile
completes too.

The records come from `poison-events`, a test-only source: the synthetic records, with record
`POSITION` replaced by the poison of the kind named by the query's seed (`SEED_BASE + n` is kind
`n`), so one registered source serves every kind and any chunk computes its own records.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from psycopg2 import sql

from sources.synthetic.flows import events as synthetic
from sources.synthetic.query import SyntheticQuery
from tests.made_up import made_up_source
from tests.reliability.checks import assert_exact, reconcile, reject_reasons, retried_activities, within

COUNT = 20_000
HEALTHY = 4_000
POSITION = 12_345
SEED_BASE = 5_000


class StopsIteration(dict):
    """A record whose own `get` raises `StopIteration`: what asyncio cannot carry out of a thread."""

    def get(self, *args: Any) -> Any:
        raise StopIteration


def _with(**fields: Any):
    def make(r: dict) -> Any:
        r.update(fields)
        return r

    return make


def _props(**fields: Any):
    def make(r: dict) -> Any:
        r["event_properties"] = dict(r["event_properties"], **fields)
        return r

    return make


#: kind -> (make(record) -> poison, the reject reason's words, or None: it loads exactly as given,
#:          the columns that must then hold what the check expects)
KINDS: dict[str, tuple[Any, str | None, dict[str, Any]]] = {
    "escaped_nul_in_id": (lambda r: _with(event_id=r["event_id"] + "\\u0000")(r), None, {}),
    "escaped_nul_in_employee": (_with(employee_id="user\\u0000"), None, {"employee_id": "user\\u0000"}),
    "escaped_nul_in_title": (_props(title="fails on \\u0000 in JSON"), None, {}),
    "hostile_record": (lambda r: StopsIteration(r), "StopIteration", {}),
    "calendar_start": (_with(event_time_utc="0001-01-01T00:00:00+01:00"), "outside the years 1 to 9999", {}),
    "calendar_end": (_with(event_time_utc="9999-12-31T23:59:59-01:00"), "outside the years 1 to 9999", {}),
    "calendar_end_tokyo": (_with(event_time_utc="9999-12-31T23:00Z", timezone="Asia/Tokyo"),
                           "outside the years 1 to 9999", {}),
    "colliding_keys": (lambda r: _with(event_properties={1: "one", "1": "uno"})(r), "of type int", {}),
    "none_key": (lambda r: _with(metrics={None: 1})(r), "of type NoneType", {}),
    "empty_list_properties": (_with(event_properties=[]), "event_properties has type list", {}),
    "zero_properties": (_with(relation_properties=0), "relation_properties has type int", {}),
    "empty_text_properties": (_with(metrics=""), "metrics has type str", {}),
    "lower_case_zone": (_with(timezone="europe/berlin"), None, {"timezone": "Europe/Berlin"}),
    "lower_case_utc": (_with(timezone="utc"), None, {"timezone": "UTC"}),
}
ORDER = list(KINDS)


def records_at(seed: int, i: int) -> Any:
    raw = synthetic.record(seed, 0.0, i)
    if i == POSITION and seed >= SEED_BASE:
        return KINDS[ORDER[seed - SEED_BASE]][0](raw)
    return raw


@pytest.fixture
def poison_source():
    """Registers `poison-events` (a `synthetic` query) for one test."""
    with made_up_source("poison-events", lambda query, settings, i: [records_at(query.seed, i)]) as name:
        yield name


def _row(db, columns: str, event_id: str) -> tuple | None:
    query = sql.SQL("SELECT " + columns + " FROM {} WHERE event_id = %s").format(db.tables.events)
    return db.run(lambda cur: (cur.execute(query, (event_id,)), cur.fetchone())[1])


def _rejected_records(db) -> list[tuple[str, Any]]:
    query = sql.SQL("SELECT reason, record FROM {}").format(db.tables.rejects)
    return db.run(lambda cur: (cur.execute(query), cur.fetchall())[1])


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
@pytest.mark.parametrize("kind", ORDER)
async def test_one_poison_record_neither_wedges_nor_stalls_nor_changes(flow_runner, client, db, poison_source,
                                                                       kind, streaming, case):
    _, reason, columns = KINDS[kind]
    seed = SEED_BASE + ORDER.index(kind)
    flow = "StreamingETLFlow" if streaming else "ETLFlow"
    fields = {"chunk_count": 4, "chunks_in_flight": 2} if streaming else {"batch_size": 5_000}
    record = case(f"poison-{kind}-{'streaming' if streaming else 'batch'}", f"Poison pill: {kind}", flow,
                  f"record {POSITION:,} of {COUNT:,} replaced by the {kind} poison", records=COUNT, **fields)

    started = time.monotonic()
    poisoned = await flow_runner.start(poison_source, {"count": COUNT, "seed": seed, "page_size": 1_000},
                                       streaming=streaming, **fields)
    # A healthy flow on the same worker, started while the poisoned one runs: it must get its slots.
    healthy = await flow_runner.start("synthetic-events", {"count": HEALTHY, "seed": seed + 1_000,
                                                           "page_size": 1_000}, streaming=streaming, **fields)
    # Guards, not timings: a clean run takes seconds; a wedged one never ends, a stalled one ~44 minutes.
    summary, healthy_summary = await within(asyncio.gather(poisoned.result(), healthy.result()), 300,
                                            flow_runner.client, [poisoned.id, healthy.id])
    seconds = round(time.monotonic() - started, 1)

    poison = records_at(seed, POSITION)
    clean = synthetic.expected_event_ids(SyntheticQuery(count=COUNT, seed=seed))
    healthy_ids = synthetic.expected_event_ids(SyntheticQuery(count=HEALTHY, seed=seed + 1_000))
    expected = (clean - {f"syn-{seed}-{POSITION}"}) | healthy_ids
    if reason is None:
        expected.add(dict(poison)["event_id"])
    figures = reconcile(db, expected, [summary, healthy_summary], expected_rejects=0 if reason is None else 1)
    rejected = _rejected_records(db)
    retried = await retried_activities(client, poisoned.id)
    outcome = (f"rejected: \"{rejected[0][0][:90]}\"" if len(rejected) == 1 else
               "loaded as given" if not rejected else f"{len(rejected)} rejects")
    record.record(figures, seconds=seconds, retried_activities=retried, healthy_loaded=healthy_summary.loaded,
                  checks=f"{kind}: {outcome}; the flow finished in {seconds} s with {retried} activities retried, "
                         f"and the healthy flow beside it on the same worker loaded {healthy_summary.loaded:,} of "
                         f"{len(healthy_ids):,}")

    assert_exact(figures, kind)
    assert retried == 0, "an activity failed on the poison record and had to be retried"
    assert healthy_summary.loaded == len(healthy_ids)
    if reason is None:
        assert rejected == []
        poison = dict(poison)
        row = _row(db, "event_id, employee_id, timezone, event_properties", poison["event_id"])
        stored = dict(zip(("event_id", "employee_id", "timezone", "event_properties"), row))
        wanted = {"event_id": poison["event_id"], "employee_id": poison["employee_id"],
                  "timezone": poison.get("timezone") or "UTC", "event_properties": poison["event_properties"],
                  **columns}
        assert stored == wanted
    else:
        assert len(rejected) == 1 and reason in rejected[0][0], rejected
        assert reject_reasons(db) == [rejected[0][0]]
        stored_record = rejected[0][1]
        assert isinstance(stored_record, dict)
        if kind != "hostile_record" or not streaming:
            assert dict(poison)["event_id"] in str(stored_record)
