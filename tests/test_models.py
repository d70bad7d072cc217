"""The transform's derived fields and reject reasons (pure logic, no servers)."""

from datetime import date, datetime

import pytest

from etl.core.models import COLUMNS, Reject, to_event, transform


def raw(**overrides):
    record = {"event_id": "e1", "employee_id": "alice", "event_time_utc": "2024-03-31T01:30:00Z",
              "timezone": "Europe/Berlin", "event_properties": {"title": "t"}}
    record.update(overrides)
    return record


def test_berlin_dst_morning():
    event = to_event(raw())
    assert event.event_time == datetime(2024, 3, 31, 3, 30)
    assert event.week == date(2024, 3, 25)
    assert event.event_time_utc == datetime(2024, 3, 31, 1, 30)


def test_los_angeles_new_year_falls_in_previous_week():
    event = to_event(raw(event_time_utc="2024-01-01T02:00:00Z", timezone="America/Los_Angeles"))
    assert event.event_time == datetime(2023, 12, 31, 18, 0)
    assert event.week == date(2023, 12, 25)


def test_missing_zone_means_utc_and_offsets_are_converted():
    event = to_event(raw(timezone=None, event_time_utc="2024-05-05T12:00:00+02:00"))
    assert event.timezone == "UTC"
    assert event.event_time_utc == datetime(2024, 5, 5, 10, 0)
    assert event.week == date(2024, 4, 29)


@pytest.mark.parametrize("overrides, reason", [
    ({"timezone": "Mars/Olympus_Mons"}, "unknown timezone 'Mars/Olympus_Mons'"),
    ({"event_id": None}, "event_id is missing"),
    ({"employee_id": ""}, "employee_id is missing"),
    ({"event_time_utc": "yesterday"}, "event_time_utc 'yesterday' is not an ISO 8601 time"),
    ({"event_time_utc": "2024-03-31T01:30:00"}, "has no zone"),
    ({"event_properties": {"x": float("nan")}}, "event_properties cannot be stored as JSON"),
    ({"event_properties": {"x": "a\x00b"}}, "NUL character"),
    ({"relation_type": "a\x00b"}, "relation_type contains a NUL byte"),
    ({"metrics": {"x": "\udc80"}}, "not valid Unicode"),
    ({"metrics": [1, 2]}, "metrics has type list"),
])
def test_rejects_say_why(overrides, reason):
    with pytest.raises(Reject, match=None) as why:
        to_event(raw(**overrides))
    assert reason in str(why.value)


def test_transform_splits_events_and_rejects():
    events, rejects = transform([raw(), raw(event_id=None), "not a dict"])
    assert [e.event_id for e in events] == ["e1"]
    assert [reason for _, reason in rejects] == ["event_id is missing", "record has type str; expected an object"]


def test_copy_row_escapes_text_format_specials():
    event = to_event(raw(event_properties={"title": "tab\there\nnewline \\ back"}))
    row = event.copy_row()
    assert row.count("\t") == len(COLUMNS) - 1 and row.endswith("\n") and row.count("\n") == 1
