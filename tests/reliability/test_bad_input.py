"""Bad input: 1% of records are malformed in every way we could think of. Each lands in the rejects
table with a reason that says what was wrong, or loads exactly as given; no batch fails.

The records come from `chaos-events`, a test-only source registered for these tests: the
synthetic records, with record `i` corrupted when `i % 100 == 37`, by the kind
`KINDS[(i // 100) % len(KINDS)]`, so every kind occurs and any chunk of a split can compute
its own records. It is registered in this process only, so the flows run on an in-process
worker (FlowRunner).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any, Callable

import pytest
from psycopg2 import sql

from sources.synthetic.flows import events as synthetic
from tests.made_up import made_up_source
from tests.reliability.checks import (
    assert_exact,
    reconcile,
    reject_reasons,
    replay,
    retried_activities,
    within,
)

SEED = 90
COUNT = 20_000
HUGE = 1_000_000
CANARY = "{table}_canary"
UNICODE_NAME = "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd-e\u0301"  # Hebrew with points, then e + combining acute
UNICODE_TITLE = ("\u202eRTL override, \u0645\u0631\u062d\u0628\u0627, family \U0001F469\u200d\U0001F469\u200d"
                 "\U0001F467\u200d\U0001F466, Z\u0351\u0356\u0328, \ufeffBOM, \U0001F600, \u00a0nbsp")
COPY_SPECIALS = {"parent_item_id": "\\N", "event_type": "tab\there\nnewline\\.\rcr", "relation_type": "\\."}


def _set(r: dict, **fields: Any) -> dict:
    r.update(fields)
    return r


def _prop(name: str, key: str, value: Any) -> Callable[[dict, int, str], dict]:
    def corrupt(r: dict, i: int, table: str) -> dict:
        r[name] = dict(r[name], **{key: value})
        return r

    return corrupt


def _huge_text(i: int) -> str:
    return (f"record {i}: " + "lorem ipsum dolor sit amet " * (HUGE // 20))[:HUGE]


#: kind -> (corrupt(record, i, events table) -> record, the reject reason's words, or None: it loads)
KINDS: dict[str, tuple[Callable[[dict, int, str], Any], str | None]] = {
    "missing_id": (lambda r, i, t: {k: v for k, v in r.items() if k != "event_id"}, "event_id is missing"),
    "empty_id": (lambda r, i, t: _set(r, event_id=""), "event_id is missing"),
    "bool_id": (lambda r, i, t: _set(r, event_id=True), "event_id has type bool"),
    "bad_time": (lambda r, i, t: _set(r, event_time_utc="not a time"), "is not an ISO 8601 time"),
    "naive_time": (lambda r, i, t: _set(r, event_time_utc="2024-03-01T12:00:00"), "has no zone"),
    "numeric_time": (lambda r, i, t: _set(r, event_time_utc=1709294400.5), "event_time_utc has type float"),
    "unknown_zone": (lambda r, i, t: _set(r, timezone="Mars/Olympus_Mons"), "unknown timezone"),
    "zone_path": (lambda r, i, t: _set(r, timezone="../../../../etc/passwd"), "unknown timezone"),
    "set_property": (_prop("event_properties", "tags", {"a", "b"}), "cannot be stored as JSON"),
    "object_property": (_prop("relation_properties", "handle", object()), "cannot be stored as JSON"),
    "decimal_metric": (_prop("metrics", "heat", Decimal("1.5")), "cannot be stored as JSON"),
    "nan_metric": (_prop("metrics", "users_affected", float("nan")), "cannot be stored as JSON"),
    "huge_text": (lambda r, i, t: _prop("event_properties", "description", _huge_text(i))(r, i, t), None),
    "huge_id": (lambda r, i, t: _set(r, event_id=r["event_id"] + "-" + "x" * HUGE), "bytes long"),
    "nul_in_id": (lambda r, i, t: _set(r, event_id=r["event_id"] + "\x00"), "NUL byte"),
    "nul_in_property": (_prop("event_properties", "title", "a\x00b"), "NUL character"),
    "surrogate_in_employee": (lambda r, i, t: _set(r, employee_id="user\ud800"), "not valid Unicode"),
    "surrogate_in_property": (_prop("event_properties", "title", "broken \udfff"), "not valid Unicode"),
    "unicode": (lambda r, i, t: _prop("event_properties", "title", UNICODE_TITLE)(
        _set(r, employee_id=UNICODE_NAME), i, t), None),
    "sql_injection": (lambda r, i, t: _set(r, event_id=f"{r['event_id']}'); DROP TABLE {CANARY.format(table=t)}; --"),
                      None),
    "copy_specials": (lambda r, i, t: _set(r, **COPY_SPECIALS), None),
    "int_id": (lambda r, i, t: _set(r, event_id=10**12 + i), None),
    "not_a_record": (lambda r, i, t: ["not", "a", "record", i], "record has type list"),
    "properties_list": (lambda r, i, t: _set(r, event_properties=["a", i]), "event_properties has type list"),
    "employee_object": (lambda r, i, t: _set(r, employee_id={"login": i}), "employee_id has type dict"),
    "duplicate": (lambda r, i, t: r, None),
}
ORDER = list(KINDS)


def kind_of(i: int) -> str | None:
    return ORDER[(i // 100) % len(ORDER)] if i % 100 == 37 else None


def records_at(i: int, table: str) -> list[Any]:
    """What the source yields for index `i`: one record, or two for a duplicate."""
    raw = synthetic.record(SEED, 0.0, i)
    kind = kind_of(i)
    if kind is None:
        return [raw]
    corrupted = KINDS[kind][0](raw, i, table)
    return [corrupted, dict(corrupted)] if kind == "duplicate" else [corrupted]


def event_id_of(record: Any) -> str:
    return str(record["event_id"])


def expected(count: int, table: str) -> tuple[set[str], Counter, int]:
    """(event ids that load, reject reasons' words -> how many, duplicates)"""
    ids: set[str] = set()
    reasons: Counter = Counter()
    duplicates = 0
    for i in range(count):
        kind = kind_of(i)
        reason = KINDS[kind][1] if kind else None
        if reason:
            reasons[reason] += 1
        else:
            ids.add(event_id_of(records_at(i, table)[0]) if kind else f"syn-{SEED}-{i}")
        duplicates += kind == "duplicate"
    return ids, reasons, duplicates


@pytest.fixture
def chaos_source():
    """Registers `chaos-events` (a `synthetic` query) for one test."""
    with made_up_source("chaos-events", lambda query, settings, i: records_at(i, settings.events_table)) as name:
        yield name


def fetch(db, columns: str, event_id: str) -> tuple:
    return db.run(lambda cur: (cur.execute(sql.SQL("SELECT " + columns + " FROM {} WHERE event_id = %s").format(
        db.tables.events), (event_id,)), cur.fetchone())[1])


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_malformed_records_are_rejected_with_reasons_or_load_exactly(flow_runner, client, db, settings,
                                                                          chaos_source, streaming, case):
    table = settings.events_table
    canary = CANARY.format(table=table)
    db.run(lambda cur: cur.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(canary))))
    args = {"count": COUNT, "seed": SEED, "page_size": 500}
    fields = {"chunk_count": 4, "chunks_in_flight": 2} if streaming else {"batch_size": 2_000}
    record = case(f"bad-input-{'streaming' if streaming else 'batch'}", "1% malformed records",
                  "StreamingETLFlow" if streaming else "ETLFlow",
                  f"1 record in 100 malformed, {len(KINDS)} kinds in turn (listed below)",
                  records=COUNT, page_size=args["page_size"], malformed=COUNT // 100, **fields)

    handle = await flow_runner.start(chaos_source, args, streaming=streaming, **fields)
    summary = await within(handle.result(), 240, flow_runner.client, [handle.id])

    ids, reasons, duplicates = expected(COUNT, table)
    figures = reconcile(db, ids, [summary], expected_rejects=sum(reasons.values()))
    found = Counter(next((words for words in reasons if words in reason), f"unexpected: {reason[:200]}")
                    for reason in reject_reasons(db))
    retried = await retried_activities(client, handle.id)
    record.record(figures, reject_reasons=dict(found), retried_activities=retried, kinds=ORDER,
                  replayed_runs=await replay(client, handle.id))

    assert_exact(figures)
    assert found == reasons
    assert summary.unchanged == duplicates and summary.extracted == COUNT + duplicates
    assert retried == 0, "an activity failed on bad input and had to be retried"

    # What loads, loads exactly as given.
    for i in range(COUNT):
        kind = kind_of(i)
        if kind in ("huge_text", "unicode", "copy_specials"):
            raw = records_at(i, table)[0]
            row = fetch(db, "employee_id, parent_item_id, event_type, relation_type, event_properties",
                        raw["event_id"])
            assert row == (raw["employee_id"], raw["parent_item_id"], raw["event_type"], raw["relation_type"],
                           raw["event_properties"]), kind
    assert db.run(lambda cur: (cur.execute("SELECT to_regclass(%s)", (canary,)), cur.fetchone()[0])[1]) == canary
