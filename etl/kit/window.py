"""`WindowQuery`: the window checks a query's `window_fields` imply, written once.

    @query_type("board")
    @dataclass(frozen=True)
    class BoardQuery(WindowQuery):
        project: str
        since: date
        until: date
        window_fields = ("since", "until")

gives `validate()` the check that the window is not empty (`since < until`, naming `until`)
and `contains(at)`: whether a time as the API wrote it (`read_time`: ISO 8601, RFC 2822,
epoch) lies in `[since, until)`. The fields may be dates (midnight UTC) or datetimes. A time
`contains` cannot read raises ValueError: inside `mapped` (etl/kit/events.py) that record
becomes a reject, not a failed activity. A subclass's own `validate` calls `super().validate()`.
`expand_group` asks the group expander the source registered beside its client (`@group_expander`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from etl.core.errors import QueryError
from etl.core.extract import expand_group
from etl.core.query import Query
from etl.core.times import read_time


@dataclass(frozen=True)
class WindowQuery(Query):
    """A query whose `window_fields` name its `[start, end)` window."""

    def validate(self) -> None:
        start, end = self.window
        if start >= end:
            first, last = self._window_names()
            raise QueryError(self.name, last, f"{_text(getattr(self, last))} is not after {first} "
                                              f"({_text(getattr(self, first))}); the window is [{first}, {last}): "
                                              "the end is exclusive")

    @property
    def window(self) -> tuple[datetime, datetime]:
        """The window's bounds as aware datetimes (a date is its midnight, UTC)."""
        first, last = self._window_names()
        return _moment(getattr(self, first)), _moment(getattr(self, last))

    def contains(self, at: Any) -> bool:
        """Whether `at` (None: no time, so no) lies in the window; ValueError when it is not a time."""
        if at is None:
            return False
        start, end = self.window
        return start <= read_time(at) < end

    @classmethod
    def expand_group(cls, group: str, settings: Any, args: dict[str, Any] | None = None) -> list[str]:
        """The members of `group`, by the expander the source registered beside its client
        (`@group_expander`): the query itself makes no network calls."""
        return expand_group(cls.name, group, settings, args)

    def _window_names(self) -> tuple[str, str]:
        if not self.window_fields:
            raise TypeError(f"{type(self).__name__} is a WindowQuery without window_fields = (start, end)")
        return self.window_fields


def _moment(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.combine(value, time(), timezone.utc)


def _text(value: date | datetime) -> str:
    return value.isoformat()
