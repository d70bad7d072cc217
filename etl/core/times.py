"""Reading times the one way the whole project does.

`parse_time` reads ISO 8601 (what queries and the events table hold; naive means UTC).
`read_time` reads any time a source sends: ISO 8601, RFC 2822 and HTTP dates, and epoch
seconds or milliseconds; a source maps its records' times with it (the kit's event builder
and window checks do), so a time it cannot read fails that one record, never a page.
"""

from __future__ import annotations

import email.utils
import math
from datetime import datetime, timezone

MAX_TEXT = 64
"""The longest text read as a time: a longer value is refused before any parser sees it."""
MILLISECONDS = 100_000_000_000
"""An epoch number at least this large is in milliseconds (as seconds it would be past the year 5000)."""


def parse_time(text: str) -> datetime:
    """An aware datetime from an ISO 8601 date or time (`2024-03-01`, `2024-03-01T12:00:00Z`,
    with an offset); a date means its midnight and a time without a zone means UTC.
    Raises ValueError for anything else. Pure, so workflows may use it too."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def read_time(value: object) -> datetime:
    """An aware datetime from a time as a source sends it: a datetime, ISO 8601 text, an RFC 2822
    or HTTP date (`Tue, 02 Jan 2024 10:00:00 +0100`, `... GMT`), or epoch seconds or
    milliseconds (a number, or its digits as text). Without a zone, UTC. Raises ValueError
    naming a short prefix of the value for anything else."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _epoch(value)
    if not isinstance(value, str):
        raise ValueError(f"{type(value).__name__} {_quoted(value)} is not a time")
    text = value.strip()
    if not text or len(text) > MAX_TEXT:
        raise ValueError(f"{_quoted(value)} is not a time (ISO 8601, RFC 2822 or epoch seconds)")
    if text.lstrip("-").replace(".", "", 1).isdigit():
        return _epoch(float(text))
    try:
        return parse_time(text)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise ValueError(f"{_quoted(value)} is not a time (ISO 8601, RFC 2822 or epoch seconds)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _epoch(number: float) -> datetime:
    if not math.isfinite(number):
        raise ValueError(f"{number!r} is not a time")
    seconds = number / 1000 if abs(number) >= MILLISECONDS else number
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{number!r} is outside the times a calendar holds") from None


def _quoted(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."
