"""The one retry loop sources use: a few quick retries of what is transient, the rest for Temporal.

    body = retrying(lambda: fetch_page(url), what=f"GET {url}")

`call` raises `SourceUnavailable` for a failure a later retry can fix, with the wait the
source asked for (`retry_after_s`) when it named one. A wait no longer than `max_wait` is
slept here, up to `retries` times: one flaky request should not cost an activity attempt and
the pages it already read. A longer wait, or one failure too many, is raised as it is: the
activity turns `retry_after_s` into Temporal's `next_retry_delay`, so Temporal waits exactly
as long as the source asked (one attempt of the retry policy, however long the wait).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from etl.core.errors import SourceUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

RETRIES = 3
"""Extra attempts after a transient failure, before Temporal's retry takes over."""
MAX_WAIT = 30.0
"""The longest wait slept here; longer ones are Temporal's (the activity keeps heartbeating meanwhile)."""
BACKOFF = 0.5
"""The first wait after a failure that names no time, in seconds; doubles each time."""


def retrying(call: Callable[[], T], what: str = "", *, retries: int = RETRIES, max_wait: float = MAX_WAIT,
             backoff: float = BACKOFF, sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, retried after `SourceUnavailable` as the module says."""
    failures = 0
    while True:
        try:
            return call()
        except SourceUnavailable as exc:
            failures += 1
            wait = exc.retry_after_s if exc.retry_after_s is not None else backoff * 2 ** (failures - 1)
            if failures > retries or wait > max_wait:
                raise
            log.info("%s; retrying %s in %.1f s (attempt %d of %d)", exc, what, wait, failures + 1, retries + 1)
            sleep(wait)
