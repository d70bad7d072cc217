"""Random trouble for a fixture HTTP service: a share of requests fail the ways real APIs fail.

    plan = ChaosPlan(rate=0.2, seed=seed, stall_s=0.8)
    make_chaotic(fixture_http_server, plan)     # from now on, 20% of GETs misbehave

Each faulty request gets one of: HTTP 500, 502 or 503; 429 with `Retry-After: 1`; a stall
longer than the client's timeout; the connection closed before any response; or the
connection closed halfway through the body. Both fixture services can inject some of these
themselves (counted, or only some kinds); this wraps their request handler class instead, so
every source meets the same mix at the same rate, drawn from one seed.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from http.server import HTTPServer

KINDS = ("500", "502", "503", "429", "timeout", "drop", "cut")


class ChaosPlan:
    """Which requests fail and how: seeded, thread-safe, counted."""

    def __init__(self, rate: float, seed: int, stall_s: float, kinds: tuple[str, ...] = KINDS):
        self.rate = rate
        self.stall_s = stall_s
        self.kinds = kinds
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.counts[kind] += 1
            self.counts["faults"] += 1
            return kind

    def summary(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


class _CutWriter:
    """Passes the headers through, then writes half of the body and stops."""

    def __init__(self, inner):
        self.inner = inner
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes == 1 or not data:
            return self.inner.write(data)
        self.inner.write(data[: len(data) // 2])
        return len(data)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # closed, flush, ...: the socket writer's own


def make_chaotic(server: HTTPServer, plan: ChaosPlan) -> None:
    """Wrap `server`'s request handler so GETs meet `plan`'s faults (takes effect for new connections)."""
    base = server.RequestHandlerClass

    class Chaotic(base):  # type: ignore[misc, valid-type]
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            fault = plan.draw()
            if fault is None:
                return super().do_GET()
            self.close_connection = True
            if fault == "drop":
                return  # the connection closes without a response
            if fault == "timeout":
                time.sleep(plan.stall_s)  # the client has given up by now
                return
            if fault == "cut":
                self.wfile = _CutWriter(self.wfile)
                return super().do_GET()
            body = f'{{"message": "injected {fault}"}}'.encode()
            self.send_response(int(fault))
            if fault == "429":
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

    server.RequestHandlerClass = Chaotic
