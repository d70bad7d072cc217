"""`synthetic-events`: records of the SPEC shape, generated from (seed, index) alone.

Record `i` is the same on every run, so re-extracting gives the same event ids, and
a test can compute the expected set (`expected_event_ids`) without running the flow.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from etl.core.extract import Page, extract_method
from etl.core.settings import Settings
from sources.synthetic.query import SyntheticQuery

ZONES = ("UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo", "Europe/London", None)
KINDS = (("bugs", "bug_message"), ("bugs", "bug_activity"), ("merge_proposals", "merge_proposal_comment"),
         ("questions", "question_message"), ("merge_proposals", "merge_proposal_vote"))
STATUSES = ("New", "Confirmed", "Triaged", "In Progress", "Fix Committed", "Fix Released")
BAD_KINDS = ("missing_id", "bad_time", "unknown_zone", "naive_time")
HOSTILE_KINDS = ("huge_int", "deep_nesting", "int_key", "not_an_object", "nul_char", "lone_surrogate")
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _mix(seed: int, i: int) -> int:
    # A cheap, well-spread integer hash (splitmix64 finaliser): far faster than random.Random per record.
    z = (i * 0x9E3779B97F4A7C15 + seed * 0xBF58476D1CE4E5B9 + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def is_bad(seed: int, bad_rate: float, i: int) -> bool:
    return bad_rate > 0 and (_mix(seed, i) % 1_000_000) < bad_rate * 1_000_000


def is_hostile(seed: int, hostile_rate: float, i: int) -> bool:
    return hostile_rate > 0 and (_mix(seed + 104_729, i) % 1_000_000) < hostile_rate * 1_000_000


def hostile_kind(seed: int, i: int) -> str:
    """Which of `HOSTILE_KINDS` record `i` gets when it is hostile."""
    return HOSTILE_KINDS[_mix(seed + 15_485_863, i) % len(HOSTILE_KINDS)]


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def hostile(raw: dict, kind: str) -> Any:
    """`raw` with a hostile value of `kind` (see `HOSTILE_KINDS`)."""
    if kind == "huge_int":
        raw["metrics"] = {"n": 10**5000}
    elif kind == "deep_nesting":
        raw["event_properties"] = _nested(5_000)
    elif kind == "int_key":
        raw["relation_properties"] = {10**40: 1}
    elif kind == "not_an_object":
        return [raw["event_id"], 1]
    elif kind == "nul_char":
        raw["event_properties"]["title"] = "a NUL \x00 in the title"
    else:
        raw["event_properties"]["title"] = "a lone surrogate \ud800 in the title"
    return raw


def record(seed: int, bad_rate: float, i: int, hostile_rate: float = 0.0) -> Any:
    """Record number `i` of the stream for `seed`."""
    h = _mix(seed, i)
    event_type, relation_type = KINDS[h % len(KINDS)]
    item = i // 7
    when = EPOCH + timedelta(seconds=(h >> 16) % (366 * 86400))
    raw = {
        "source_kind_id": "synthetic",
        "parent_item_id": f"item-{seed}-{item}",
        "event_id": f"syn-{seed}-{i}",
        "event_type": event_type,
        "relation_type": relation_type,
        "employee_id": f"user{(h >> 8) % 200}",
        "event_time_utc": when.isoformat().replace("+00:00", "Z"),
        "timezone": ZONES[(h >> 4) % len(ZONES)],
        "event_properties": {
            "title": f"Synthetic item {item}: something is not quite right",
            "status": STATUSES[(h >> 12) % len(STATUSES)],
            "importance": ("Low", "Medium", "High", "Critical")[(h >> 20) % 4],
            "tags": ["synthetic", f"area-{(h >> 24) % 12}"],
            "web_link": f"https://example.invalid/items/{item}",
        },
        "relation_properties": {"old_value": None, "new_value": STATUSES[(h >> 28) % len(STATUSES)],
                                "subject": f"Re: synthetic item {item}"},
        "metrics": {"message_length": (h >> 32) % 4000, "heat": (h >> 40) % 500, "users_affected": (h >> 48) % 50},
    }
    if is_bad(seed, bad_rate, i):
        bad = BAD_KINDS[_mix(seed + 7919, i) % len(BAD_KINDS)]
        if bad == "missing_id":
            del raw["event_id"]
        elif bad == "bad_time":
            raw["event_time_utc"] = "not a time"
        elif bad == "unknown_zone":
            raw["timezone"] = "Mars/Olympus_Mons"
        else:
            raw["event_time_utc"] = when.replace(tzinfo=None).isoformat()
    if is_hostile(seed, hostile_rate, i):
        return hostile(raw, hostile_kind(seed, i))
    return raw


def expected_event_ids(query: SyntheticQuery) -> set[str]:
    """The ids of the valid events `query` yields, computed without extracting."""
    return {f"syn-{query.seed}-{i}" for i in range(query.start, query.start + query.count)
            if not is_bad(query.seed, query.bad_rate, i) and not is_hostile(query.seed, query.hostile_rate, i)}


def split(query: SyntheticQuery, parts: int) -> list[dict]:
    """Disjoint index ranges, page-aligned, covering the query."""
    pages = -(-query.count // query.page_size) if query.count else 0
    parts = max(1, min(parts, pages))
    per = -(-pages // parts) * query.page_size
    out = []
    for offset in range(0, query.count, per):
        args = query.to_dict()
        args.update(start=query.start + offset, count=min(per, query.count - offset))
        out.append(args)
    return out or [query.to_dict()]


@extract_method("synthetic-events", split=split)
def extract_events(query: SyntheticQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
    """Yield `query.count` records in pages; the cursor is the index of the next record."""
    end = query.start + query.count
    i = int(cursor) if cursor else query.start
    while i < end:
        if query.page_pause_s:
            time.sleep(query.page_pause_s)
        stop = min(i + query.page_size, end)
        yield Page([record(query.seed, query.bad_rate, j, query.hostile_rate) for j in range(i, stop)],
                   cursor=str(stop))
        i = stop
