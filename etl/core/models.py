"""The `Event` row and the transform that turns a source's raw record into one, or into a reject reason.

A raw record is a dict a source yields, shaped like the `events` table:

    {"event_id": "b-1-m2", "source_kind_id": "launchpad", "parent_item_id": "1",
     "event_type": "bugs", "relation_type": "bug_message", "employee_id": "alice",
     "event_time_utc": "2024-03-31T01:30:00Z", "timezone": "Europe/Berlin",
     "event_properties": {...}, "relation_properties": {...}, "metrics": {...}}

`event_time_utc` may be an aware `datetime` or an ISO 8601 string with a zone;
`timezone` is optional (UTC when absent). The derived fields follow SPEC:
`event_time` is the UTC time in the employee's zone (pytz) and `week` the Monday
of `event_time`'s week.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable

import pytz

REQUIRED_TEXT = ("event_id", "employee_id")
OPTIONAL_TEXT = ("source_kind_id", "parent_item_id", "event_type", "relation_type")
JSON_FIELDS = ("event_properties", "relation_properties", "metrics")
#: The longest event_id the unique index takes (PostgreSQL's btree holds at most ~2,700 bytes a
#: row); a longer one would fail its whole batch, on every retry.
MAX_EVENT_ID_BYTES = 2000

#: Column order shared by COPY, the staging tables and `Event.copy_row`.
COLUMNS = (
    "source_kind_id",
    "parent_item_id",
    "event_id",
    "event_type",
    "relation_type",
    "employee_id",
    "event_time_utc",
    "week",
    "timezone",
    "event_time",
    "event_properties",
    "relation_properties",
    "metrics",
)

_ZONES: dict[str, Any] = {"UTC": pytz.utc}
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def zone(name: str):
    """The pytz zone called `name` (cached); raises `pytz.UnknownTimeZoneError`."""
    tz = _ZONES.get(name)
    if tz is None:
        tz = _ZONES[name] = pytz.timezone(name)
    return tz


@dataclass(slots=True)
class Event:
    """One row of the `events` table."""

    event_id: str
    employee_id: str
    event_time_utc: datetime
    """Naive, in UTC."""
    timezone: str = "UTC"
    source_kind_id: str | None = None
    parent_item_id: str | None = None
    event_type: str | None = None
    relation_type: str | None = None
    event_properties: dict = field(default_factory=dict)
    relation_properties: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    event_time: datetime | None = None
    """Naive, in `timezone`; derived when not given."""
    week: date | None = None
    """The Monday of `event_time`'s week; derived when not given."""
    _json: tuple[str, str, str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.event_time is None:
            if self.timezone == "UTC":
                self.event_time = self.event_time_utc
            else:
                utc = self.event_time_utc.replace(tzinfo=pytz.utc)
                self.event_time = utc.astimezone(zone(self.timezone)).replace(tzinfo=None)
        if self.week is None:
            day = self.event_time.date()
            self.week = day - timedelta(days=day.weekday())

    def json_columns(self) -> tuple[str, str, str]:
        """The three JSONB columns, encoded once."""
        if self._json is None:
            self._json = tuple(_dumps(getattr(self, name)) for name in JSON_FIELDS)  # type: ignore[assignment]
        return self._json

    def copy_row(self) -> str:
        """This event as one line of PostgreSQL COPY text format, in `COLUMNS` order."""
        ep, rp, mx = self.json_columns()
        # Escape the whole row at once rather than value by value: values are joined with NUL and
        # a missing value is a lone surrogate, two characters `to_event` refuses in every value, so
        # after escaping they can only be the separator and the NULL marker.
        values = (
            self.source_kind_id,
            self.parent_item_id,
            self.event_id,
            self.event_type,
            self.relation_type,
            self.employee_id,
            self.event_time_utc.isoformat(),
            self.week.isoformat(),  # type: ignore[union-attr]
            self.timezone,
            self.event_time.isoformat(),  # type: ignore[union-attr]
            ep,
            rp,
            mx,
        )
        row = "\x00".join("\udfff" if v is None else v for v in values)
        if "\\" in row:
            row = row.replace("\\", "\\\\")
        if "\t" in row:
            row = row.replace("\t", "\\t")
        if "\n" in row:
            row = row.replace("\n", "\\n")
        if "\r" in row:
            row = row.replace("\r", "\\r")
        return row.replace("\udfff", "\\N").replace("\x00", "\t") + "\n"


def _dumps(value: Any) -> str:
    return _ENCODE(value)


class Reject(Exception):
    """Why a raw record cannot become an event."""


def parse_utc(value: Any) -> datetime:
    """A naive UTC datetime from an aware datetime or an ISO 8601 string with a zone."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise Reject(f"event_time_utc {value[:64]!r} is not an ISO 8601 time") from None
    elif value is None:
        raise Reject("event_time_utc is missing")
    else:
        raise Reject(f"event_time_utc has type {type(value).__name__}; expected an ISO 8601 string")
    offset = moment.utcoffset()
    if offset is None:
        raise Reject(f"event_time_utc {str(value)[:64]!r} has no zone; give it as UTC (Z) or with an offset")
    return (moment - offset).replace(tzinfo=None)


def _text(raw: dict, name: str, required: bool) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise Reject(f"{name} is missing")
        return None
    if not isinstance(value, str):
        if isinstance(value, (int,)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise Reject(f"{name} has type {type(value).__name__}; expected text")
    if "\x00" in value:
        raise Reject(f"{name} contains a NUL byte, which PostgreSQL text cannot hold")
    return value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def to_event(raw: Any) -> Event:
    """Turn one raw record into an `Event`, or raise `Reject` with the reason."""
    if not isinstance(raw, dict):
        raise Reject(f"record has type {type(raw).__name__}; expected an object")
    event_id = _text(raw, "event_id", True)
    # UTF-8 takes at most 4 bytes a character: only long ids need encoding to be measured.
    size = len(event_id) if len(event_id) * 4 <= MAX_EVENT_ID_BYTES else len(  # type: ignore[arg-type]
        event_id.encode("utf-8", "surrogatepass"))  # type: ignore[union-attr]
    if size > MAX_EVENT_ID_BYTES:
        raise Reject(f"event_id is {size:,} bytes long; at most {MAX_EVENT_ID_BYTES:,} fit the unique index")
    employee_id = _text(raw, "employee_id", True)
    utc = parse_utc(raw.get("event_time_utc"))
    tz_name = raw.get("timezone") or "UTC"
    if not isinstance(tz_name, str):
        raise Reject(f"timezone has type {type(tz_name).__name__}; expected an IANA zone name")
    try:
        zone(tz_name)
    except pytz.UnknownTimeZoneError:
        raise Reject(f"unknown timezone {tz_name[:64]!r}; expected an IANA zone name such as Europe/Berlin") from None
    encoded = []
    for name in JSON_FIELDS:
        value = raw.get(name) or {}
        if not isinstance(value, dict):
            raise Reject(f"{name} has type {type(value).__name__}; expected an object")
        try:
            encoded.append(_dumps(value))
        except (TypeError, ValueError) as exc:
            raise Reject(f"{name} cannot be stored as JSON: {exc}") from None
    texts = {name: _text(raw, name, False) for name in OPTIONAL_TEXT}
    # One check over every string of the record; only a failure looks field by field for the name.
    named = (*zip(JSON_FIELDS, encoded), ("event_id", event_id), ("employee_id", employee_id), *texts.items())
    combined = "\x00".join(v for _, v in named if v is not None)
    try:
        combined.encode("utf-8")
    except UnicodeEncodeError:
        culprit = next(n for n, v in named if v is not None and not _is_utf8(v))
        raise Reject(f"{culprit} holds text that is not valid Unicode (a lone surrogate)") from None
    if "\\u0000" in combined:
        culprit = next(n for n, v in zip(JSON_FIELDS, encoded) if "\\u0000" in v)
        raise Reject(f"{culprit} contains a NUL character, which PostgreSQL JSONB cannot hold")
    return Event(
        event_id=event_id,  # type: ignore[arg-type]
        employee_id=employee_id,  # type: ignore[arg-type]
        event_time_utc=utc,
        timezone=tz_name,
        event_properties=raw.get("event_properties") or {},
        relation_properties=raw.get("relation_properties") or {},
        metrics=raw.get("metrics") or {},
        _json=tuple(encoded),  # type: ignore[arg-type]
        **texts,
    )


def transform(records: Iterable[Any]) -> tuple[list[Event], list[tuple[Any, str]]]:
    """Split raw records into events and `(raw, reason)` rejects."""
    events: list[Event] = []
    rejects: list[tuple[Any, str]] = []
    for raw in records:
        try:
            events.append(to_event(raw))
        except Reject as why:
            rejects.append((raw, str(why)))
    return events, rejects
