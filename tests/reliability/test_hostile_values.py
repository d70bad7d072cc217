"""Hostile values: whatever a record holds, it becomes an event or one reject with its reason, and
every other record of the flow loads (issue 24). Each kind below replaces one record of a
12,000-record run, at a position of its own, through ETLFlow and StreamingETLFlow; a healthy flow
runs beside it on the same worker. Both flows give each record the same reason.

The records come from `hostile-events`, a test-only source: the synthetic records, with record
`POSITIONS[kind]` replaced by the kind's value (built fresh on every read: a 100,000-deep nesting
is never pickled into a page or written anywhere as it is).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Callable

import pytest
from psycopg2 import sql

from sources.synthetic.flows import events as synthetic
from sources.synthetic.query import SyntheticQuery
from tests.made_up import made_up_source
from tests.reliability.checks import assert_exact, reconcile, retried_activities, within

COUNT = 12_000
HEALTHY = 3_000
SEED = 24_024


class Opaque:
    """An object that refuses to say anything of itself."""

    def __repr__(self) -> str:
        raise ValueError("no repr")

    def __str__(self) -> str:
        raise ValueError("no str")

    def __eq__(self, other: object) -> bool:
        raise ValueError("no eq")

    __hash__ = object.__hash__


class ItemsRaise(dict):
    """A dict whose `items()`, `keys()`, `values()` and iteration raise (read through `get` it is fine)."""

    def items(self):
        raise RuntimeError("no items")

    keys = values = items

    def __iter__(self):
        raise RuntimeError("no iteration")


def nested(depth: int, leaf: Any = 1, in_list: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if in_list else {"a": value}
    return value


def _set(**fields: Callable[[], Any]) -> Callable[[dict], Any]:
    def make(record: dict) -> Any:
        record.update({name: build() for name, build in fields.items()})
        return record
    return make


def _props(build: Callable[[], Any]) -> Callable[[dict], Any]:
    def make(record: dict) -> Any:
        record["event_properties"] = dict(record["event_properties"], x=build())
        return record
    return make


#: kind -> (make(record) -> the hostile record, words of its reject reason)
KINDS: dict[str, tuple[Callable[[dict], Any], str]] = {
    "int_5000_digits_in_metrics": (_set(metrics=lambda: {"n": 10**5000}), "metrics cannot be stored as JSON"),
    "int_100000_digits_in_metrics": (_set(metrics=lambda: {"n": -(10**100_000)}), "metrics cannot be stored as JSON"),
    "int_5000_digits_in_properties": (_props(lambda: 10**5000), "event_properties cannot be stored as JSON"),
    "int_5000_digits_as_key": (_set(metrics=lambda: {10**5000: 1}), "of type int; JSON object keys must be text"),
    "int_100000_digits_as_key": (_set(relation_properties=lambda: {10**100_000: 1}),
                                 "of type int; JSON object keys must be text"),
    **{f"nesting_{depth}_deep_in_{column}": (_set(**{column: (lambda d=depth: nested(d))}),
                                            f"{column} is nested deeper than 254 levels")
       for depth in (5_000, 100_000) for column in ("event_properties", "relation_properties", "metrics")},
    **{f"nesting_{depth}_deep_in_a_list": (_props(lambda d=depth: nested(d, in_list=True)),
                                           "event_properties is nested deeper than 254 levels")
       for depth in (5_000, 100_000)},
    "object_whose_repr_str_and_eq_raise": (lambda r: Opaque(), "record has type Opaque; expected an object"),
    "value_whose_repr_str_and_eq_raise": (_props(Opaque), "a value of type Opaque is not JSON"),
    "dict_whose_items_raise": (lambda r: ItemsRaise({k: v for k, v in r.items() if k != "event_id"}),
                               "event_id is missing"),
    "a_list": (lambda r: [r["event_id"], 1], "record has type list; expected an object"),
    "a_string": (lambda r: r["event_id"], "record has type str; expected an object"),
    "none": (lambda r: None, "record has type NoneType; expected an object"),
}
#: Where each kind replaces a record: spread over the run, pages and chunks alike.
POSITIONS = {kind: 157 + n * (COUNT - 500) // len(KINDS) for n, kind in enumerate(KINDS)}
AT = {position: kind for kind, position in POSITIONS.items()}


def record_at(seed: int, i: int) -> Any:
    record = synthetic.record(seed, 0.0, i)
    kind = AT.get(i) if seed == SEED else None
    return KINDS[kind][0](record) if kind else record


@pytest.fixture
def hostile_source():
    """Registers `hostile-events` (a `synthetic` query) for one test."""
    with made_up_source("hostile-events", lambda query, settings, i: [record_at(query.seed, i)]) as name:
        yield name


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_every_hostile_record_is_one_reject_and_every_other_record_loads(flow_runner, client, db,
                                                                               hostile_source, streaming, case):
    flow = "StreamingETLFlow" if streaming else "ETLFlow"
    fields = {"chunk_count": 4, "chunks_in_flight": 2} if streaming else {"batch_size": 3_000}
    record = case(f"poison-hostile-values-{'streaming' if streaming else 'batch'}", "Hostile values, every kind in one run",
                  flow, f"{len(KINDS)} records of {COUNT:,} replaced, one of each hostile kind (listed below)",
                  records=COUNT, **fields)
    poisoned = await flow_runner.start(hostile_source, {"count": COUNT, "seed": SEED, "page_size": 500},
                                       streaming=streaming, **fields)
    healthy = await flow_runner.start("synthetic-events", {"count": HEALTHY, "seed": SEED + 1, "page_size": 500},
                                      streaming=streaming, **fields)
    summary, healthy_summary = await within(asyncio.gather(poisoned.result(), healthy.result()), 300,
                                            flow_runner.client, [poisoned.id, healthy.id])

    clean = synthetic.expected_event_ids(SyntheticQuery(count=COUNT, seed=SEED))
    expected = (clean - {f"syn-{SEED}-{i}" for i in AT}) | synthetic.expected_event_ids(
        SyntheticQuery(count=HEALTHY, seed=SEED + 1))
    figures = reconcile(db, expected, [summary, healthy_summary], expected_rejects=len(KINDS))
    reasons = sorted(r for (r,) in db.run(lambda cur: (cur.execute(sql.SQL("SELECT reason FROM {}").format(
        db.tables.rejects)), cur.fetchall())[1]))
    unmatched = [kind for kind, (_, words) in KINDS.items() if sum(words in r for r in reasons) < 1]
    retried = await retried_activities(client, poisoned.id)
    record.record(figures, retried_activities=retried, kinds=list(KINDS),
                  reject_reasons=dict(Counter(r[:90] for r in reasons)),
                  checks=f"{len(KINDS)} kinds, each one reject with its reason; "
                         f"{summary.loaded:,} other records loaded, {retried} activities retried; the healthy flow "
                         f"beside it loaded {healthy_summary.loaded:,}")

    assert_exact(figures, flow)
    assert not unmatched, f"no reject with the expected reason for {unmatched}: {reasons}"
    assert summary.rejected == len(KINDS) and summary.extracted == COUNT
    assert retried == 0, "an activity failed on a hostile record and had to be retried"
