"""A source's limits, as a source declares them and settings override them: a rate (`5000/h`,
`120/min`, `20/10s`) and at most N requests at once, per credential, for the whole fleet.

    Limits.of("5000/h", 100)  ->  Limits(rate=Rate(5000, 3600.0), max_concurrent=100)
    parse_rate("20/10s")      ->  Rate(20, 10.0)

`etl.kit.budget` draws every request of a source's client from them, from the budget named by a
`BudgetKey`, with a `Grant` for an answer (`etl.store.budgets` keeps the fleet's).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
_RATE = re.compile(r"([1-9][0-9]{0,8})/([1-9][0-9]{0,5})?(s|sec|second|m|min|minute|h|hour|d|day)s?")
RATE_FORMAT = "a number of requests per period, e.g. 5000/h, 120/min or 20/10s (units s, min, h, d)"


@dataclass(frozen=True)
class Rate:
    """`count` requests in any `seconds` long stretch of time."""

    count: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}s"


def parse_rate(text: str) -> Rate:
    """`Rate` from `5000/h`, `120/min`, `20/10s`; ValueError saying the format otherwise."""
    found = _RATE.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if not found:
        raise ValueError(RATE_FORMAT)
    count, times, unit = found.groups()
    seconds = int(times or 1) * _UNITS[unit]
    if seconds > 7 * 86400:
        raise ValueError(f"{RATE_FORMAT}, over at most a week")
    return Rate(int(count), seconds)


@dataclass(frozen=True)
class Limits:
    """What one credential of a source may send: `rate` (None: no rate) and `max_concurrent`
    requests in flight at once (0: no bound)."""

    rate: Rate | None = None
    max_concurrent: int = 0

    @staticmethod
    def of(rate: str | None = None, max_concurrent: int | None = 0) -> "Limits":
        return Limits(parse_rate(rate) if rate else None, max_concurrent or 0)

    @property
    def any(self) -> bool:
        return self.rate is not None or self.max_concurrent > 0

    def __str__(self) -> str:
        said = [str(self.rate)] if self.rate else []
        said += [f"{self.max_concurrent} at once"] if self.max_concurrent else []
        return ", ".join(said) or "no declared limits"


@dataclass(frozen=True)
class BudgetKey:
    """Which budget a request draws from: `source` as people name it, and `id`, the source with a
    hash of its address and credential (never the credential itself)."""

    source: str
    id: str

    @staticmethod
    def of(source: str, address: str, secrets: Iterable[str | None] = ()) -> "BudgetKey":
        digest = hashlib.sha256("\0".join(["etl-budget", address.rstrip("/"), *(s or "" for s in secrets)])
                                .encode("utf-8", "surrogatepass")).hexdigest()
        slug = "".join(ch for ch in source.lower() if ch.isalnum())[:32] or "source"
        return BudgetKey(source, f"{slug}:{digest[:32]}")


@dataclass(frozen=True)
class Grant:
    """The budget's answer to one request: granted (`lease`, "" when nothing needs giving back), or
    not (`lease` None) and how long to wait before asking again, and why."""

    lease: str | None
    wait_s: float = 0.0
    why: str = ""
    """`spent` (the source said so), `rate` (the declared rate is used up), `concurrent` (enough in flight)."""

    @property
    def granted(self) -> bool:
        return self.lease is not None
