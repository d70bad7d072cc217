"""Property-based tests of the transform and the loader (hypothesis), the loader on the session's real
PostgreSQL. Records are built from hostile parts: random Unicode in every text field (escape-like
text, real NULs, lone surrogates, emoji, RTL marks, strings up to 1 MB), random nested JSON (floats
with NaN and infinities, big integers, non-string and colliding keys), random times (offsets,
naive, epoch numbers, calendar edges, garbage) and zones (valid, invalid, wrong case).

Properties: the transform never raises; a record is an event exactly when an independent,
slow oracle (`expect`, written from SPEC, not from the code) says it is valid, so a valid record
is never rejected; every event holds exactly what the oracle derives (nothing silently changed),
the batch flow's staging path gives the same events, and every event round-trips through both
load paths and SELECT with identical values.

Bounded and reproducible in `make test` (profile `ci`: fixed seed, no example database); for a
longer local hunt:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_properties.py
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import pytz
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st
from psycopg2 import sql

from etl.core.models import JSON_FIELDS, MAX_EVENT_ID_BYTES, Event, to_event, transform
from etl.store.events import Events
from etl.store.rejects import reject_json
from etl.store.page_format import decode_page, encode_page, encode_record
from etl.store.staging import Staging
from tests.staged import stage_events

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture,
          HealthCheck.large_base_example, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=300, derandomize=True, database=None, deadline=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("long", max_examples=5_000, derandomize=False, database=None, deadline=None,
                          suppress_health_check=_QUIET, print_blob=True)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
#: The database properties cost a round trip per example: a quarter of the examples.
DB_PROFILE = settings(PROFILE, max_examples=max(25, PROFILE.max_examples // 4))

# -- strategies -----------------------------------------------------------------------------------

SPECIAL = ["\\u0000", "x\\u0000y", "\\\\u0000", "\x00", "a\x00b", "\ud800", "\udfff", "x\udc80", "\U0001F600",
           "\U0001F469\u200d\U0001F467", "\u200f", "\u202e", "\u202eRTL\u202c", "\\", "\t", "\n", "\r\n", "\\N",
           "\\.", " ", "e\u0301", "\ufeff", "\u2028", "null", "NaN", "'); DROP TABLE x; --", "%s", "\x7f", "\x1b[31m"]
ALL_CHARACTERS = st.characters(exclude_categories=())  # lone surrogates included
short_text = st.one_of(st.text(ALL_CHARACTERS, max_size=12), st.text(max_size=12), st.sampled_from(SPECIAL),
                       st.tuples(st.text(max_size=4), st.sampled_from(SPECIAL), st.text(max_size=4)).map("".join))
long_text = st.tuples(st.integers(1_000, 1_000_000), st.sampled_from(["ab", "é\U0001F600", "\\u0000 ", "x"])).map(
    lambda n_unit: (n_unit[1] * (n_unit[0] // len(n_unit[1]) + 1))[:n_unit[0]])
text = st.one_of(short_text, short_text, short_text, st.text(min_size=1, max_size=20), long_text)
identifier = st.one_of(text, text, st.integers(min_value=-(10**20), max_value=10**20), st.none(), st.booleans(),
                       st.floats(), st.lists(st.integers(), max_size=2))

keys = st.one_of(short_text, short_text, short_text, st.integers(-3, 3), st.none(), st.booleans(),
                 st.floats(allow_nan=False, min_value=-2, max_value=2))
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
                   st.floats(), st.floats(allow_nan=False, allow_infinity=False), short_text)
json_values = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(keys, inner, max_size=4)), max_leaves=10)
objects = st.dictionaries(keys, json_values, max_size=5)
text_objects = st.dictionaries(short_text, st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), short_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(short_text, inner, max_size=3)),
    max_leaves=8), max_size=5)
colliding = st.sampled_from([{1: "a", "1": "b"}, {None: 1, "null": 2}, {True: 1}, {"k": {2: 0, "2": 1}},
                             {"k": [{"x": 1, 1.5: 2}]}])
properties = st.one_of(text_objects, text_objects, objects, colliding, st.none(), st.just({}), st.just([]),
                       st.just(0), st.just(""), json_values)

offsets = st.integers(-86_399, 86_399).map(lambda s: timezone(timedelta(seconds=s)))
common_offsets = st.sampled_from([timezone.utc, timezone(timedelta(hours=1)), timezone(timedelta(hours=-8)),
                                  timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=13, minutes=45))])
aware = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999),
                     timezones=st.one_of(common_offsets, offsets))
recent = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=common_offsets)
EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:00Z", "0001-01-01T00:00:00Z",
         "9999-12-31T23:59:59.999999Z", "0001-01-01T00:59:59+01:00", "2024-02-29T12:00:00Z", "2023-02-29T00:00Z",
         "2024-03-31T01:30:00Z", "2024-10-27T00:59:59.999999Z", "2024-10-27T01:00:00Z", "1900-01-01T00:00:00Z",
         "24:00", "", "2024-13-01T00:00Z", "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:60Z", "\u0661\u0669\u0667\u0660"]
times = st.one_of(
    recent.map(lambda d: d.isoformat()), recent.map(lambda d: d.isoformat()), recent.map(lambda d: d.isoformat()),
    aware.map(lambda d: d.isoformat()), aware, recent.map(lambda d: d.astimezone(timezone.utc).isoformat()[:-6] + "Z"),
    st.datetimes().map(datetime.isoformat), st.datetimes(), st.integers(), st.floats(), st.sampled_from(EDGES),
    short_text, st.none())
ZONES = sorted(pytz.all_timezones)
zones = st.one_of(st.sampled_from(ZONES), st.sampled_from(ZONES), st.sampled_from(ZONES).map(str.lower),
                  st.sampled_from(ZONES).map(str.upper), st.sampled_from(["utc", "UTC", "Utc", "", "Mars/Olympus_Mons",
                                                                          "Europe/Berlin\n", " UTC", "../etc/passwd"]),
                  short_text, st.none(), st.integers())

records = st.fixed_dictionaries(
    {"event_id": st.one_of(st.text(min_size=1, max_size=30), identifier),
     "employee_id": st.one_of(st.text(min_size=1, max_size=30), identifier),
     "event_time_utc": times},
    optional={"source_kind_id": identifier, "parent_item_id": identifier, "event_type": identifier,
              "relation_type": identifier, "timezone": zones, "event_properties": properties,
              "relation_properties": properties, "metrics": properties},
)
# Records that are valid unless a part is deliberately bad: most examples then exercise the load path.
clean_text = st.one_of(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1,
                               max_size=30), st.sampled_from([t for t in SPECIAL if t and t.isprintable()]),
                       long_text.filter(lambda t: "\x00" not in t))
good_records = st.fixed_dictionaries(
    {"event_id": clean_text, "employee_id": clean_text,
     "event_time_utc": st.one_of(recent.map(lambda d: d.isoformat()), recent, aware.map(lambda d: d.isoformat()))},
    optional={"source_kind_id": clean_text, "parent_item_id": clean_text, "event_type": clean_text,
              "relation_type": clean_text, "timezone": st.one_of(st.sampled_from(ZONES), st.sampled_from(ZONES).map(
                  str.lower)), "event_properties": text_objects, "relation_properties": text_objects,
              "metrics": text_objects},
)
batches = st.lists(st.one_of(records, records, good_records, good_records, good_records, json_values), max_size=8)
# Half the pages hold a record of a dict subclass: not pickled, so staged record by record.
pages = st.one_of(batches, st.tuples(batches, good_records).map(lambda both: both[0] + [OrderedDict(both[1])]))


# -- the oracle: what SPEC says a record becomes, written without looking at the transform -------------


class Rejected(Exception):
    pass


def _clean_text(value: str) -> str:
    if "\x00" in value:
        raise Rejected("NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected("surrogate") from None
    return value


def _expected_text(record: dict, name: str, required: bool) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise Rejected(f"{name} missing")
        return None
    if isinstance(value, bool):
        raise Rejected("bool")
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise Rejected("type")
    return _clean_text(value)


def _expected_json(value, depth: int = 0):
    """`value` as JSON can hold it, or `Rejected`."""
    if depth > 200:
        raise Rejected("deep")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise Rejected("non-finite")
        return value
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, list):
        return [_expected_json(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise Rejected("key")
        return {_clean_text(k): _expected_json(v, depth + 1) for k, v in value.items()}
    raise Rejected("type")


def expect(record) -> dict | None:
    """The row SPEC derives from `record` (column -> value), or None when it must be rejected."""
    try:
        if not isinstance(record, dict):
            raise Rejected("not an object")
        row = {name: _expected_text(record, name, name in ("event_id", "employee_id"))
               for name in ("event_id", "employee_id", "source_kind_id", "parent_item_id", "event_type",
                            "relation_type")}
        if len(row["event_id"].encode("utf-8")) > MAX_EVENT_ID_BYTES:
            raise Rejected("long id")
        given = record.get("event_time_utc")
        if isinstance(given, str):
            try:
                given = datetime.fromisoformat(given)
            except ValueError:
                raise Rejected("time") from None
        if not isinstance(given, datetime) or given.utcoffset() is None:
            raise Rejected("time")
        zone_name = record.get("timezone")
        if zone_name is None or zone_name == "":
            zone_name = "UTC"
        if not isinstance(zone_name, str):
            raise Rejected("zone type")
        try:
            zone = pytz.timezone(zone_name)
        except (pytz.UnknownTimeZoneError, ValueError):
            raise Rejected("zone") from None
        try:
            utc = given.astimezone(pytz.utc)
            local = utc.astimezone(zone)
        except OverflowError:
            raise Rejected("calendar") from None
        row.update(event_time_utc=utc.replace(tzinfo=None), timezone=zone.zone, event_time=local.replace(tzinfo=None))
        row["week"] = row["event_time"].date() - timedelta(days=row["event_time"].weekday())
        for name in JSON_FIELDS:
            value = record.get(name)
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise Rejected(f"{name} type")
            row[name] = _expected_json(value)
        return row
    except Rejected:
        return None


def as_jsonb_reads(number: float) -> int | float:
    """What a float reads back as from a JSONB column (README, "Data model"): PostgreSQL keeps a
    JSON number as `numeric`, exactly the decimal the float was written as (its shortest repr),
    and writes it back without an exponent and without the sign of a zero; so an integral value
    in exponent form reads back as an integer (1e23 as 10**23, 7.205759403792194e+16 as
    72057594037921940) and -0.0 as 0.0."""
    text = format(Decimal(repr(number)), "f")
    return json.loads(text.lstrip("-") if Decimal(text) == 0 else text)


def same_json(stored, given, read=lambda number: number) -> bool:
    """JSON equality: text, booleans, nulls and integers exactly; a float as `read` gives it back
    (itself in memory, `as_jsonb_reads` from the table)."""
    if isinstance(given, bool) or given is None or isinstance(given, str):
        return type(stored) is type(given) and stored == given
    if isinstance(given, float):
        expected = read(given)
        return type(stored) is type(expected) and stored == expected
    if isinstance(given, int):
        return type(stored) is int and stored == given
    if isinstance(given, list):
        return isinstance(stored, list) and len(stored) == len(given) and all(
            same_json(a, b, read) for a, b in zip(stored, given))
    if isinstance(given, dict):
        return isinstance(stored, dict) and stored.keys() == given.keys() and all(
            same_json(stored[k], v, read) for k, v in given.items())
    return False


def as_row(event: Event) -> dict:
    row = {name: getattr(event, name) for name in ("event_id", "employee_id", "source_kind_id", "parent_item_id",
                                                    "event_type", "relation_type", "event_time_utc", "timezone",
                                                    "event_time", "week")}
    row.update(zip(JSON_FIELDS, (json.loads(text) for text in event.json_columns())))
    return row


def assert_row(found: dict, wanted: dict, read=lambda number: number) -> None:
    for name, value in wanted.items():
        if name in JSON_FIELDS:
            assert same_json(found[name], value, read), (name, found[name], value)
        else:
            assert found[name] == value and type(found[name]) is type(value), (name, found[name], value)


# -- properties ----------------------------------------------------------------------------------


@PROFILE
@given(batches)
def test_the_transform_never_raises_and_keeps_exactly_the_valid_records(batch):
    events, rejects = transform(batch)
    assert len(events) + len(rejects) == len(batch)
    produced = iter(events)
    refused = iter(rejects)
    for record in batch:
        wanted = expect(record)
        note("valid record" if wanted is not None else "invalid record")
        if wanted is None:
            raw, reason = next(refused)
            assert isinstance(reason, str) and 0 < len(reason) <= 500
            json.loads(reject_json(raw))  # the rejects table can record it
        else:
            event = next(produced)  # a valid record is never rejected
            assert_row(as_row(event), wanted)  # and nothing in it was changed


@PROFILE
@given(batches)
def test_the_batch_flows_staging_changes_nothing(batch):
    """ETLFlow stages raw records as JSON lines before the transform: what comes out must be what the
    streaming flow's in-memory transform makes of the same records."""
    for record in batch:
        direct = expect(record)
        try:
            line = encode_record(record)
        except Exception:  # noqa: BLE001 - unstorable: rejected at extract
            assert direct is None
            continue
        events, _ = transform([json.loads(line)])
        if direct is None:
            assert events == []
        else:
            assert len(events) == 1
            assert_row(as_row(events[0]), direct)


@PROFILE
@given(pages)
def test_a_staged_page_changes_nothing(batch):
    """ETLFlow stages a page pickled (the records as they are) when every value in it is a built-in
    or a time, else record by record as JSON lines: either way the transform must make of it what it
    makes of the records themselves, and only what cannot be stored is left out (and rejected, with
    its reason)."""
    text, staged, unstorable = encode_page(batch)
    back = decode_page(text)
    assert staged == len(back) and staged + len(unstorable) == len(batch)
    note(f"staged as {text[:1].decode()}")
    if text[:1] == b"P":  # every record staged, and read back as the streaming flow reads it
        assert not unstorable
        events, rejects = transform(back)
        direct_events, direct_rejects = transform(batch)
        assert [event.copy_row() for event in events] == [event.copy_row() for event in direct_events]
        assert [why for _, why in rejects] == [why for _, why in direct_rejects]
        pairs = zip(batch, back)
    else:
        kept = iter(back)
        pairs = []
        for record in batch:
            try:
                encode_record(record)
            except Exception:  # noqa: BLE001 - unstorable: rejected at extract, never staged
                assert expect(record) is None
                continue
            pairs.append((record, next(kept)))
        assert next(kept, None) is None
    for record, restored in pairs:
        direct = expect(record)
        events, _ = transform([restored])
        if direct is None:
            assert events == []
        else:
            assert len(events) == 1
            assert_row(as_row(events[0]), direct)


def _select(db) -> dict[str, dict]:
    columns = ("event_id", "employee_id", "source_kind_id", "parent_item_id", "event_type", "relation_type",
               "event_time_utc", "timezone", "event_time", "week", *JSON_FIELDS)
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(map(sql.Identifier, columns)), db.tables.events)
    rows = db.run(lambda cur: (cur.execute(query), cur.fetchall())[1])
    return {row[0]: dict(zip(columns, row)) for row in rows}


@pytest.mark.parametrize("path", ["copy", "staging"])
@DB_PROFILE
@given(batch=batches)
def test_every_event_round_trips_through_postgresql(db, path, batch):
    db.run(lambda cur: cur.execute(sql.SQL("TRUNCATE {}").format(db.tables.events)))
    events, _ = transform(batch)
    # Two records with one event_id are one event (loads are idempotent); which of them a load keeps
    # is not specified, so each id is loaded once here.
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    loaded = list(unique.values())
    if path == "copy":
        assert Events(db).insert(loaded).inserted == len(unique)
    else:
        staging = Staging(db)
        key = f"props-{uuid.uuid4().hex[:8]}/run/b0"
        stage_events(staging, key, loaded)
        assert staging.load_staged(key, len(loaded)).inserted == len(unique)
    stored = _select(db)
    assert stored.keys() == unique.keys()
    for event_id, event in unique.items():
        assert_row(stored[event_id], as_row(event), as_jsonb_reads)


def test_the_local_time_is_exactly_pytz_for_every_zone():
    """The transform computes local times from pytz's transition tables without pytz's per-event
    normalisation; this holds it to pytz on both sides of every transition of every zone."""
    checked = 0
    for name in pytz.all_timezones:
        zone = pytz.timezone(name)
        instants = [datetime(1, 1, 1, 12), datetime(1970, 1, 1), datetime(2024, 3, 31, 1, 30),
                    datetime(9999, 12, 30)]
        for moment in getattr(zone, "_utc_transition_times", [])[1:]:
            instants += [moment - timedelta(microseconds=1), moment, moment + timedelta(minutes=30)]
        for utc in instants:
            try:
                wanted = utc.replace(tzinfo=pytz.utc).astimezone(zone).replace(tzinfo=None)
            except OverflowError:
                continue
            event = to_event({"event_id": "z", "employee_id": "z", "event_time_utc": utc.isoformat() + "Z",
                              "timezone": name})
            assert (event.event_time, event.timezone) == (wanted, zone.zone), (name, utc)
            checked += 1
    assert checked > 100_000


def test_numbers_read_back_from_jsonb_as_the_readme_says(db):
    """The README's examples of what PostgreSQL gives back for a float, read from the table."""
    given = {"a": -0.0, "b": 1e23, "c": 7.205759403792194e+16, "d": 1.5, "e": 123456789.0, "f": 1e-7}
    events, _ = transform([{"event_id": "n1", "employee_id": "e", "event_time_utc": "2024-01-01T00:00:00Z",
                            "metrics": given}])
    Events(db).insert(events)
    stored = db.scalar(sql.SQL("SELECT metrics FROM {} WHERE event_id = 'n1'").format(db.tables.events))
    assert stored == {"a": 0.0, "b": 10**23, "c": 72057594037921940, "d": 1.5, "e": 123456789.0, "f": 1e-7}
    assert {k: type(v) for k, v in stored.items()} == {"a": float, "b": int, "c": int, "d": float, "e": float,
                                                       "f": float}
    assert stored == {k: as_jsonb_reads(v) for k, v in given.items()}
