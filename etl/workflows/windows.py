"""Incremental windows for scheduled flows: which query arguments take the window, and their values.

A schedule's runs form a chain of windows at full time precision: each run covers
[previous successful run's end, its own scheduled time), applied to the two fields a query
type declares as its `window_fields`. A query whose window fields are dates gets both ends
floored to dates, so an hourly schedule fetches each day exactly once: in the run whose
window crosses midnight; the runs in between find their date window empty and skip that flow. Pure functions: the workflow uses them.
"""

from __future__ import annotations

import typing
from datetime import date, datetime
from typing import Any


def detect_window_args(query_cls: type) -> tuple[str, str, str] | None:
    """`(start_arg, end_arg, granularity)` from the window fields a Query class declares, or None."""
    declared = getattr(query_cls, "window_fields", None)
    if not declared:
        return None
    hints = typing.get_type_hints(query_cls)
    start, end = declared
    granularity = field_granularity(hints.get(start))
    if granularity is None or field_granularity(hints.get(end)) != granularity:
        raise TypeError(f"{query_cls.__qualname__}.window_fields {declared!r} must name two date or two "
                        "datetime fields")
    return start, end, granularity


def field_granularity(hint: Any) -> str | None:
    """`date` or `datetime` for a field's type hint (Optional allowed), else None."""
    for candidate in (hint, *typing.get_args(hint)):
        if candidate is datetime:
            return "datetime"
        if candidate is date:
            return "date"
    return None


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
