"""`SourceClient`: the HTTP client every source uses, on httpx.

    with SourceClient("https://api.acme.example", auth=Bearer(token), name="Acme",
                      hints={404: "check the query's owner"}) as acme:
        body = acme.json("/v1/widgets/7")
        for items, cursor in acme.pages("/v1/widgets", {"owner": "ann"}, BodyCursor(), cursor=cursor):
            ...

- Requests go only to URLs under `base_url` (links and cursors elsewhere are refused), so
  the credentials never travel anywhere else; redirects are not followed, for the same reason.
- Transient failures (5xx, 408/425/429, timeouts, refused or dropped connections) are retried
  here `retries` times (`etl.kit.retry`), waiting what the API asks (`Retry-After`, a rate-limit reset) or a
  short backoff. A wait longer than `max_wait`, or one failure too many, raises
  `SourceUnavailable(retry_after_s=...)`: the activity hands that delay to Temporal
  (`next_retry_delay`), which waits exactly as long as the API asked, however long.
- An answer that spends the quota (`X-RateLimit-Remaining: 0`) makes the next request wait
  for the reset instead of collecting a refusal first.
- `limits` (the source's rate and requests at once, `etl.core.limits`): with a budget installed
  by the worker, every request draws from the one the whole fleet shares for this source and
  credential, and a spent quota is recorded for the fleet (`etl.kit.budget`).
- 400, 401, 403 (not a rate limit), 404 and any other 4xx raise `SourceError`, non-retryable,
  with the status, the URL (secrets removed) and what to fix.
- Through the source archive (`etl.kit.archive`) when the flow archives or replays: its transport
  records each answer, or gives it from the archive without opening a connection.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator, Mapping

import httpx

from etl.core.errors import SourceError, SourceUnavailable
from etl.core.limits import Limits
from etl.kit.answers import rate_limit_wait, redact, refusal, reset_in, retry_after, transient, warn_short_secrets
from etl.kit.archive_transport import ArchiveTransport
from etl.kit.budget import BudgetKey, Turns
from etl.kit.paginate import LinkHeader, Paginator, pick
from etl.kit.retry import MAX_WAIT, RETRIES, retrying

log = logging.getLogger(__name__)


class SourceClient:
    """A blocking client for one extract call. Use as a context manager."""

    def __init__(self, base_url: str, *, auth: Any = None, headers: Mapping[str, str] | None = None,
                 timeout: float = 30.0, name: str = "the API", hints: Mapping[int, str] | None = None,
                 retries: int = RETRIES, max_wait: float = MAX_WAIT, limits: Limits | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.base = base_url.rstrip("/")
        self.name = name
        self.hints = dict(hints or {})
        self.retries = retries
        self.max_wait = max_wait
        self._secrets = auth.secrets() if auth else ()
        warn_short_secrets(name, self._secrets, log)
        self._sleep = sleep
        self._quota_reset: float | None = None
        self._turns = Turns(BudgetKey.of(name, self.base, self._secrets), limits or Limits(), lease_s=timeout + 5.0,
                            max_wait=max_wait, sleep=sleep)
        sent = {"User-Agent": "temporal-etl-fleet", **(headers or {}), **(auth.headers() if auth else {})}
        self._http = httpx.Client(headers=sent, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                  follow_redirects=False, transport=ArchiveTransport(self._secrets))

    def __enter__(self) -> "SourceClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- reading ---------------------------------------------------------------------------

    def get(self, ref: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        """GET `ref` (a path under the base URL, or a URL under it) with `params`: the answer, after
        retrying what is transient; `SourceUnavailable` or `SourceError` otherwise."""
        return self._send(self.url(ref), params)

    def json(self, ref: str, params: Mapping[str, Any] | None = None) -> Any:
        """The JSON body of GET `ref`."""
        return self._decode(self.get(ref, params), ref)

    def pages(self, path: str, params: Mapping[str, Any] | None = None, paginator: Paginator | None = None,
              items: str | None = None, cursor: str | None = None) -> Iterator[tuple[list, str | None]]:
        """Every page of a list, from `cursor` (None: the first page): (its items, the cursor that
        resumes after it, None after the last). `items` is where the list is in the body
        (`data`, `result.items`), None when the body is the list."""
        paginator = paginator or LinkHeader()
        while True:
            ref, query = paginator.request(self, path, dict(params or {}), cursor)
            response = self.get(ref, query)
            body = self._decode(response, ref)
            found = pick(body, items, self.name)
            cursor = paginator.next(self, response, body, found, cursor)
            yield found, cursor
            if cursor is None:
                return

    def all(self, path: str, params: Mapping[str, Any] | None = None, paginator: Paginator | None = None,
            items: str | None = None) -> list:
        """Every item of a list, all pages read."""
        return [item for page, _ in self.pages(path, params, paginator, items) for item in page]

    # -- addresses -------------------------------------------------------------------------

    def url(self, ref: str) -> str:
        """The absolute URL of `ref`; a URL off the base URL (a hostile link or cursor) is refused."""
        if ref.startswith(self.base + "/") or ref == self.base:
            return ref
        if ref.startswith("/") and not ref.startswith("//"):
            return self.base + ref
        raise SourceError(f"{ref[:80]!r} is not a {self.name} cursor or link made by this source (it is not "
                          f"under {self.base}); restart the flow without a cursor, or fix the source's base URL")

    def relative(self, url: str) -> str:
        """`url` as a path under the base URL (how cursors keep links: short, host-free)."""
        return self.url(url)[len(self.base):]

    # -- one request -----------------------------------------------------------------------

    def _send(self, url: str, params: Mapping[str, Any] | None) -> httpx.Response:
        return retrying(lambda: self._attempt(url, params), f"GET {self._shown(url)}", retries=self.retries,
                        max_wait=self.max_wait, sleep=self._sleep)

    def _attempt(self, url: str, params: Mapping[str, Any] | None) -> httpx.Response:
        self._wait_for_quota(url)
        try:
            response = self._turns.send(lambda: self._http.get(url, params=params or None),  # {} drops url's query
                                        lambda r: (r.status_code, r.headers, _message(r) if r.status_code == 403 else ""))
        except httpx.TransportError as exc:  # timeouts, refused, reset and cut connections
            raise SourceUnavailable(f"{self.name} did not answer GET {self._shown(url)} "
                                    f"({type(exc).__name__}); retrying later") from exc
        self._note_quota(response)
        status = response.status_code
        if 300 <= status < 400:  # not followed: the credentials must not travel to another address
            raise SourceError(f"{self.name} redirected GET {self._shown(url)} to "
                              f"{self._shown(response.headers.get('Location', '?'))} ({status}); set the source's "
                              "base URL to the address it redirects to", status=status)
        if status < 400:
            return response
        asked = rate_limit_wait(status, response.headers, _message(response))
        if asked is None and not transient(status):
            raise refusal(self.name, status, f"GET {self._shown(response.url)}", _message(response),
                          self.hints, self._secrets)
        if asked is None:
            asked = retry_after(response.headers.get("Retry-After"))
        limited = " (rate limited)" if status in (403, 429) else ""
        raise SourceUnavailable(f"{self.name} answered {status}{limited} to GET {self._shown(response.url)}"
                                + (f"; it asks to wait {asked:.0f} s" if asked is not None else "; retrying later"),
                                status=status, retry_after_s=asked)

    def _note_quota(self, response: httpx.Response) -> None:
        reset = reset_in(response.headers)
        if response.status_code < 400 and reset is not None:
            self._quota_reset = time.time() + reset

    def _wait_for_quota(self, url: str) -> None:
        if self._quota_reset is None:
            return
        delay, self._quota_reset = self._quota_reset - time.time(), None
        if delay > self.max_wait:
            raise SourceUnavailable(f"{self.name}'s rate limit is spent for {delay:.0f} s more, before GET "
                                    f"{self._shown(url)}; waiting for the reset", retry_after_s=delay)
        if delay > 0:
            self._sleep(delay)

    def _shown(self, url: Any) -> str:
        return redact(str(url), self._secrets)

    def _decode(self, response: httpx.Response, ref: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SourceUnavailable(f"{self.name} answered GET {self._shown(ref)} with a body that is not JSON "
                                    f"({len(response.content)} bytes); retrying later") from None


def _message(response: httpx.Response) -> str:
    """The API's own words for a refusal: a JSON `message`/`error`, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        said = body.get("message") or body.get("error") or body.get("detail")
        if isinstance(said, str):
            return said
    return response.reason_phrase
