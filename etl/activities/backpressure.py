"""Backpressure from worker memory: above a resident-set-size threshold a streaming worker takes
no new chunks (its activity slot supplier stops handing out slots) and its running chunks
pause between pages until memory falls. Both reactions are logged, and chunks report how
long they were held back, which the flow's `progress` query shows.

The slot supplier runs on the worker's event loop, which also sends heartbeats and polls:
`gc.collect()` and psutil calls there would stall them, so it measures in a thread
(`asyncio.to_thread`) and its sync path reads the last measurement.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from typing import Callable

import psutil
from temporalio.worker import (
    CustomSlotSupplier,
    SlotMarkUsedContext,
    SlotPermit,
    SlotReleaseContext,
    SlotReserveContext,
)

log = logging.getLogger(__name__)


class MemoryGuard:
    """Watches this process's RSS against `limit_mib`."""

    def __init__(self, limit_mib: int, max_wait_s: float = 60.0, poll_s: float = 0.1):
        self.limit_mib = limit_mib
        self.max_wait_s = max_wait_s
        self.poll_s = poll_s
        self._proc = psutil.Process(os.getpid())
        self._lock = threading.Lock()
        self._holding = False
        self.peak_mib = 0.0
        self.last_mib = 0.0
        """The latest measurement, for callers that must not block (the event loop)."""

    def rss_mib(self) -> float:
        rss = self._proc.memory_info().rss / 2**20
        self.last_mib = rss
        if rss > self.peak_mib:
            self.peak_mib = rss
        return rss

    def collect_and_measure(self) -> float:
        """`gc.collect()`, then the RSS: blocking, so never on the event loop."""
        gc.collect()
        return self.rss_mib()

    def over(self) -> bool:
        return self.rss_mib() > self.limit_mib

    def _note(self, holding: bool, rss: float) -> None:
        with self._lock:
            if holding == self._holding:
                return
            self._holding = holding
        if holding:
            log.warning("backpressure: RSS %.0f MiB is above MEMORY_LIMIT_MIB=%d; taking no new chunks "
                        "and pausing producers", rss, self.limit_mib)
        else:
            log.warning("backpressure released: RSS %.0f MiB is below %d MiB", rss, self.limit_mib)

    def wait_below(self, tick: Callable[[], None] = lambda: None,
                   stop: Callable[[], bool] = lambda: False) -> float:
        """Block (calling `tick`) while over the limit, until `stop()` says to give up (the worker
        is draining: the caller hands its work back); returns the seconds waited.

        Gives up after `max_wait_s` so a limit set below what the process needs at rest slows
        the flow instead of stopping it forever."""
        max_wait_s = self.max_wait_s
        rss = self.rss_mib()
        if rss <= self.limit_mib:
            self._note(False, rss)
            return 0.0
        self._note(True, rss)
        start = time.monotonic()
        while rss > self.limit_mib and time.monotonic() - start < max_wait_s and not stop():
            gc.collect()
            tick()
            time.sleep(self.poll_s)
            rss = self.rss_mib()
        waited = time.monotonic() - start
        self._note(False, rss)
        return waited


class MemoryAwareSlotSupplier(CustomSlotSupplier):
    """Activity slots: at most `size` at once, and none handed out while memory is over the limit.

    `reserve_slot` polls rather than waiting on a condition: `release_slot` may be called
    from a thread other than the event loop's, and a short poll is cheap beside a chunk.
    """

    def __init__(self, size: int, guard: MemoryGuard, poll_s: float = 0.02):
        self.size = size
        self.guard = guard
        self.max_hold_s = guard.max_wait_s
        self.poll_s = poll_s
        self._used = 0
        self._lock = threading.Lock()

    def _take(self) -> bool:
        with self._lock:
            if self._used < self.size:
                self._used += 1
                return True
            return False

    async def reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit:
        while not self._take():
            await asyncio.sleep(self.poll_s)
        try:
            held = 0.0
            rss = await asyncio.to_thread(self.guard.rss_mib)
            while held < self.max_hold_s and rss > self.guard.limit_mib:
                self.guard._note(True, rss)  # noqa: SLF001 - the guard's own logging
                await asyncio.sleep(self.guard.poll_s)
                held += self.guard.poll_s
                rss = await asyncio.to_thread(self.guard.collect_and_measure)
        except BaseException:
            # Cancelled (the SDK may cancel a reservation) after the slot was counted: no permit
            # leaves, so nothing would release it, and the worker would run one task fewer for good.
            self._give_back()
            raise
        return SlotPermit()

    def try_reserve_slot(self, ctx: SlotReserveContext) -> SlotPermit | None:
        # Runs on the event loop and must not block: the last measurement decides.
        if self.guard.last_mib > self.guard.limit_mib or not self._take():
            return None
        return SlotPermit()

    def mark_slot_used(self, ctx: SlotMarkUsedContext) -> None:
        pass

    def _give_back(self) -> None:
        with self._lock:
            self._used -= 1

    def release_slot(self, ctx: SlotReleaseContext) -> None:
        self._give_back()
