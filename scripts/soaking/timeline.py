"""The soak's timeline: one line per thing that happened, printed as it happens, and counted."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import TextIO


class Timeline:
    """`say(kind, text)` prints `mm:ss kind text` and counts `kind`; safe from any thread."""

    def __init__(self, out: TextIO = sys.stdout, quiet: bool = False):
        self.out = out
        self.quiet = quiet
        self.started = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, kind: str, text: str, count: bool = True) -> None:
        seconds = int(self.elapsed())
        line = f"{seconds // 60:3d}:{seconds % 60:02d}  {kind:<16} {text}"
        with self._lock:
            if count:
                self.counts[kind] += 1
            self.lines.append(line)
            if not self.quiet:
                print(line, file=self.out, flush=True)
