"""A source's requests drawn from one budget the whole fleet shares, per source and credential.

    turns = Turns(BudgetKey.of("GitHub", base_url, auth.secrets()), Limits.of("5000/h", 100))
    response = turns.send(lambda: http.get(url), lambda r: (r.status_code, r.headers, ""))

A request waits for its turn instead of being sent (the wait is slept here when it is no longer
than `max_wait`; a longer one raises `SourceUnavailable` with it, and Temporal waits instead).
An answer that says the budget is spent (429, a rate-limit 403, `X-RateLimit-Remaining: 0`, a
`Retry-After` or a reset time) is recorded for the whole fleet: no other worker sends before
the reset, so a fleet collects one refusal per reset, not one per worker.

The budget itself is not the kit's: the worker's activity installs one for the time it reads a
source (`using(budget)`; `etl.activities.budgets` over `etl.store.budgets`, in the events
database). With none installed (a script, a test of a source alone) requests go at once.
The credential is known to the budget only by a hash (`BudgetKey.of`).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from contextvars import ContextVar
from typing import Callable, Iterator, Mapping, Protocol, TypeVar

from etl.core.errors import SourceUnavailable
from etl.core.limits import BudgetKey, Grant, Limits
from etl.kit.answers import rate_limit_wait, reset_in
from etl.kit.archive import in_use

R = TypeVar("R")
__all__ = ["Budget", "BudgetKey", "Folded", "Grant", "Turns", "current", "spent_for", "using", "why_text"]


class Budget(Protocol):
    """What the worker installs for the activity reading a source (see the module docstring)."""

    def take(self, key: BudgetKey, limits: Limits, lease_s: float) -> Grant:
        """A turn for one request, or how long to wait; never blocks on the wait itself. A lease
        not given back (a worker killed mid-request) lapses after `lease_s`."""

    def give_back(self, key: BudgetKey, grant: Grant) -> None:
        """The request of `grant` is answered (or failed)."""

    def spent(self, key: BudgetKey, seconds: float, status: int) -> None:
        """The source said its budget is spent for `seconds` (in an answer of `status`)."""

    def waiting(self, key: BudgetKey, seconds: float, why: str) -> None:
        """The request is about to wait `seconds` for its turn (to say so, and count it)."""


_CURRENT: ContextVar[Budget | None] = ContextVar("etl_source_budget", default=None)


@contextlib.contextmanager
def using(budget: Budget | None) -> Iterator[None]:
    """Requests made inside draw from `budget` (None: sent at once)."""
    token = _CURRENT.set(budget)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> Budget | None:
    """The budget installed for this activity, if any."""
    return _CURRENT.get()


def spent_for(status: int, headers: Mapping[str, str], message: str = "") -> float | None:
    """Seconds the source says its budget is spent for, from one answer; None when it does not say so."""
    if status >= 400:
        return rate_limit_wait(status, headers, message)
    return reset_in(headers)


class Folded(dict):
    """Headers whose names are matched in any case (httplib2 keeps them in lower case)."""

    def __init__(self, headers: Mapping[str, str]):
        super().__init__((str(k).lower(), v) for k, v in headers.items())

    def get(self, key, default=None):  # type: ignore[override]
        return super().get(str(key).lower(), default)


class Turns:
    """One client's way to its budget (see the module docstring); reentrant in a thread (a library
    that sends a second request from inside the first, to follow a redirect, is not held twice)."""

    def __init__(self, key: BudgetKey, limits: Limits, *, lease_s: float = 60.0, max_wait: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.key = key
        self.limits = limits
        self.lease_s = lease_s
        self.max_wait = max_wait
        self._sleep = sleep
        self._inside = threading.local()

    def send(self, request: Callable[[], R], answer: Callable[[R], tuple[int, Mapping[str, str], str]]) -> R:
        """`request()` once its turn comes; `answer(result)` -> (status, headers, message) tells
        whether the source said its budget is spent."""
        budget = current()
        archive = in_use()
        if budget is None or getattr(self._inside, "active", False) or (archive is not None and archive.replay):
            return request()  # a replay reads the archive: no request reaches the source
        grant = self._turn(budget)
        self._inside.active = True
        try:
            result = request()
        finally:
            self._inside.active = False
            if grant.lease:
                budget.give_back(self.key, grant)
        status, headers, message = answer(result)
        seconds = spent_for(status, headers, message)
        if seconds is not None:
            budget.spent(self.key, seconds, status)
        return result

    def _turn(self, budget: Budget) -> Grant:
        while True:
            grant = budget.take(self.key, self.limits, self.lease_s)
            if grant.granted:
                return grant
            if grant.wait_s > self.max_wait:
                raise SourceUnavailable(
                    f"{self.key.source}'s budget, shared by the fleet, is {why_text(grant.why)} for "
                    f"{grant.wait_s:.0f} s more; waiting for it", retry_after_s=grant.wait_s)
            # Waiters wake a little apart, so they do not all ask at the same instant.
            wait = grant.wait_s + random.uniform(0.0, min(0.5, 0.05 + 0.1 * grant.wait_s))
            budget.waiting(self.key, wait, grant.why)
            self._sleep(wait)


_WHY = {"spent": "spent (the source said so)", "rate": "used up at its declared rate",
        "concurrent": "at its limit of requests at once"}


def why_text(why: str) -> str:
    """How a `Grant.why` reads in a message."""
    return _WHY.get(why, why)
