"""Reading times from text the one way the whole project does: ISO 8601, naive means UTC."""

from __future__ import annotations

from datetime import datetime, timezone


def parse_time(text: str) -> datetime:
    """An aware datetime from an ISO 8601 date or time (`2024-03-01`, `2024-03-01T12:00:00Z`,
    with an offset); a date means its midnight and a time without a zone means UTC.
    Raises ValueError for anything else. Pure, so workflows may use it too."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
