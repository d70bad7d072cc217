"""`Quota`: a fixture's rate limit, played as GitHub plays its own: `count` requests per window of
`seconds`, a window opening with the first request after the last one closed. Every answer
carries `X-RateLimit-Limit`, `-Remaining`, `-Reset` (the window's end, an epoch time); past the
count, requests get 429 with `X-RateLimit-Remaining: 0` until the window closes.

    api.quota = Quota(120, 60)      # on any FixtureServer
    ... api.quota.windows           # each window's requests answered and refused, for tests
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

REFUSAL = {"message": "API rate limit exceeded. Wait for the reset (X-RateLimit-Reset)."}


@dataclass
class Window:
    start: float
    end: float
    answered: int = 0
    refused: int = 0
    arrivals: list[float] = field(default_factory=list, repr=False)

    @property
    def requests(self) -> int:
        return self.answered + self.refused


class Quota:
    """See the module docstring; thread-safe."""

    def __init__(self, count: int, seconds: float):
        if count < 1 or seconds <= 0:
            raise ValueError(f"Quota({count!r}, {seconds!r}): give at least one request per a positive time")
        self.count = count
        self.seconds = seconds
        self.windows: list[Window] = []
        self._lock = threading.Lock()

    def admit(self) -> tuple[bool, dict[str, str]]:
        """Count one request: whether it is answered (False: 429), and the rate-limit headers."""
        with self._lock:
            now = time.time()
            if not self.windows or now >= self.windows[-1].end:
                self.windows.append(Window(now, now + self.seconds))
            window = self.windows[-1]
            window.arrivals.append(now)
            admitted = window.answered < self.count
            if admitted:
                window.answered += 1
            else:
                window.refused += 1
            return admitted, {"X-RateLimit-Limit": str(self.count),
                              "X-RateLimit-Remaining": str(self.count - window.answered),
                              "X-RateLimit-Used": str(window.answered),
                              "X-RateLimit-Reset": str(math.ceil(window.end)), "X-RateLimit-Resource": "core"}

    @property
    def refused(self) -> int:
        return sum(w.refused for w in self.windows)

    def busiest(self) -> int:
        """The most requests that arrived in any stretch of `seconds` (not only in the windows)."""
        times = sorted(t for w in self.windows for t in w.arrivals)
        most, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= self.seconds:
                first += 1
            most = max(most, last - first + 1)
        return most
