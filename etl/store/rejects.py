"""The rejects table: records that could not become events, each with its reason.

Writing a reject can never fail on the record's content, whatever it holds (integers past
Python's 4,300-digit text limit, nesting thousands deep, objects whose `__repr__`, `__str__`,
`__eq__` or `items()` raise, values that are not dicts at all): its key, its stored JSON and its
reason each fall back to a fixed stand-in (type name, length, a hash of what could be read)
that always works. The key is derived from the record, so the same bad record from any run or
retry is one row, in every process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

import psycopg2.extras
from psycopg2 import sql

from etl.core.errors import stand_in
from etl.store.db import Database

#: A reject keeps its record whole up to this much JSON, a prefix beyond (jsonb holds 255 MB at most).
MAX_REJECT_JSON_CHARS = 16 * 2**20
MAX_REASON_CHARS = 10_000


@dataclass(frozen=True)
class RejectRow:
    """A record that could not become an event, and why."""

    key: str
    """Unique per record and stable across retries, so recording it twice keeps one row."""
    record: Any
    reason: str
    source: str | None = None
    strategy: str | None = None
    workflow_id: str | None = None


def reject_key(strategy: str, record: Any) -> str:
    """A key derived from the record itself: the same bad record, from any run or retry, is one row."""
    return f"{strategy}:{fingerprint(record)[:40]}"


def fingerprint(record: Any) -> str:
    """A SHA-256 of the record's content, the same in every process; never raises."""
    try:
        # Not repr(): for many objects it holds a memory address, which differs on every attempt.
        text = json.dumps(record, sort_keys=True, ensure_ascii=True, default=lambda o: f"<{type(o).__name__}>")
        return hashlib.sha256(text.encode("ascii")).hexdigest()
    except Exception:  # noqa: BLE001 - too deep, a huge integer, keys that do not sort, hostile methods
        return _walk_digest(record)


def _walk_digest(record: Any) -> str:
    """The digest of a walk over `record` that needs no recursion, no text of huge integers and
    no method of the record's own classes: dicts and lists are entered (through the built-in
    types' own methods), anything else is its type, or its value for plain scalars."""
    h = hashlib.sha256()
    stack = [record]
    while stack:
        item = stack.pop()
        try:
            if isinstance(item, str):
                h.update(b"s" + str.encode(item, "utf-8", "surrogatepass") + b"\x00")
            elif isinstance(item, int):
                h.update(b"i" + int.to_bytes(item, (int.bit_length(item) + 8) // 8, "big", signed=True))
            elif isinstance(item, float):
                h.update(b"f" + float.hex(item).encode())
            elif item is None:
                h.update(b"n")
            elif isinstance(item, dict):
                pairs = list(dict.items(item))
                h.update(b"{%d" % len(pairs))
                keyed = sorted((_key_text(k), v) for k, v in pairs) if _distinct(pairs) else pairs
                for k, v in reversed(keyed):
                    stack.append(v)
                    stack.append(k if type(k) is str else _key_text(k))
            elif isinstance(item, (list, tuple)):
                seq = list.copy(item) if isinstance(item, list) else list(tuple.__iter__(item))
                h.update(b"[%d" % len(seq))
                stack.extend(reversed(seq))
            else:
                h.update(b"<" + stand_in(item).encode() + b">")
        except Exception:  # noqa: BLE001 - whatever the item does, the walk goes on
            h.update(b"<" + stand_in(item).encode() + b">")
    return h.hexdigest()


def _key_text(key: Any) -> str:
    """A dict key as text for ordering: itself if text, else its type and digest."""
    if type(key) is str:
        return key
    return f"\x00{stand_in(key)}:{_walk_digest(key) if type(key) in (int, float, bool, tuple) else ''}"


def _distinct(pairs: list[tuple[Any, Any]]) -> bool:
    keys = [_key_text(k) for k, _ in pairs]
    return len(set(keys)) == len(keys)


def reject_json(record: Any) -> str:
    """The raw record as JSON PostgreSQL accepts; a stand-in that always works when it has none."""
    try:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False, default=_text_of)
        text.encode("utf-8")
        if "\\u0000" not in text:
            if len(text) <= MAX_REJECT_JSON_CHARS:
                return text
            return json.dumps({"truncated_record_json": text[:1_000_000], "record_json_chars": len(text)})
    except Exception:  # noqa: BLE001 - no JSON for it: a stand-in below
        pass
    return json.dumps({"unstorable_record": _readable(record), "type": stand_in(record),
                       "length": _length(record), "sha256": fingerprint(record)})


def _text_of(value: Any) -> str:
    return str(value)


def _readable(record: Any) -> str:
    """As much of the record's repr as can be read safely, cut at a million characters."""
    try:
        shown = repr(record)
    except Exception:  # noqa: BLE001 - a hostile __repr__, a huge integer, too deep
        return stand_in(record)
    return shown[:1_000_000].replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _length(record: Any) -> int | None:
    try:
        return int(len(record))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001
        return None


def safe_reason(reason: Any) -> str:
    """A reject reason as text the table takes; never raises."""
    try:
        text = reason if type(reason) is str else str(reason)
    except Exception:  # noqa: BLE001
        text = stand_in(reason)
    return text[:MAX_REASON_CHARS].replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


class Rejects:
    """Writes rejects; a reject whose key is already recorded is skipped."""

    def __init__(self, db: Database):
        self.db = db

    def record(self, strategy: str, items: Iterable[tuple[Any, str]], workflow_id: str | None,
               cur: Any = None) -> int:
        """Write `(raw, reason)` rejects keyed by their content (in the transaction of `cur` when
        given); returns how many were new."""
        source = strategy.split("-", 1)[0]
        return self.write([RejectRow(reject_key(strategy, raw), raw, reason, source, strategy, workflow_id)
                           for raw, reason in items], cur)

    def write(self, rejects: Iterable[RejectRow], cur: Any = None) -> int:
        rows = [(r.key, r.source, r.strategy, r.workflow_id, safe_reason(r.reason), reject_json(r.record))
                for r in rejects]
        if not rows:
            return 0
        if cur is not None:
            return self._write(cur, rows)
        return self.db.run(lambda c: self._write(c, rows), what=f"insert of {len(rows)} rejects")

    def _write(self, cur, rows: list[tuple]) -> int:
        # RETURNING, fetched over every page: `cur.rowcount` would count the last page of 500 only.
        written = psycopg2.extras.execute_values(
            cur, sql.SQL("INSERT INTO {rejects} (reject_key, source, strategy, workflow_id, reason, record) "
                         "VALUES %s ON CONFLICT (reject_key) DO NOTHING RETURNING 1"
                         ).format(rejects=self.db.tables.rejects).as_string(cur),
            rows, template="(%s, %s, %s, %s, %s, %s::jsonb)", page_size=500, fetch=True)
        return len(written)
