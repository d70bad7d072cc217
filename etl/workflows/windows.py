"""Incremental windows for scheduled flows: which query arguments take the window, and their values.

A schedule's runs form a chain of windows at full time precision: each run covers
[previous successful run's end, its own scheduled time). A flow whose query takes dates
(Launchpad's `data_date_start`/`data_date_end`) gets both ends floored to dates, so an hourly
schedule fetches each day exactly once: in the run whose window crosses midnight; the runs in
between find their date window empty and skip that flow. Pure functions: the workflow uses them.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import date, datetime, timezone
from typing import Any

#: Argument pairs recognised without `--window-args`, in order of preference.
KNOWN_WINDOW_ARGS = (("data_date_start", "data_date_end"), ("since", "until"), ("from_date", "to_date"))


def detect_window_args(query_cls: type) -> tuple[str, str, str] | None:
    """`(start_arg, end_arg, granularity)` for a Query class with a known pair of date or time fields."""
    hints = typing.get_type_hints(query_cls)
    fields = {f.name for f in dataclasses.fields(query_cls)}
    for start, end in KNOWN_WINDOW_ARGS:
        if start in fields and end in fields:
            granularity = field_granularity(hints[start])
            if granularity:
                return start, end, granularity
    return None


def field_granularity(hint: Any) -> str | None:
    """`date` or `datetime` for a field's type hint (Optional allowed), else None."""
    for candidate in (hint, *typing.get_args(hint)):
        if candidate is datetime:
            return "datetime"
        if candidate is date:
            return "date"
    return None


def parse_time(text: str) -> datetime:
    """An ISO date or time as an aware UTC datetime (a date means its midnight)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def windowed_args(args: dict[str, Any], start_arg: str, end_arg: str, granularity: str,
                  start: datetime, end: datetime) -> dict[str, Any] | None:
    """`args` with the window [start, end) applied; None when the window is empty at `granularity`."""
    if not start_arg:
        return dict(args)
    if granularity == "date":
        first, last = start.date(), end.date()
        if last <= first:
            return None
        return {**args, start_arg: first.isoformat(), end_arg: last.isoformat()}
    if end <= start:
        return None
    return {**args, start_arg: start.isoformat(), end_arg: end.isoformat()}
