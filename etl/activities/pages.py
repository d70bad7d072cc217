"""The resumable page loop both flows' activities run: resume from the committed cursor, read
pages, commit each page with its cursor, heartbeat, stop at a committed page when cancelled.

A heartbeat is a hint (the SDK throttles them; a SIGKILL loses the last one), so a unit (a
streaming chunk call, a batch extract) commits its state with each page, in the page's own
transaction (`etl.store.checkpoints`), and a retry starts from there: a crash costs at most the
page that had not committed. The last page marks the unit done in the same transaction, so a
crash between that commit and the activity's completion does not start the read again.

    unit = PageLoop(checkpoints, key, settings.activity_stall_s)
    state, done = unit.resume(start, decode)          # the committed state, or `start`
    state, done = unit.run(pages, state, commit, enough)

`commit(page, state) -> state` does the page's work and calls `unit.save(cur, after, page, ...)`
inside its transaction. Liveness: `Heartbeater` beats from a helper thread while pages commit,
and goes quiet once nothing progressed for `ACTIVITY_STALL_S`, so Temporal retries a hung
attempt (a source that never answers) elsewhere instead of waiting for its start-to-close timeout.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

from temporalio import activity
from temporalio.exceptions import CancelledError

from etl.core.extract import Page
from etl.store.checkpoints import Checkpoints, Commit

log = logging.getLogger(__name__)

#: The most time between two heartbeats we send; the worker's heartbeat throttle
#: (`max_heartbeat_throttle_interval`) must be as short, or the SDK holds them back.
MAX_INTERVAL_S = 2.0

S = TypeVar("S")  # a unit's state: a dataclass with `cursor` and `pages`


class PageLoop:
    """One unit's resumable read: its resume point is `key` in `checkpoints`."""

    def __init__(self, checkpoints: Checkpoints, key: str, stall_s: float):
        self.checkpoints = checkpoints
        self.key = key
        self.stall_s = stall_s
        self.heartbeat: Heartbeater | None = None
        """While `run` runs: its heartbeater (a hook may call `progressed()` while it waits)."""

    def resume(self, start: S, decode: Callable[[dict[str, Any]], S]) -> tuple[S, bool, bool]:
        """(state, done, resumed): the last committed state when it is not behind `start`, else `start`."""
        saved = self.checkpoints.load(self.key)
        if saved is None or saved.state.get("pages", 0) < start.pages:  # type: ignore[attr-defined]
            return start, False, False
        state = decode(saved.state)
        if state.pages != start.pages or saved.done:  # type: ignore[attr-defined]
            activity.logger.info("%s resumes after its committed page %d (cursor %r%s)", self.key,
                                 state.pages, state.cursor, ", read to the end" if saved.done else "")  # type: ignore[attr-defined]
        return state, saved.done, state.pages != start.pages  # type: ignore[attr-defined]

    def save(self, cur, state: Any, page: Page, records: int, inserted: int = 0, updated: int = 0) -> None:
        """Inside `commit`'s transaction: `state` as the resume point (done with the last page),
        and the page's row in the ledger."""
        info = activity.info()
        self.checkpoints.save(cur, self.key, dataclasses.asdict(state), done=page.is_last)
        self.checkpoints.log(cur, Commit(self.key, "page", records, inserted, state.pages - 1, info.workflow_id,
                                         info.attempt, updated))

    def run(self, pages: Iterator[Page], state: S, commit: Callable[[Page, S], S],
            enough: Callable[[S], bool]) -> tuple[S, bool]:
        """Commit pages until the source ends (done) or `enough(state)` after a page that is not
        the last; returns the state and whether the unit was read to its end."""
        done = True
        with Heartbeater(self.stall_s) as hb:
            self.heartbeat = hb
            hb.beat(state)
            try:
                for page in pages:
                    state = commit(page, state)
                    hb.beat(state)
                    if not page.is_last and enough(state):
                        done = False
                        break
            finally:
                self.heartbeat = None
                close = getattr(pages, "close", None)
                if close:
                    close()
        if done and state.pages and state.cursor is not None:  # type: ignore[attr-defined]
            self.checkpoints.mark_done(self.key)  # the source ended after a page that carried a cursor
        return state, done


class Heartbeater:
    """`with Heartbeater(stall_s) as hb: ... hb.beat(state)`: heartbeats while `beat` or
    `progressed` is called at least every `stall_s` seconds; then goes quiet so Temporal retries
    the attempt elsewhere. The thread runs in a copy of the activity's context."""

    def __init__(self, stall_s: float = 600.0, interval_s: float | None = None):
        timeout = activity.info().heartbeat_timeout
        self.interval_s = interval_s or min(MAX_INTERVAL_S, timeout.total_seconds() / 4 if timeout else MAX_INTERVAL_S)
        self.stall_s = stall_s
        self._details: tuple[Any, ...] = ()
        self._waiting: str | None = None
        self._progress_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stalled = False
        """True once the helper gave up beating because nothing progressed for `stall_s`."""

    def beat(self, *details: Any) -> None:
        """Progress: record (and send) the details the UI shows. A safe point: if Temporal asked
        the activity to stop, it stops here."""
        self._details = details
        activity.heartbeat(*details)
        self.progressed()

    def waiting(self, why: str | None) -> None:
        """Say beside the details what the activity waits on (the fleet's budget); None: no more."""
        self._waiting = why
        activity.heartbeat(*self._details, *([why] if why else []))
        self.progressed()

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
            activity.heartbeat(*self._details, *([self._waiting] if self._waiting else []))

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

    Activities run shielded from the SDK's own way of cancelling a thread (an exception raised
    asynchronously wherever the thread happens to be, inside the pool's lock say), which could
    leave a lock held for good. They stop here instead, between committed pages."""
    if activity.is_cancelled():
        raise CancelledError("cancelled: stopped after the last committed step")
