"""The kit's time reader, event builder, per-record reject boundary and window checks: pure logic."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pytest

from etl.core.errors import QueryError, SourceUnavailable
from etl.core.extract import REJECTED
from etl.core.query import query_type
from etl.core.times import read_time
from etl.kit import Events, WindowQuery, mapped
from etl.kit.answers import redact, warn_short_secrets

NOON = datetime(2024, 1, 5, 12, tzinfo=timezone.utc)
EVENTS = Events("board", "cards")


@pytest.mark.parametrize("text", ["2024-01-05T12:00:00Z", "2024-01-05T13:00:00+01:00", "Fri, 05 Jan 2024 13:00:00 +0100",
                                  "Fri, 05 Jan 2024 12:00:00 GMT", 1704456000, "1704456000", 1704456000000, NOON])
def test_a_time_in_any_common_form_is_read(text):
    assert read_time(text) == NOON


@pytest.mark.parametrize("bad", ["yesterday", "", "9" * 70, None, True, float("nan"), 10**30, [2024]])
def test_what_is_not_a_time_is_a_value_error(bad):
    with pytest.raises(ValueError, match="not a time|outside"):
        read_time(bad)


def card_events(card: dict) -> list[dict]:
    return [EVENTS.event(f"board-c{card['id']}", parent=card["id"], relation="card_opened", actor=card["by"],
                         at=card["at"], properties={"title": card.get("title")})]


def test_the_builder_names_every_field_once_and_keeps_iso_text_as_written():
    [event] = card_events({"id": 7, "by": "ann", "at": "2024-01-05T12:00:00Z", "title": "t"})
    assert event == {"event_id": "board-c7", "source_kind_id": "board", "parent_item_id": "7", "event_type": "cards",
                     "relation_type": "card_opened", "employee_id": "ann", "event_time_utc": "2024-01-05T12:00:00Z",
                     "timezone": None, "event_properties": {"title": "t"}, "relation_properties": {}, "metrics": {}}
    [other] = card_events({"id": 8, "by": "ann", "at": "Fri, 05 Jan 2024 13:00:00 +0100"})
    assert other["event_time_utc"] == "2024-01-05T12:00:00+00:00"


def test_one_bad_record_is_one_reject_and_the_rest_of_the_page_loads():
    cards = [{"id": 1, "by": "ann", "at": "2024-01-05T12:00:00Z"}, {"id": 2, "by": "ann", "at": "soon"},
             {"id": 3, "at": "2024-01-05T12:00:00Z"}, {"id": 4, "by": "", "at": "2024-01-05T12:00:00Z"},
             {"id": 5, "by": "bob", "at": "2024-01-05T12:00:00Z"}]
    records = mapped(cards, card_events)
    assert [r.get("event_id") for r in records] == ["board-c1", None, None, None, "board-c5"]
    reasons = [r[REJECTED] for r in records if REJECTED in r]
    assert reasons == ["the source could not map the record: ValueError: 'soon' is not a time (ISO 8601, RFC 2822 "
                       "or epoch seconds)", "the source could not map the record: KeyError: 'by'",
                       "the source could not map the record: ValueError: actor '' is not a non-empty text of at "
                       "most 500 characters"]
    assert [r["record"]["id"] for r in records if REJECTED in r] == [2, 3, 4]


def test_the_apis_failures_are_not_rejects():
    def failing(card):
        raise SourceUnavailable("the API is down")

    with pytest.raises(SourceUnavailable):
        mapped([{"id": 1}], failing)


@query_type("test-kit-window")
@dataclass(frozen=True)
class DaysQuery(WindowQuery):
    """A window of days named `start` and `end`."""

    start: date
    end: date
    board: str = "b"
    window_fields = ("start", "end")


def test_window_checks_come_from_window_fields():
    q = DaysQuery.from_dict({"start": "2024-01-05", "end": "2024-01-06"})
    assert q.contains("2024-01-05T00:00:00Z") and q.contains("Fri, 05 Jan 2024 23:59:59 GMT")
    assert not q.contains("2024-01-06T00:00:00Z") and not q.contains(None)
    with pytest.raises(ValueError):
        q.contains("soon")
    with pytest.raises(QueryError, match="test-kit-window.end: 2024-01-05 is not after start"):
        DaysQuery.from_dict({"start": "2024-01-05", "end": "2024-01-05"})
    with pytest.raises(QueryError, match="cannot expand a group"):
        DaysQuery.expand_group("devs", None)


def test_every_secret_is_masked_whatever_its_length_and_a_short_one_is_warned_about(caplog):
    assert redact("GET /x?q=ab7 with ab7 and k", ["ab7", "k", None, ""]) == "GET /x?q=*** with *** and ***"
    assert redact("token abcdef", ["abc", "abcdef"]) == "token ***"
    with caplog.at_level(logging.WARNING):
        said = warn_short_secrets("Board", ["ab7", "a-long-enough-token"], logging.getLogger("test"))
        again = warn_short_secrets("Board", ["xy9"], logging.getLogger("test"))
    assert said == ["Board's credential is only 3 characters long: it is masked in every message, and so is any "
                    "text that contains it; use the API's real token"]
    assert again == [] and caplog.messages == said
