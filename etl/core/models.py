"""The `Event` row and the transform that turns a source's raw record into one, or into a reject reason.

A raw record is a dict a source yields, shaped like the `events` table:

    {"event_id": "b-1-m2", "source_kind_id": "launchpad", "parent_item_id": "1",
     "event_type": "bugs", "relation_type": "bug_message", "employee_id": "alice",
     "event_time_utc": "2024-03-31T01:30:00Z", "timezone": "Europe/Berlin",
     "event_properties": {...}, "relation_properties": {...}, "metrics": {...}}

`event_time_utc` may be an aware `datetime` or an ISO 8601 string with a zone;
`timezone` is optional (UTC when absent) and is stored under its canonical IANA
spelling (`europe/berlin` becomes `Europe/Berlin`). The derived fields follow SPEC:
`event_time` is the UTC time in the employee's zone (pytz's tables) and `week` the
Monday of `event_time`'s week.

Every value is stored exactly as given or the record is rejected with the reason: text
with a NUL or a lone surrogate, JSON objects with keys that are not text (they would
collide once written as JSON), properties that are not objects, NaN and infinities,
times outside the years 1 to 9999 (in UTC and in the employee's zone). `transform` never
lets a record's content raise out of it: whatever goes wrong becomes that record's reject.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable

import orjson
import pytz

from etl.core.errors import shown
from etl.core.extract import REJECTED

REQUIRED_TEXT = ("event_id", "employee_id")
OPTIONAL_TEXT = ("source_kind_id", "parent_item_id", "event_type", "relation_type")
JSON_FIELDS = ("event_properties", "relation_properties", "metrics")
#: The longest event_id the unique index takes (PostgreSQL's btree holds at most ~2,700 bytes a
#: row); a longer one would fail its whole batch, on every retry.
MAX_EVENT_ID_BYTES = 2000
#: The most JSON a properties column takes: far above any real event's, far below what one
#: PostgreSQL value (jsonb: 255 MB) and one staged batch row (etl.store.staging.PART_CHARS) hold.
MAX_JSON_BYTES = 64 * 2**20
#: The longest reject reason kept (a reason quotes at most a short prefix of a value anyway).
MAX_REASON = 500

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
    "content_hash",
)


class Reject(Exception):
    """Why a raw record cannot become an event."""


# -- zones ---------------------------------------------------------------------------------------


class Zone:
    """A pytz zone reduced to what the local-time derivation needs: its canonical name and its UTC
    offsets. `local(utc)` is exactly pytz's `fromutc` (the same bisection over the same transition
    table), without building an aware datetime and normalising it for every event."""

    __slots__ = ("name", "fixed", "times", "offsets")

    def __init__(self, tz: Any):
        self.name: str = tz.zone
        times = getattr(tz, "_utc_transition_times", None)
        if times:
            self.fixed = None
            self.times = times
            self.offsets = [info[0] for info in tz._transition_info]  # noqa: SLF001 - pytz's table
        else:  # UTC and fixed-offset zones
            self.fixed = tz.utcoffset(datetime(2000, 1, 1))
            self.times = self.offsets = None

    def local(self, utc: datetime) -> datetime:
        """The naive UTC time `utc` as a naive local time; `OverflowError` outside years 1 to 9999."""
        if self.fixed is not None:
            return utc + self.fixed if self.fixed else utc
        i = bisect_right(self.times, utc)
        return utc + self.offsets[i - 1 if i else 0]


_ZONES: dict[str, Zone] = {}
#: Zone spellings remembered (every IANA name in a few spellings is far below this); a stream of
#: distinct case variants must not grow the cache without bound.
_ZONE_CACHE_MAX = 4096
_LONGEST_ZONE_NAME = 64  # the longest IANA name has 32 characters


def zone(name: str) -> Zone:
    """The zone called `name`, in any letter case (cached); raises `pytz.UnknownTimeZoneError`."""
    z = _ZONES.get(name)
    if z is None:
        if type(name) is not str or len(name) > _LONGEST_ZONE_NAME:
            raise pytz.UnknownTimeZoneError(name)
        z = Zone(pytz.timezone(name))
        if len(_ZONES) < _ZONE_CACHE_MAX:
            _ZONES[name] = z
    return z


_UTC = zone("UTC")


def _week(day: date) -> date:
    return day - timedelta(days=day.weekday())


# -- the event -----------------------------------------------------------------------------------


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
        # `to_event` passes both derived fields; only events built by hand derive them here.
        if self.event_time is None:
            self.event_time = zone(self.timezone).local(self.event_time_utc)
        if self.week is None:
            self.week = _week(self.event_time.date())

    def json_columns(self) -> tuple[str, str, str]:
        """The three JSONB columns, encoded once."""
        if self._json is None:
            self._json = tuple(encode_json(name, getattr(self, name)) for name in JSON_FIELDS)  # type: ignore[assignment]
        return self._json

    def content_hash(self) -> str:
        """A digest of the event's row (every column, as the load writes it), 32 hex digits that
        PostgreSQL reads as a UUID: equal rows, equal hashes. The JSON objects count as encoded,
        so a source must keep the order of their keys from one run to the next (any mapping in
        code does; one that builds them from a set would show every row as changed)."""
        return self.copy_row(True)[-33:-1]

    def copy_row(self, hashed: bool = False) -> str:
        """This event as one line of PostgreSQL COPY text format, in `COLUMNS` order; its
        `content_hash` when `hashed` (the upsert and history load modes compare it), else NULL."""
        ep, rp, mx = self._json or self.json_columns()
        # Escape the whole row at once rather than value by value: values are joined with NUL and
        # a missing value is a lone surrogate, two characters `to_event` refuses in every value, so
        # after escaping they can only be the separator and the NULL marker.
        row = "\x00".join((
            "\udfff" if self.source_kind_id is None else self.source_kind_id,
            "\udfff" if self.parent_item_id is None else self.parent_item_id,
            self.event_id,
            "\udfff" if self.event_type is None else self.event_type,
            "\udfff" if self.relation_type is None else self.relation_type,
            self.employee_id,
            self.event_time_utc.isoformat(),
            self.week.isoformat(),  # type: ignore[union-attr]
            self.timezone,
            self.event_time.isoformat(),  # type: ignore[union-attr]
            ep,
            rp,
            mx,
        ))
        if "\\" in row:
            row = row.replace("\\", "\\\\")
        if "\t" in row:
            row = row.replace("\t", "\\t")
        if "\n" in row:
            row = row.replace("\n", "\\n")
        if "\r" in row:
            row = row.replace("\r", "\\r")
        if "\udfff" in row:
            row = row.replace("\udfff", "\\N")
        row = row.replace("\x00", "\t")
        if hashed:  # of the row as written: cheap, and exact (every column is in it)
            return f"{row}\t{hashlib.blake2b(row.encode('utf-8'), digest_size=16).hexdigest()}\n"
        return row + "\t\\N\n"


# -- JSON ----------------------------------------------------------------------------------------


def json_default(value: Any) -> Any:
    """What JSON cannot hold natively: a date or datetime becomes its ISO text; anything else is
    refused. The batch flow stages raw records with it too (etl.activities.batch.encode_record), so
    a date in a property is the same text whichever flow loads it."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"a value of type {type(value).__name__} is not JSON")


_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_STDLIB_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                                  default=json_default).encode


def all_finite(value: Any) -> bool:
    """False when a float anywhere in `value` (a dict, list or tuple) is NaN or infinite (orjson
    writes those as null, which would change the value silently)."""
    for item in (value.values() if isinstance(value, dict) else value):
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if kind is float or isinstance(item, float):
            if item - item != 0:  # NaN and the infinities: inf - inf is NaN
                return False
        elif isinstance(item, (dict, list, tuple)) and not all_finite(item):
            return False
    return True


def key_problem(value: Any, path: str) -> str | None:
    """Why a JSON object inside `value` cannot be stored as given (a key that is not text, so two
    keys could collide once written), or None."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    return (f"{where} has the key {shown(key, 32)} of type {type(key).__name__}; JSON object keys "
                            "must be text (1 and '1' would become the same key)")
                if isinstance(inner, (dict, list, tuple)):
                    stack.append((inner, f"{where}.{key[:32]}"))
        elif isinstance(item, (list, tuple)):
            stack.extend((inner, f"{where}[{n}]") for n, inner in enumerate(item)
                         if isinstance(inner, (dict, list, tuple)))
    return None


def _has_nul(encoded: str) -> bool:
    """True when JSON text holds an escaped real NUL (`\\u0000` after an even run of backslashes),
    not the six characters backslash-u-0-0-0-0 of the value itself (those are written `\\\\u0000`)."""
    start = encoded.find("\\u0000")
    while start != -1:
        run = 0
        while start - run - 1 >= 0 and encoded[start - run - 1] == "\\":
            run += 1
        if run % 2 == 0:
            return True
        start = encoded.find("\\u0000", start + 1)
    return False


def encode_json(name: str, value: Any) -> str:
    """`value` (a properties object) as the JSON text of its JSONB column; `Reject` says why not."""
    try:
        out = _dumps(value, default=json_default, option=_ORJSON_OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError: refuse, or let the exact encoder decide
        out = _encode_slow(name, value, str(exc)).encode("utf-8")
    return checked_json(name, value, out)


def checked_json(name: str, value: Any, out: bytes) -> str:
    """`out` (`value` encoded) as its column's text, once it passed every check a JSONB column
    needs: no NaN or infinity (orjson writes those as null), at most `MAX_JSON_BYTES`, no NUL."""
    if b"null" in out and not all_finite(value):
        raise Reject(f"{name} cannot be stored as JSON: it holds NaN or an infinity")
    if len(out) > MAX_JSON_BYTES:
        raise Reject(f"{name} is {len(out):,} bytes as JSON; at most {MAX_JSON_BYTES:,} are stored")
    text = out.decode()
    if b"\\u0000" in out and _has_nul(text):
        raise Reject(f"{name} contains a NUL character, which PostgreSQL JSONB cannot hold")
    return text


def _encode_slow(name: str, value: Any, why: str) -> str:
    """The rare values orjson refuses: a key that is not text (rejected), a lone surrogate
    (rejected), nesting past 254 levels (rejected); integers past 64 bits and keys of a str
    subclass are valid JSON, written exactly by the standard library's encoder."""
    if "surrogates not allowed" in why:
        raise Reject(f"{name} holds text that is not valid Unicode (a lone surrogate)")
    if "ecursion" in why:
        raise Reject(f"{name} is nested deeper than 254 levels")
    problem = key_problem(value, name)
    if problem:
        raise Reject(problem)
    try:
        text = _STDLIB_ENCODE(value)
    except (TypeError, ValueError) as exc:
        raise Reject(f"{name} cannot be stored as JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise Reject(f"{name} is nested too deeply to store") from None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Reject(f"{name} holds text that is not valid Unicode (a lone surrogate)") from None
    return text


# -- the transform -------------------------------------------------------------------------------


def parse_utc(value: Any) -> datetime:
    """A naive UTC datetime from an aware datetime or an ISO 8601 string with a zone."""
    if type(value) is str or isinstance(value, str):
        if len(value) == 20 and value[19] == "Z" and value[10] == "T":
            # The common "YYYY-MM-DDTHH:MM:SSZ": already UTC, so its wall time is the answer (the same
            # string without the Z parses exactly when the whole one does).
            try:
                moment = datetime.fromisoformat(value[:19])
            except ValueError:
                raise Reject(f"event_time_utc {shown(value)} is not an ISO 8601 time") from None
            if moment.tzinfo is None:
                return moment
        if len(value) > 64:
            raise Reject(f"event_time_utc {shown(value)} is not an ISO 8601 time")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise Reject(f"event_time_utc {shown(value)} is not an ISO 8601 time") from None
    elif isinstance(value, datetime):
        moment = value
    elif value is None:
        raise Reject("event_time_utc is missing")
    else:
        raise Reject(f"event_time_utc has type {type(value).__name__}; expected an ISO 8601 string")
    offset = moment.utcoffset()
    if offset is None:
        raise Reject(f"event_time_utc {shown(str(value))} has no zone; give it as UTC (Z) or with an offset")
    if not offset:
        return moment.replace(tzinfo=None)
    try:
        return (moment - offset).replace(tzinfo=None)
    except OverflowError:
        raise Reject(f"event_time_utc {shown(str(value))} is outside the years 1 to 9999 in UTC") from None


def _text(name: str, value: Any, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise Reject(f"{name} is missing")
        return None
    if type(value) is not str:
        if isinstance(value, str):
            value = str.__str__(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                value = int.__repr__(value)
            except ValueError:  # more digits than Python writes out (4,300)
                raise Reject(f"{name} is a number too long to be an identifier") from None
        else:
            raise Reject(f"{name} has type {type(value).__name__}; expected text")
    return value


def to_event(raw: Any) -> Event:
    """Turn one raw record into an `Event`, or raise `Reject` with the reason."""
    if not isinstance(raw, dict):
        raise Reject(f"record has type {type(raw).__name__}; expected an object")
    get = raw.get
    mapped = get(REJECTED)
    if mapped is not None:
        raise Reject(mapped if type(mapped) is str else "the source could not map the record")
    event_id = get("event_id")
    if type(event_id) is not str or not event_id:
        event_id = _text("event_id", event_id, True)
    # UTF-8 takes at most 4 bytes a character: only long ids need encoding to be measured.
    if len(event_id) * 4 > MAX_EVENT_ID_BYTES:  # type: ignore[arg-type]
        size = len(event_id.encode("utf-8", "surrogatepass"))  # type: ignore[union-attr]
        if size > MAX_EVENT_ID_BYTES:
            raise Reject(f"event_id is {size:,} bytes long; at most {MAX_EVENT_ID_BYTES:,} fit the unique index")
    employee_id = get("employee_id")
    if type(employee_id) is not str or not employee_id:
        employee_id = _text("employee_id", employee_id, True)
    texts = [value if type(value) is str and value else _text(name, value, False)
             for name, value in zip(OPTIONAL_TEXT, map(get, OPTIONAL_TEXT))]
    source_kind_id, parent_item_id, event_type, relation_type = texts
    # One check over every text of the record; only a failure looks field by field for the name.
    combined = "".join(filter(None, (event_id, employee_id, *texts)))  # type: ignore[arg-type]
    if "\x00" in combined or (not combined.isascii() and not _is_utf8(combined)):
        for name, value in zip(("event_id", "employee_id", *OPTIONAL_TEXT), (event_id, employee_id, *texts)):
            if value is not None and "\x00" in value:
                raise Reject(f"{name} contains a NUL byte, which PostgreSQL text cannot hold")
            if value is not None and not _is_utf8(value):
                raise Reject(f"{name} holds text that is not valid Unicode (a lone surrogate)")

    utc = parse_utc(get("event_time_utc"))
    tz_name = get("timezone")
    if tz_name is None or tz_name == "":
        tz = _UTC
    elif not isinstance(tz_name, str):
        raise Reject(f"timezone has type {type(tz_name).__name__}; expected an IANA zone name")
    else:
        try:
            tz = _ZONES.get(tz_name) or zone(tz_name)
        except pytz.UnknownTimeZoneError:
            raise Reject(f"unknown timezone {shown(tz_name)}; expected an IANA zone name such as "
                         "Europe/Berlin") from None
    try:
        local = tz.local(utc)
    except OverflowError:
        raise Reject(f"event_time_utc {utc.isoformat()} is outside the years 1 to 9999 in {tz.name}") from None

    ep, rp, mx = get("event_properties"), get("relation_properties"), get("metrics")
    try:
        if type(ep) is not dict or type(rp) is not dict or type(mx) is not dict:
            raise TypeError("not three plain objects")
        # The common case: the three columns encoded in one go, then checked as `encode_json` does.
        e1 = _dumps(ep, default=json_default, option=_ORJSON_OPTIONS)
        e2 = _dumps(rp, default=json_default, option=_ORJSON_OPTIONS)
        e3 = _dumps(mx, default=json_default, option=_ORJSON_OPTIONS)
    except TypeError:  # None, a subclass, not an object, or what orjson refuses: column by column
        (ep, rp, mx), encoded = _json_columns(ep, rp, mx)
    else:
        encoded = (checked_json("event_properties", ep, e1), checked_json("relation_properties", rp, e2),
                   checked_json("metrics", mx, e3))

    day = local.date()
    week = _WEEKS.get(day)
    if week is None:
        week = _week(day)
        if len(_WEEKS) < _WEEK_CACHE_MAX:
            _WEEKS[day] = week
    return Event(event_id, employee_id, utc, tz.name, source_kind_id, parent_item_id, event_type,  # type: ignore[arg-type]
                 relation_type, ep, rp, mx, local, week, encoded)  # type: ignore[arg-type]


def _json_columns(*values: Any) -> tuple[tuple[dict, dict, dict], tuple[str, str, str]]:
    """The three JSON columns one by one: a missing one is `{}`; one that is not an object, or
    cannot be stored, raises `Reject` naming it."""
    out, encoded = [], []
    for name, value in zip(JSON_FIELDS, values):
        if value is None:
            value, text = {}, "{}"
        elif isinstance(value, dict):
            text = encode_json(name, value)
        else:
            raise Reject(f"{name} has type {type(value).__name__}; expected an object")
        out.append(value)
        encoded.append(text)
    return tuple(out), tuple(encoded)  # type: ignore[return-value]


_dumps = orjson.dumps
#: The Monday of each local day seen (a year of events is 366 entries; bounded all the same).
_WEEKS: dict[date, date] = {}
_WEEK_CACHE_MAX = 100_000


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _reason_of(exc: BaseException) -> str:
    """A reject reason for an exception nobody expected: its type and message, cut short."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a hostile __str__
        message = "(no message)"
    return f"the record could not be read: {type(exc).__name__}: {message}"[:MAX_REASON]


def _is_control_flow(exc: BaseException) -> bool:
    # Temporal delivers an activity's cancellation as an exception in its thread: that is no
    # record's fault and must reach the activity.
    return type(exc).__module__.startswith(("temporalio", "asyncio", "concurrent"))


def transform(records: Iterable[Any]) -> tuple[list[Event], list[tuple[Any, str]]]:
    """Split raw records into events and `(raw, reason)` rejects. No record, whatever it holds,
    raises out of here: an unexpected exception becomes that record's reject."""
    events: list[Event] = []
    rejects: list[tuple[Any, str]] = []
    append = events.append
    for raw in records:
        try:
            append(to_event(raw))
        except Reject as why:
            rejects.append((raw, str(why)[:MAX_REASON]))
        except Exception as exc:  # noqa: BLE001 - one record never fails, stalls or wedges the page
            if _is_control_flow(exc):
                raise
            rejects.append((raw, _reason_of(exc)))
    return events, rejects
