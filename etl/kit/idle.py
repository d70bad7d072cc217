"""`Idle`: a few clients kept between extract calls, for a source whose client is costly to make
(launchpadlib parses a 1.5 MB WADL to log in). Each client is used by one thread at a time:
take it, use it, give it back.

    IDLE = Idle(keep=2)
    client = IDLE.take(key) or login(...)
    try: ...
    finally: IDLE.give_back(key, client)
"""

from __future__ import annotations

import threading
from typing import Any, Generic, Hashable, TypeVar

T = TypeVar("T")


class Idle(Generic[T]):
    """Up to `keep` idle clients, each under the key of what it was made for (address, credentials...)."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._idle: list[tuple[Hashable, Any]] = []
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> T | None:
        """An idle client made for `key`, now the caller's alone; None when there is none."""
        with self._lock:
            for k, (idle_key, client) in enumerate(self._idle):
                if idle_key == key:
                    del self._idle[k]
                    return client
        return None

    def give_back(self, key: Hashable, client: T) -> None:
        """Keep `client` for the next caller of `key` (the oldest idle one goes when more than `keep` wait)."""
        with self._lock:
            self._idle.append((key, client))
            del self._idle[:-self.keep]

    def clear(self) -> None:
        """Drop every idle client (a test that must see the next extract call log in afresh)."""
        with self._lock:
            self._idle.clear()
