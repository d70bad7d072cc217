"""`FixtureServer`: a source's offline API on loopback, for its tests and the demo.

A source's fixture is its routes and its deterministic data; paging, token checks, rate-limit
headers, a rate limit to play (`api.quota`, etl/kit/fixture_quota.py) and injected faults come
from here, the same for every source:

    class AcmeFixture(FixtureServer):
        def __init__(self, **options):
            self.widgets = make_widgets(seed=0)
            super().__init__([(r"/v1/widgets", self.list_widgets)], paging="cursor", **options)

        def list_widgets(self, match, params):
            return Listing([w for w in self.widgets if w["owner"] == params.get("owner")])

    with AcmeFixture(token="t", max_per_page=5) as api:
        api.inject("429", after=3)              # see `Faults`
        ... api.url, api.requests

A route is a full-match regular expression on the path and a handler `(match, params)`
returning a JSON body, a `Listing` to be paged, or an `Answer` (any status). Paging (style,
parameter names, `Link` headers, a total header, a bare list): etl/kit/fixture_paging.py.
The token travels in `token_header` (`X-Api-Key`, say; the client's `TokenHeader`), and a
missing or wrong one gets `refusal` (default: 401 `Bad credentials`):

    FixtureServer(routes, token="k", token_header="X-Api-Key", refusal=Answer(403, {"error": "bad key"}),
                  paging="offset", links=True, items_field=None, total_header="X-Total-Count")
"""

from __future__ import annotations

import argparse
import email.utils
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from etl.kit.fixture_paging import PAGING, Listing, Pager
from etl.kit.fixture_quota import REFUSAL, Quota
from etl.kit.loopback import LOOPBACK, LoopbackServer, Reply, Request

FAULTS = ("5xx", "429", "rate_limit", "stall", "drop", "cut")
STATUSES = (500, 502, 503, 504)
"""What a `5xx` fault answers."""
WAITS = ("seconds", "date", "reset")
"""How a 429 (or a 503) says how long to wait: Retry-After in seconds or as an HTTP date, or the
rate-limit headers (X-RateLimit-Remaining: 0 and X-RateLimit-Reset, an epoch time)."""
LIMIT = 5000
"""The hourly quota the rate-limit headers announce."""


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request as the fixture saw it, for tests to inspect."""

    path: str
    """Path and query string."""
    authorization: str | None
    status: int


@dataclass
class _Fault:
    kind: str
    start: int
    count: int
    seconds: float
    announce: bool
    status: int = 502
    wait_as: str = "seconds"


class Faults:
    """Trouble on purpose, counted from the moment of `inject`, thread-safe:

        inject("5xx", count=2, after=3)          requests 4 and 5 answer 502 (`status=500`, 503, 504: those)
        inject("429", seconds=1)                 the next answers 429 with Retry-After: 1; `wait_as="date"`
                                                 says it as an HTTP date, `"reset"` as X-RateLimit-Remaining: 0
                                                 and X-RateLimit-Reset (an epoch time); a 503 says it as
                                                 Retry-After (seconds or a date)
        inject("rate_limit", seconds=2)          the next spends the quota (X-RateLimit-Remaining: 0);
                                                 until the reset, `seconds` on, requests get 403
        inject("rate_limit", seconds=3 * 3600, announce=False)   the next already gets 403
        inject("stall", seconds=2)               the next answers after 2 s (past a short timeout)
        inject("drop") / inject("cut")           the connection closes before / halfway through the answer
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.pending: list[_Fault] = []
        self.used = 0
        self.window_reset = int(time.time()) + 3600
        self.spent_until: float | None = None

    def inject(self, kind: str, count: int = 1, after: int = 0, seconds: float = 1.0, announce: bool = True,
               status: int = 502, wait_as: str = "seconds") -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; the fixture can inject: {', '.join(FAULTS)}")
        if kind == "5xx" and status not in STATUSES:
            raise ValueError(f"status={status!r}: a 5xx fault answers one of {', '.join(map(str, STATUSES))}")
        if wait_as not in WAITS:
            raise ValueError(f"wait_as={wait_as!r}: choose one of {', '.join(WAITS)}")
        with self._lock:
            self.pending.append(_Fault(kind, self.requests + after, count, seconds, announce, status, wait_as))

    def clear(self) -> None:
        """No more faults, and the quota is whole again (as after its reset)."""
        with self._lock:
            self.pending.clear()
            self.spent_until = None

    def next_request(self) -> tuple[_Fault | None, dict[str, str]]:
        """Count a request: the fault it meets (if any) and the rate-limit headers to send."""
        with self._lock:
            index, now = self.requests, time.time()
            self.requests += 1
            if self.spent_until is not None and now >= self.spent_until:
                self.spent_until, self.used = None, 0
            fault = None
            if self.spent_until is None:  # a spent quota answers first; faults wait their turn
                fault = next((f for f in self.pending if f.start <= index and f.count > 0), None)
            if fault:
                fault.count -= 1
                if fault.kind == "rate_limit":
                    self.spent_until = math.ceil(now + fault.seconds)
            elif self.spent_until is not None:
                fault = _Fault("rate_limit", index, 0, 0, announce=False)
            self.used += 1
            spent = self.spent_until is not None
            return fault, {"X-RateLimit-Limit": str(LIMIT), "X-RateLimit-Remaining": "0" if spent else
                           str(max(0, LIMIT - self.used)), "X-RateLimit-Used": str(min(self.used, LIMIT)),
                           "X-RateLimit-Reset": str(int(self.spent_until if spent else self.window_reset)),
                           "X-RateLimit-Resource": "core"}


Handler = Callable[[re.Match, dict[str, str]], Any]


class FixtureServer(LoopbackServer):
    """Serves `routes` on 127.0.0.1; `url` is its root. Start with `start()` or `with`."""

    name = "fixture-api"

    def __init__(self, routes: list[tuple[str, Handler]], *, port: int = 0, token: str | None = None,
                 token_header: str = "Authorization", refusal: Answer | None = None, paging: str = "link",
                 max_per_page: int = 100, default_per_page: int = 30, items_field: str | None = "data",
                 params: dict[str, str] | None = None, links: bool | None = None, total_header: str | None = None):
        self.routes = [(re.compile(pattern), handler) for pattern, handler in routes]
        self.require_token = token
        """When set, a request without it (`Bearer T`, `token T` or `T` in `token_header`) is refused."""
        self.token_header = token_header
        self.refusal = refusal
        """The answer to a missing or wrong token (default: 401 `Bad credentials`, as GitHub's)."""
        self.pager = Pager(paging, max_per_page, default_per_page, items_field, params, links, total_header)
        self.faults = Faults()
        self.quota: Quota | None = None
        """A rate limit to play (`etl.kit.fixture_quota`); None: only the faults injected."""
        self.requests: list[Seen] = []
        self.hooks: list[Callable[[Seen], None]] = []
        """Called after each request is answered (to change the data mid-walk, say)."""
        super().__init__(LOOPBACK, port)

    @property
    def max_per_page(self) -> int:
        """The largest page served, whatever the client asks (small, to get many pages from little data)."""
        return self.pager.max_per_page

    @max_per_page.setter
    def max_per_page(self, size: int) -> None:
        self.pager.max_per_page = size

    def inject(self, kind: str, count: int = 1, after: int = 0, seconds: float = 1.0, announce: bool = True,
               status: int = 502, wait_as: str = "seconds") -> None:
        """Make trouble on purpose; see `Faults`."""
        self.faults.inject(kind, count, after, seconds, announce, status, wait_as)

    def handle(self, request: Request) -> Reply:
        fault, headers = self.faults.next_request()
        presented = request.headers.get(self.token_header)
        admitted, limit = self.quota.admit() if self.quota else (True, {})
        headers.update(limit)
        status, body, misbehave, stall = (self._answer(request, fault, presented, headers) if admitted
                                          else (429, REFUSAL, None, 0.0))
        sent = json.dumps(body).encode()  # before the hooks, which may change the data
        seen = Seen(request.path, presented, status)
        self.requests.append(seen)
        for hook in list(self.hooks):
            hook(seen)
        headers["Content-Type"] = "application/json; charset=utf-8"
        return Reply(status, sent, headers, stall, misbehave)

    def _answer(self, request: Request, fault: _Fault | None, presented: str | None,
                headers: dict[str, str]) -> tuple[int, Any, str | None, float]:
        kind = fault.kind if fault else None
        if kind == "5xx":
            if fault.status == 503:
                _say_wait(fault, headers)
            return fault.status, {"message": "Server Error"}, None, 0.0
        if kind in ("drop", "cut", "stall"):
            status, body = self._route(request, headers)
            return status, body, None if kind == "stall" else kind, fault.seconds if kind == "stall" else 0.0
        token = self.require_token
        if token and presented not in (f"Bearer {token}", f"token {token}", token):
            if self.refusal:
                headers.update(self.refusal.headers)
                return self.refusal.status, self.refusal.body, None, 0.0
            return 401, {"message": "Bad credentials" if presented else "Requires authentication"}, None, 0.0
        if kind == "429":
            _say_wait(fault, headers)
            return 429, {"message": "You have exceeded a secondary rate limit. Please wait."}, None, 0.0
        if kind == "rate_limit" and not fault.announce:
            return 403, {"message": "API rate limit exceeded."}, None, 0.0
        status, body = self._route(request, headers)
        return status, body, None, 0.0

    def _route(self, request: Request, headers: dict[str, str]) -> tuple[int, Any]:
        parts = urlsplit(request.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        for pattern, handler in self.routes:
            match = pattern.fullmatch(parts.path.rstrip("/") or "/")
            if match:
                result = handler(match, params)
                if isinstance(result, Answer):
                    headers.update(result.headers)
                    return result.status, result.body
                if isinstance(result, Listing):
                    return 200, self.pager.page(result, self.url + (result.link_path or parts.path), params, headers)
                return 200, result
        return 404, {"message": "Not Found"}


def _say_wait(fault: _Fault, headers: dict[str, str]) -> None:
    """How long to wait, said as `fault.wait_as` asks (see `WAITS`)."""
    if fault.wait_as == "reset" and fault.kind == "429":
        headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(math.ceil(time.time() + fault.seconds))})
    elif fault.wait_as == "date":
        headers["Retry-After"] = email.utils.formatdate(math.ceil(time.time() + fault.seconds), usegmt=True)
    else:
        headers["Retry-After"] = str(math.ceil(fault.seconds))


# -- running a fixture standalone: `python -m sources.<name>.fixture` ----------------------------

def fixture_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every fixture's `__main__` takes: port, token, page size and faults."""
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--max-per-page", type=int, default=100, metavar="N",
                        help="cap page sizes, to get many pages from little data")
    parser.add_argument("--require-token", metavar="TOKEN", help="answer 401 unless this token is sent")
    parser.add_argument("--fail-5xx", type=int, default=0, metavar="N", help="answer N requests with a 5xx")
    parser.add_argument("--fail-status", type=int, choices=STATUSES, default=502, help="the 5xx of --fail-5xx")
    parser.add_argument("--throttle", type=int, default=0, metavar="N",
                        help="answer N requests with 429 and Retry-After")
    parser.add_argument("--retry-after", type=float, default=1.0, metavar="S", help="Retry-After for --throttle")
    parser.add_argument("--wait-as", choices=WAITS, default="seconds",
                        help="how --throttle says the wait: Retry-After in seconds or as an HTTP date, or "
                             "X-RateLimit-Reset (default seconds)")
    parser.add_argument("--rate-limit", action="store_true",
                        help="spend the rate limit once (X-RateLimit-Remaining: 0, then 403 until the reset)")
    parser.add_argument("--reset-in", type=float, default=2.0, metavar="S",
                        help="seconds to the reset, for --rate-limit")
    parser.add_argument("--fault-after", type=int, default=0, metavar="N",
                        help="let N requests through before the faults above start")


def serve(parser: argparse.ArgumentParser, args: argparse.Namespace, build: Callable[[], FixtureServer],
          label: str, settings: Callable[[str], dict[str, str]]) -> int:
    """Build the fixture from parsed `fixture_arguments`, print where it is and the settings that
    point a worker at it, and serve until Ctrl-C."""
    if args.max_per_page < 1:
        parser.error("--max-per-page must be at least 1")
    try:
        fixture = build()
    except OSError as exc:
        parser.error(f"cannot listen on {LOOPBACK}:{args.port}: {exc.strerror}; choose another --port")
    for kind, count, seconds in (("5xx", args.fail_5xx, 0), ("429", args.throttle, args.retry_after),
                                 ("rate_limit", int(args.rate_limit), args.reset_in)):
        if count:
            fixture.inject(kind, count, args.fault_after, seconds or 1.0, status=args.fail_status,
                           wait_as=args.wait_as)
    print(f"{label} on {fixture.url}", flush=True)
    for name, value in settings(fixture.url).items():
        print(f"  export {name}={value}", flush=True)
    try:
        fixture.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fixture.stop()
    return 0
