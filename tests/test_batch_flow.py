"""ETLFlow end to end on the real stack: what a user checks in the events and rejects tables."""

from __future__ import annotations

from sources.synthetic.flows.events import expected_event_ids
from sources.synthetic.query import SyntheticQuery


def event_ids(db) -> set[str]:
    return set(db.run(lambda cur: (cur.execute(f'SELECT event_id FROM "{db.tables.name}"'),
                                   [r[0] for r in cur.fetchall()])[1]))


async def test_batch_flow_loads_valid_events_and_rejects_the_rest(run_flow, db):
    args = {"count": 12_000, "seed": 3, "bad_rate": 0.01, "page_size": 500}
    summary = await run_flow("synthetic-events", args, batch_size=2_000)

    expected = expected_event_ids(SyntheticQuery(**args))
    assert event_ids(db) == expected
    assert summary["loaded"] == len(expected)
    assert summary["rejected"] == 12_000 - len(expected) > 0
    assert summary["extracted"] == summary["loaded"] + summary["rejected"] + summary["unchanged"]
    assert db.count_rejects() == summary["rejected"]
    assert summary["batches"] >= 6

    again = await run_flow("synthetic-events", args, batch_size=2_000)
    assert again["loaded"] == 0
    assert again["unchanged"] == len(expected)
    assert db.count_events() == len(expected)
    assert db.count_rejects() == summary["rejected"]


async def test_streaming_flow_loads_the_same_events(run_flow, db):
    args = {"count": 9_000, "seed": 4, "bad_rate": 0.02, "page_size": 500}
    summary = await run_flow("synthetic-events", args, streaming=True, chunks_in_flight=2)

    expected = expected_event_ids(SyntheticQuery(**args))
    assert event_ids(db) == expected
    assert summary["loaded"] == len(expected)
    assert summary["extracted"] == summary["loaded"] + summary["rejected"] + summary["unchanged"]
    assert db.count_rejects() == summary["rejected"] == 9_000 - len(expected)
