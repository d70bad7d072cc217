"""The event builder: the fields of a raw event record named once, and checked, and the
boundary where one record's bad content becomes one reject.

    EVENTS = Events("board", "cards")                 # source_kind_id and event_type, once

    def card_events(query, card) -> list[dict]:       # one API record -> its events
        return [EVENTS.event(f"board-c{card['id']}", parent=card["id"], relation="card_opened",
                             actor=card["opened_by"], at=card["opened_at"], properties={"title": card["title"]})]

    yield Page(mapped(cards, lambda card: card_events(query, card)), cursor=after)

`mapped` calls the mapping function once per API record: whatever that one record's content
makes it raise (a missing key, a time `read_time` cannot read, a check of `event` failing)
turns into `rejected(record, error)`, a reject with that reason, while the rest of the page
loads. The framework's own errors (`SourceError`, `SourceUnavailable`, ...: the API refused
or failed, not the record) pass through, so they fail or retry the activity as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone
from typing import Any, Callable, Iterable, TypeVar

from etl.core.errors import EtlError
from etl.core.extract import rejected
from etl.core.times import parse_time, read_time

T = TypeVar("T")
MAX_ID = 500
"""The longest event id, parent id or actor accepted."""


@dataclass(frozen=True)
class Events:
    """What every event of one source (and type) shares; `event(...)` builds one raw record."""

    source: str
    """`source_kind_id`: the source's name."""
    event_type: str | None = None
    """The default `event_type` (a flow's kind of item: `bugs`, `cards`)."""

    def event(self, event_id: str, *, parent: Any, relation: str, actor: str, at: Any,
              event_type: str | None = None, zone: str | None = None, properties: dict | None = None,
              relation_properties: dict | None = None, metrics: dict | None = None) -> dict[str, Any]:
        """One raw event record (the events table's shape, etl/core/models.py) of `actor`'s act
        `relation` at `at` on item `parent`. `at` is a datetime or a time as the API wrote it
        (`read_time`): ISO 8601 text is kept as written, any other form is written as ISO 8601 UTC.
        `zone` is the actor's IANA time zone where the source knows it (None: UTC).
        Raises ValueError naming the field when a value cannot be an event's."""
        kind = event_type or self.event_type
        for name, value in (("event_id", event_id), ("parent", parent), ("relation", relation),
                            ("actor", actor), ("event_type", kind)):
            _check(name, value)
        return {"event_id": event_id, "source_kind_id": self.source, "parent_item_id": str(parent),
                "event_type": kind, "relation_type": relation, "employee_id": actor,
                "event_time_utc": _time(at), "timezone": zone, "event_properties": properties or {},
                "relation_properties": relation_properties or {}, "metrics": metrics or {}}


def _check(name: str, value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and name == "parent":
        return
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        shown = repr(value)[:40]
        raise ValueError(f"{name} {shown} is not a non-empty text of at most {MAX_ID} characters")


def _time(at: Any) -> str:
    moment = read_time(at)  # raises ValueError for what is not a time
    if isinstance(at, str):
        try:
            parse_time(at)
            return at  # ISO 8601 already: kept exactly as the API wrote it
        except ValueError:
            pass
    return moment.astimezone(timezone.utc).isoformat()


Mapping = Callable[[Any], "dict | Iterable[dict] | None"]


def mapped(items: Iterable[Any], mapping: Mapping) -> list[dict]:
    """The records `mapping` makes of each item (a record, a list of them, or None), with an item
    whose content makes `mapping` raise turned into `rejected(item, error)`."""
    out: list[dict] = []
    for item in items:
        out += one(item, mapping)
    return out


def one(item: Any, mapping: Mapping) -> list[dict]:
    """The records `mapping(item)` makes, or `[rejected(item, error)]` when the item's content
    makes it raise; the framework's errors (the API's refusals and failures) pass through."""
    made, bad = attempt(item, lambda i: _records(mapping(i)))
    return bad or made


def attempt(item: Any, call: Callable[[Any], T]) -> tuple[T | None, list[dict]]:
    """`(call(item), [])`, or `(None, [rejected(item, error)])` when the item's content makes it
    raise. `EtlError`s (the API refused or failed, not the record) pass through."""
    try:
        return call(item), []
    except EtlError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever one record's content makes the mapping raise
        return None, [rejected(item, exc)]


def _records(made: Any) -> list[dict]:
    """A mapping's result as a list: one record, or a list of them in which None and False stand for none."""
    return [] if not made else [made] if isinstance(made, dict) else [r for r in made if r]
