"""Poison-proofing, case by case (issue 12): no record, argument or setting can wedge a worker, stall
a flow, retry forever or be silently changed. Pure logic where it is pure logic; the error
classification against real PostgreSQL errors (the session's server raises each SQLSTATE)."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import re
import subprocess
import sys
from collections import OrderedDict
from datetime import date, datetime, timezone
from decimal import Decimal
from fractions import Fraction

import httpx
import psycopg2
import pytest
import pytz
from temporalio.exceptions import ApplicationError

from etl.activities.classify import non_retryable_errors
from etl.core.errors import ConfigError, QueryError
from etl.core.models import to_event, transform
from etl.core.query import QueryFactory
from etl.core.settings import PROJECT_ROOT, Settings, settings_from_env
from etl.store.page_format import decode_page, encode_page, encode_record
from etl.store.rejects import reject_json, reject_key
from etl.store.schema import Tables

ESCAPED_NUL = "\\u0000"  # the six characters backslash-u-0-0-0-0, not a NUL


def raw(**overrides):
    record = {"event_id": "e1", "employee_id": "alice", "event_time_utc": "2024-03-31T01:30:00Z",
              "timezone": "Europe/Berlin", "event_properties": {"title": "t"}}
    record.update(overrides)
    return record


def one(record) -> tuple[list, list]:
    """`transform` of one record: whatever it holds, this returns (it never raises)."""
    return transform([record])


# -- 1. per-record isolation -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["event_id", "employee_id", "parent_item_id", "relation_type"])
def test_escape_like_text_in_a_text_field_loads_as_given(field):
    value = f"x{ESCAPED_NUL}y"
    events, rejects = one(raw(**{field: value}))
    assert rejects == [] and getattr(events[0], field) == value


class Hostile(dict):
    """A record whose own methods raise, with `error`."""

    error: BaseException = StopIteration()

    def get(self, *args):
        raise self.error


@pytest.mark.parametrize("error", [StopIteration(), RecursionError("deep"), KeyError("k"), ZeroDivisionError(),
                                   MemoryError(), UnicodeError("u"), AttributeError("a")],
                         ids=lambda e: type(e).__name__)
def test_no_exception_from_a_record_leaves_the_transform(error):
    hostile = Hostile(event_id="h1")
    hostile.error = error
    events, rejects = transform([raw(event_id="before"), hostile, raw(event_id="after")])
    assert [e.event_id for e in events] == ["before", "after"]
    assert len(rejects) == 1 and type(error).__name__ in rejects[0][1]
    json.dumps(rejects[0][0])  # the reject can be written


def test_a_record_whose_repr_and_json_raise_is_still_a_storable_reject():
    class Opaque:
        def __repr__(self):
            raise ValueError("no repr")

    class Worse(Hostile):
        def items(self):
            raise RuntimeError("no items")

    events, rejects = transform([Worse(event_id="w", x=Opaque())])
    assert events == [] and len(rejects) == 1
    stored = json.loads(reject_json(rejects[0][0]))  # what the rejects table records
    assert stored["type"] == "<Worse>" and len(reject_key("s-x", rejects[0][0])) == 44


@pytest.mark.parametrize("value", [Decimal("1.5"), OrderedDict(a=1), Hostile(a=1), type("Own", (), {})(),
                                   datetime(2024, 1, 1, tzinfo=pytz.utc), Fraction(1, 3)])
def test_a_page_holding_a_value_of_another_class_is_staged_as_json_lines(value):
    # Only built-ins and the datetime module's types are pickled: nothing else could be read back.
    page = [raw(), raw(event_id="e2", event_properties={"v": value})]
    text, staged, unstorable = encode_page(page)
    assert text[:1] == b"L" and staged + len(unstorable) == 2


def test_a_pickled_page_keeps_what_json_would_change_and_the_transform_judges_it():
    page = [raw(event_properties={"n": float("nan")}), raw(event_id="e2", event_properties={1: "a", "1": "b"}),
            raw(event_id="e3", metrics={"big": 2**80}, event_time_utc=datetime(2024, 1, 1, tzinfo=timezone.utc)),
            raw(event_id="e4\ud800"), ["not", "a", "record"]]
    text, staged, unstorable = encode_page(page)
    assert text[:1] == b"P" and staged == 5 and not unstorable
    back = decode_page(text)
    assert repr(back) == repr(page)
    events, rejects = transform(back)
    assert [e.event_id for e in events] == ["e3"] and json.loads(events[0].json_columns()[2]) == {"big": 2**80}
    assert [why for _, why in rejects] == [why for _, why in transform(page)[1]]


@pytest.mark.parametrize("page, words", [
    (b"P" + pickle.dumps([os.system]), "names posix.system"),
    (b"P" + pickle.dumps([Decimal(1)]), "names decimal.Decimal"),
    (b"P" + pickle.dumps({"event_id": "e"}), "holds a dict"),
    (b"P" + pickle.dumps([1])[:-3], "truncated"),
    (b"X[]", "starts with b'X'"),
])
def test_a_staged_page_can_build_data_but_never_call_code(page, words):
    with pytest.raises(Exception, match=re.escape(words)):
        decode_page(page)


def test_a_stop_iteration_from_an_activity_fails_it_instead_of_wedging_the_worker():
    """asyncio refuses to put a StopIteration into a future: an activity thread raising one left its
    future pending for good (the worker slot held, shutdown stuck)."""

    @non_retryable_errors
    def activity_body():
        raise StopIteration

    async def run():
        loop = asyncio.get_running_loop()
        # A guard, not a timing: the answer is immediate; the old code never answered.
        return await asyncio.wait_for(loop.run_in_executor(None, activity_body), timeout=30)

    with pytest.raises(ApplicationError) as failed:
        asyncio.run(run())
    assert failed.value.type == "StopIteration"


# -- 2. stored as given, or rejected with a reason ---------------------------------------------------


@pytest.mark.parametrize("when, zone", [("0001-01-01T00:00:00+01:00", None), ("9999-12-31T23:59:59-01:00", None),
                                        ("9999-12-31T23:00Z", "Asia/Tokyo"), ("0001-01-01T00:30Z", "America/New_York")])
def test_times_at_the_edge_of_the_calendar_are_rejected(when, zone):
    events, rejects = one(raw(event_time_utc=when, timezone=zone))
    assert events == [] and "outside the years 1 to 9999" in rejects[0][1]


def test_the_edges_that_fit_are_kept():
    first = to_event(raw(event_time_utc="0001-01-01T00:00:00Z", timezone="UTC"))
    last = to_event(raw(event_time_utc="9999-12-31T23:59:59.999999Z", timezone="UTC"))
    assert (first.event_time_utc, first.week) == (datetime(1, 1, 1), date(1, 1, 1))
    assert last.event_time == datetime(9999, 12, 31, 23, 59, 59, 999999)


@pytest.mark.parametrize("title", [f"fails on {ESCAPED_NUL} in JSON", ESCAPED_NUL, "\\" + ESCAPED_NUL + "\\"])
def test_escape_like_text_in_a_property_loads_as_given(title):
    events, rejects = one(raw(event_properties={"title": title, ESCAPED_NUL: [title]}))
    assert rejects == [] and events[0].event_properties == {"title": title, ESCAPED_NUL: [title]}


@pytest.mark.parametrize("value", ["a\x00b", "\\\x00", {"k": "\x00"}, ["\x00"]], ids=range(4))
def test_a_real_nul_in_a_property_is_rejected(value):
    events, rejects = one(raw(event_properties={"title": value}))
    assert events == [] and "NUL character" in rejects[0][1]
    events, rejects = one(raw(metrics={"ke\x00y": 1}))
    assert events == [] and "NUL character" in rejects[0][1]


@pytest.mark.parametrize("properties, words", [
    ({1: "one", "1": "uno"}, "of type int"),
    ({None: 1}, "of type NoneType"),
    ({True: 1}, "of type bool"),
    ({"nested": [{"a": {2.5: 0}}]}, "of type float"),
])
def test_keys_that_are_not_text_are_rejected_not_merged(properties, words):
    events, rejects = one(raw(event_properties=properties))
    assert events == [] and words in rejects[0][1] and "event_properties" in rejects[0][1]
    with pytest.raises(ValueError, match=words):  # the batch flow's staging refuses it the same way
        encode_record(raw(event_properties=properties))


@pytest.mark.parametrize("value", [[], 0, "", [1], False, "{}"], ids=repr)
def test_properties_that_are_not_objects_are_rejected_empty_or_not(value):
    for name in ("event_properties", "relation_properties", "metrics"):
        events, rejects = one(raw(**{name: value}))
        assert events == [] and f"{name} has type {type(value).__name__}; expected an object" == rejects[0][1]


def test_missing_properties_are_an_empty_object():
    event = to_event(raw(event_properties=None, metrics=None))
    assert (event.event_properties, event.metrics) == ({}, {})


@pytest.mark.parametrize("given, canonical", [("europe/berlin", "Europe/Berlin"), ("utc", "UTC"),
                                              ("AMERICA/LOS_ANGELES", "America/Los_Angeles"), ("Utc", "UTC"),
                                              ("Europe/Berlin", "Europe/Berlin"), ("", "UTC"), (None, "UTC")])
def test_zones_are_stored_under_their_canonical_name(given, canonical):
    event = to_event(raw(timezone=given))
    assert event.timezone == canonical
    assert event.event_time == (datetime(2024, 3, 31, 3, 30) if canonical == "Europe/Berlin"
                                else event.event_time)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe/Berlin\n", " UTC", "x" * 100_000, "Europe/\x00",
                                  "\ud800"], ids=range(6))
def test_unknown_zones_are_rejected_with_a_short_quote(zone):
    events, rejects = one(raw(timezone=zone))
    assert events == [] and "unknown timezone" in rejects[0][1] and len(rejects[0][1]) < 200


def test_non_finite_numbers_are_rejected_not_nulled():
    for value in (float("nan"), float("inf"), -float("inf"), [1.0, {"x": float("nan")}]):
        events, rejects = one(raw(metrics={"heat": value}))
        assert events == [] and "NaN or an infinity" in rejects[0][1]


def test_big_integers_and_dates_in_properties_are_kept():
    event = to_event(raw(metrics={"big": 2**80, "neg": -(2**70)}, event_properties={"when": date(2024, 1, 2)}))
    assert json.loads(event.json_columns()[2]) == {"big": 2**80, "neg": -(2**70)}
    assert json.loads(event.json_columns()[0]) == {"when": "2024-01-02"}


def test_a_reason_is_short_whatever_the_value():
    events, rejects = one(raw(event_time_utc="9" * 1_000_000))
    assert len(rejects[0][1]) < 200


@pytest.mark.parametrize("column", ["event_properties", "relation_properties", "metrics"])
def test_a_huge_properties_column_is_a_reject_not_a_stuck_page(column):
    # 64 MiB of JSON and one more byte: beyond it a row could outgrow one staged batch row, and
    # past 255 MB PostgreSQL's jsonb refuses the whole page on every retry. Four-byte characters:
    # the bound is on UTF-8 bytes, not characters.
    just_fits = {"x": "a" * (64 * 2**20 - len('{"x":""}'))}
    events, rejects = one(raw(**{column: just_fits}))
    assert len(events) == 1 and not rejects
    for huge in ({"x": "a" * (64 * 2**20)}, {"x": "\U0001F600" * (16 * 2**20)}):
        events, rejects = one(raw(**{column: huge}))
        assert not events and len(rejects) == 1
        assert rejects[0][1].startswith(f"{column} is ") and "bytes as JSON; at most 67,108,864" in rejects[0][1]


def test_a_huge_rejected_record_is_kept_as_a_prefix():
    from etl.store.rejects import MAX_REJECT_JSON_CHARS, reject_json

    small = raw(event_id=None)
    assert json.loads(reject_json(small)) == small
    big = raw(event_id=None, event_properties={"x": "b" * MAX_REJECT_JSON_CHARS})
    kept = json.loads(reject_json(big))
    assert kept["record_json_chars"] > MAX_REJECT_JSON_CHARS
    assert len(kept["truncated_record_json"]) == 1_000_000


# -- 3. settings and arguments -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["events\n", "events\r", "ev\tents", "pg_class", "pg_catalog", "PG_Stat",
                                  "events_rejects", "x_raw_pages", "x_staged", "x_staged_bk", "x_staged_batches", "x_loads",
                                  "x_cursors",
                                  "x_ledger", "EVENTS_REJECTS"])
def test_events_table_refuses_control_characters_system_names_and_companions(name):
    with pytest.raises(ConfigError) as refused:
        settings_from_env({"EVENTS_TABLE": name})
    assert refused.value.variable == "EVENTS_TABLE" and "expected an SQL identifier" in str(refused.value)
    with pytest.raises(ConfigError):
        Settings().replace(events_table=name)
    with pytest.raises(ConfigError):
        Tables(name)


def test_every_companion_table_has_a_refused_suffix():
    from etl.core.settings import COMPANION_SUFFIXES

    tables = Tables("events")
    names = {s for statement in tables.ddl() for s in _identifiers(statement)}
    suffixes = {n[len("events"):] for n in names if n.startswith("events") and n != "events"}
    assert suffixes and suffixes <= set(COMPANION_SUFFIXES), suffixes - set(COMPANION_SUFFIXES)


def _identifiers(composed) -> list[str]:
    from psycopg2 import sql

    found = []
    for part in getattr(composed, "seq", []):
        if isinstance(part, sql.Identifier):
            found.extend(part.strings)
        elif isinstance(part, sql.Composed):
            found.extend(_identifiers(part))
    return found


@pytest.mark.parametrize("query_type, args, field", [
    ("github", {"owner": "octo-org\n", "repo": "r", "since": "2024-01-01", "until": "2024-02-01"}, "owner"),
    ("github", {"owner": "octo", "repo": "r\n", "since": "2024-01-01", "until": "2024-02-01"}, "repo"),
    ("launchpad", {"member": "alice\n", "data_date_start": "2024-01-01", "data_date_end": "2024-02-01"}, "member"),
    ("launchpad", {"member": "alice", "data_date_start": "2024-01-01", "data_date_end": "2024-02-01",
                   "service_root": "https://api.launchpad.net/\r\nX: y"}, "service_root"),
    ("launchpad", {"member": "al\x00ice", "data_date_start": "2024-01-01", "data_date_end": "2024-02-01"}, "member"),
])
def test_control_characters_are_refused_in_query_arguments(query_type, args, field):
    with pytest.raises(QueryError) as refused:
        QueryFactory.create(query_type, args)
    assert refused.value.field == field and "control character" in str(refused.value)


@pytest.mark.parametrize("args, field, words", [
    ({"count": "5" * 5_000}, "count", "too long"),
    ({"count": 10**30}, "count", "is outside"),
    ({"count": str(2**60)}, "count", "is outside"),
    ({"bad_rate": "nan"}, "bad_rate", "finite"),
    ({"page_size": "1e400"}, "page_size", "not a whole number"),
])
def test_numbers_are_bounded(args, field, words):
    with pytest.raises(QueryError) as refused:
        QueryFactory.create("synthetic", args)
    assert refused.value.field == field and words in str(refused.value) and len(str(refused.value)) < 300


def test_a_huge_argument_is_quoted_by_a_short_prefix():
    with pytest.raises(QueryError) as refused:
        QueryFactory.create("github", {"owner": "o" * 100_000, "repo": "r", "since": "2024-01-01",
                                       "until": "2024-02-01"})
    assert "100,000 characters" in str(refused.value) and len(str(refused.value)) < 300
    with pytest.raises(QueryError) as unknown:
        QueryFactory.create("synthetic", {"k" * 100_000: 1})
    assert len(str(unknown.value)) < 400


def test_a_field_can_override_its_bounds():
    from dataclasses import dataclass, field

    from etl.core.query import Query

    @dataclass(frozen=True)
    class Bounded(Query):
        code: str = field(default="", metadata={"max_length": 3})
        size: int = 0
        field_limits = {"size": {"minimum": 1, "maximum": 10}}

    assert Bounded.from_dict({"code": "abc", "size": "10"}) == Bounded("abc", 10)
    for args in ({"code": "abcd"}, {"size": "11"}, {"size": "0"}):
        with pytest.raises(QueryError):
            Bounded.from_dict(args)


@pytest.mark.parametrize("queue", ["q" * 5_000, "tq\n", "tq\x00", " tq", "/_sys/tq", "\u00e9" * 501],
                         ids=["long", "newline", "nul", "space", "sys", "bytes"])
def test_task_queue_names_are_checked_before_anything_starts(queue):
    from etl.launch.plan import plan_flow

    with pytest.raises(ConfigError) as refused:
        plan_flow(Settings(), "synthetic-events", {"count": "10"}, task_queue=queue)
    assert refused.value.variable == "--task-queue" and len(str(refused.value)) < 300
    with pytest.raises(ConfigError):
        settings_from_env({"ETL_TASK_QUEUE": queue})


def test_the_launcher_prints_no_traceback_for_bad_input(stack, tmp_path):
    """Against the session's real Temporal server: a 5,000-character task queue used to reach it and
    come back as `RPCError: taskQueue length exceeds limit`, with a traceback."""
    from tests.workers import settings_env

    env = {"PATH": "/usr/bin:/bin", **settings_env(stack.settings), "ETL_STATE_DIR": str(tmp_path),
           "PYTHONPATH": str(PROJECT_ROOT)}
    cases = [["synthetic-events", "--task-queue", "q" * 5_000], ["synthetic-events", "--arg", "count=" + "9" * 5_000],
             ["github-issues", "--arg", "owner=octo-org\n", "--arg", "repo=r", "--arg", "since=2024-01-01",
              "--arg", "until=2024-02-01"], ["synthetic-events", "--batch-size", str(10**12)]]
    for argv in cases:
        done = subprocess.run([sys.executable, "scripts/run_flow.py", *argv], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and "Traceback" not in done.stderr and done.stderr.startswith("error: "), (
            argv[:2], done.stderr[-2000:])
        assert len(done.stderr) < 600


# -- 4. one classification of errors -------------------------------------------------------------


def _server_error(db, sqlstate: str) -> psycopg2.Error:
    """A real error with `sqlstate`, raised by the session's PostgreSQL."""
    def fail(cur):
        cur.execute(f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$")

    with pytest.raises(psycopg2.Error) as raised:
        with db.connection() as conn, conn.cursor() as cur:
            fail(cur)
    assert raised.value.pgcode == sqlstate
    return raised.value


PERMANENT = ["42703", "42P01", "42601", "42501", "22P02", "22001", "23502", "23503", "23514", "3D000", "28P01",
             "0A000", "54000"]
TRANSIENT = ["23505", "40001", "40P01", "55P03", "57P01", "57014", "53300", "08006", "58030", "XX000"]


def _raised_through_activity(exc: BaseException, attempt_error=None) -> ApplicationError:
    @non_retryable_errors
    def activity_body():
        raise exc

    with pytest.raises(ApplicationError) as failed:
        activity_body()
    return failed.value


@pytest.mark.parametrize("sqlstate", PERMANENT + TRANSIENT)
def test_database_errors_are_classified_by_sqlstate(db, sqlstate):
    error = _server_error(db, sqlstate)
    failed = _raised_through_activity(error)
    assert failed.non_retryable == (sqlstate in PERMANENT), (sqlstate, failed)
    assert failed.type == type(error).__name__
    if failed.non_retryable:
        assert f"SQLSTATE {sqlstate}" in failed.message


def test_a_real_undefined_column_is_not_retried(db):
    from psycopg2 import sql

    with pytest.raises(psycopg2.errors.UndefinedColumn) as raised:
        db.run(lambda cur: cur.execute(sql.SQL("SELECT no_such_column FROM {}").format(db.tables.events)))
    failed = _raised_through_activity(raised.value)
    assert failed.non_retryable and failed.type == "UndefinedColumn" and "EVENTS_TABLE" in failed.message


@pytest.mark.parametrize("error, retryable", [
    (httpx.InvalidURL("Invalid non-printable ASCII character in URL"), False),
    (httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'gopher://'"), False),
    (httpx.ConnectError("refused"), True),
    (httpx.ReadTimeout("slow"), True),
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v))
def test_http_errors_are_classified_by_kind(error, retryable):
    assert _raised_through_activity(error).non_retryable is not retryable


@pytest.mark.parametrize("status, retryable", [(400, False), (401, False), (403, False), (404, False), (410, False),
                                               (422, False), (408, True), (429, True), (500, True), (503, True)])
def test_http_errors_are_classified_by_status(status, retryable):
    request = httpx.Request("GET", "http://127.0.0.1/x")
    error = httpx.HTTPStatusError("refused", request=request, response=httpx.Response(status, request=request))
    assert _raised_through_activity(error).non_retryable is not retryable


def test_unknown_errors_are_retried_a_few_times_then_not():
    from etl.activities.classify import UNKNOWN_ATTEMPTS, classify

    assert classify(RuntimeError("x"), attempt=1).retryable
    assert classify(RuntimeError("x"), attempt=UNKNOWN_ATTEMPTS - 1).retryable
    assert not classify(RuntimeError("x"), attempt=UNKNOWN_ATTEMPTS).retryable


def test_a_permanent_failure_names_the_batch_and_what_to_fix():
    from etl.workflows.flow_io import BatchRef

    @non_retryable_errors
    def transform_batch(self, ref):
        raise httpx.InvalidURL("Invalid non-printable ASCII character in URL")

    with pytest.raises(ApplicationError) as failed:
        transform_batch(object(), BatchRef(batch_key="flow-1/run/b3", query_type="github", strategy="github-issues"))
    message = failed.value.message
    assert "batch flow-1/run/b3" in message and "strategy github-issues" in message
    assert "check the query arguments" in message and failed.value.non_retryable


@pytest.mark.parametrize("since, until, field", [
    ("0001-01-01T00:00:00+01:00", "2024-01-01", "since"),
    ("2024-01-01", "9999-12-31T23:59:59-01:00", "until"),
])
def test_a_query_time_with_no_utc_twin_is_refused_before_anything_starts(since, until, field):
    from etl.core.query import QueryFactory

    with pytest.raises(QueryError, match=f"github.{field}: .* lies outside the years 1 to 9999 in UTC"):
        QueryFactory.create("github", {"owner": "octo", "repo": "r", "since": since, "until": until})
