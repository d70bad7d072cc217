"""The source archive's vocabulary, shared by the clients that record and replay (`etl.kit.archive`)
and the table that keeps it (`etl.store.archive`): a request as the archive keys it, and an answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from etl.core.errors import ConfigError


@dataclass(frozen=True)
class Request:
    """What an answer answered, as the archive keys it: nothing secret, nothing of the host."""

    method: str
    target: str
    """Path and query, secrets masked."""
    accept: str = ""
    """The media type asked for (launchpadlib asks one URL for JSON and for WADL)."""

    def __str__(self) -> str:
        return f"{self.method} {self.target}" + (f" ({self.accept})" if self.accept else "")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    """Only the headers a client reads to page and decode (`etl.kit.archive.KEPT_HEADERS`)."""
    body: bytes


class Book(Protocol):
    """Where one flow's answers are kept and looked up (`etl.store.archive.FlowBook`)."""

    def keep(self, request: Request, answer: Answer) -> None: ...

    def answer(self, request: Request) -> Answer | None: ...


def as_of_time(as_of: str | None) -> datetime | None:
    """A replay's `as_of` (ISO 8601; a date or a time without zone is UTC) as a time; `ConfigError` if unreadable."""
    if not as_of:
        return None
    try:
        moment = datetime.fromisoformat(as_of)
    except (TypeError, ValueError):
        raise ConfigError("--as-of", as_of, "an ISO 8601 date or time, e.g. 2024-05-01 or "
                                            "2024-05-01T12:00:00+00:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
