"""Keeping a sync activity visibly alive while it blocks (a slow page, a long COPY).

Temporal notices a dead worker only when its activities stop heartbeating, so every activity
declares a heartbeat timeout and runs inside `Heartbeater`, which re-sends the latest details
from a helper thread. The thread runs in a copy of the activity's context, so it uses the
public `activity.heartbeat` API.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from temporalio import activity


class Heartbeater:
    """`with Heartbeater() as hb: ... hb.beat(cursor)`: heartbeats at a third of the timeout."""

    def __init__(self, interval_s: float | None = None):
        timeout = activity.info().heartbeat_timeout
        self.interval_s = interval_s or (timeout.total_seconds() / 3 if timeout else 10.0)
        self._details: tuple[Any, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, *details: Any) -> None:
        """Record (and send) the details a retry should resume from."""
        self._details = details
        activity.heartbeat(*details)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
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
