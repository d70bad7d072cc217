"""Heartbeating progress, not mere liveness, for sync activities that block (a slow page, a long COPY).

Temporal notices a dead worker only when its activities stop heartbeating, so every activity
declares a heartbeat timeout and runs inside `Heartbeater`, which re-sends the latest details
from a helper thread while the activity works. The helper beats only while the work moves:
each `beat(...)` (a committed page, a finished step) is progress, and once `stall_s` passes
without any, the helper stops. Temporal then times the attempt out and retries it, on any
worker, from the last committed resume point, instead of a hung attempt (a source that never
answers, a lock that is never released) holding the flow for the whole start-to-close timeout.
The thread runs in a copy of the activity's context, so it uses the public `activity.heartbeat` API.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import CancelledError

log = logging.getLogger(__name__)

#: The most time between two heartbeats we send; the worker's heartbeat throttle
#: (`max_heartbeat_throttle_interval`) must be as short, or the SDK holds them back.
MAX_INTERVAL_S = 2.0


class Heartbeater:
    """`with Heartbeater(stall_s) as hb: ... hb.beat(cursor)`: heartbeats while `beat` is called
    at least every `stall_s` seconds; then goes quiet so Temporal retries the attempt elsewhere."""

    def __init__(self, stall_s: float = 600.0, interval_s: float | None = None):
        timeout = activity.info().heartbeat_timeout
        self.interval_s = interval_s or min(MAX_INTERVAL_S, timeout.total_seconds() / 4 if timeout else MAX_INTERVAL_S)
        self.stall_s = stall_s
        self._details: tuple[Any, ...] = ()
        self._progress_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stalled = False
        """True once the helper gave up beating because nothing progressed for `stall_s`."""

    def beat(self, *details: Any) -> None:
        """Progress: record (and send) the details a retry should resume from. A safe point: if
        Temporal asked the activity to stop, it stops here (see `classify.classified_errors`)."""
        self._details = details
        self._progress_at = time.monotonic()
        activity.heartbeat(*details)
        stop_if_cancelled()

    def progressed(self) -> None:
        """Progress without new details (a step finished, a statement returned); a safe point too."""
        self._progress_at = time.monotonic()
        stop_if_cancelled()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            idle = time.monotonic() - self._progress_at
            if idle > self.stall_s:
                if not self.stalled:
                    self.stalled = True
                    log.error("%s made no progress for %.0fs (ACTIVITY_STALL_S=%g): no more heartbeats, so "
                              "Temporal retries it", activity.info().activity_type, idle, self.stall_s)
                continue
            self.stalled = False
            activity.heartbeat(*self._details)

    def __enter__(self) -> "Heartbeater":
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._run,), daemon=True,
                                        name=f"heartbeat-{activity.info().activity_id}")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


def stop_if_cancelled() -> None:
    """Raise the SDK's `CancelledError` if Temporal asked this activity to stop (its workflow
    cancelled it, or the worker is shutting down past its grace period).

    Activities run shielded from the SDK's own way of cancelling a thread, an exception raised
    asynchronously wherever the thread happens to be (inside the connection pool's lock, between
    taking a connection and the `try` that returns it), which could leave a lock held for good.
    They stop here instead, between committed pages, where nothing is held."""
    if activity.is_cancelled():
        raise CancelledError("cancelled: stopped after the last committed step")
