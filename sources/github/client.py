"""The GitHub REST client both flows share: Link-header pages, rate limits, clear refusals.

    with GitHubClient(settings) as gh:
        for items, cursor in gh.chunks("/repos/o/r/issues?state=all", None, size=10):
            ...

- The token (`GITHUB_TOKEN`) goes in an `Authorization: Bearer` header, and only
  to URLs under `GITHUB_API_URL`; it is never part of a URL or a cursor.
- Rate limits are waited out: `Retry-After` on 429/403, and `X-RateLimit-Remaining: 0`
  until `X-RateLimit-Reset`, both before the next request and after a refusal. A wait
  longer than `max_wait` raises `GitHubUnavailable` so Temporal retries later instead.
- 5xx answers and network errors are retried a few times here, then `GitHubUnavailable`.
- 401, 403 (not rate limiting), 404 and other 4xx raise `SourceError`: retrying cannot help.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, Callable, Iterator

import httpx

from etl.core.errors import EtlError, SourceError
from etl.core.settings import Settings
from sources.github.settings import GitHubSettings

PER_PAGE = 100
"""GitHub's largest page."""
MAX_WAIT = 30.0
"""Longest single rate-limit wait, in seconds. The streaming flow heartbeats between pages
with a 60 s timeout, so a page must not sleep much longer than this."""
RETRIES = 3
"""Extra attempts after a 5xx or a network error, before giving up to Temporal's retry."""
BACKOFF = 0.25
"""First backoff after a 5xx, in seconds; doubles each attempt."""
MAX_RATE_WAITS = 5
"""Rate-limit waits for one request; more means our clock and GitHub's disagree."""
SECONDARY_WAIT = 60.0
"""GitHub's advice for a secondary rate limit that names no time: wait at least a minute."""


class GitHubUnavailable(EtlError):
    """GitHub is down, slow or rate-limiting us for longer than we wait: retrying later helps.

    (Belongs in `etl.core.errors` as a general retryable source error; see the source README.)"""

    retryable = True


class GitHubClient:
    """A blocking httpx client for one extract run. Use as a context manager."""

    def __init__(self, settings: Settings, *, max_wait: float = MAX_WAIT, retries: int = RETRIES,
                 sleep: Callable[[float], None] = time.sleep, timeout: float = 30.0):
        gh = settings.source(GitHubSettings)
        self.base = gh.api_url.rstrip("/")
        self.has_token = bool(gh.token)
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "temporal-etl-fleet",
        }
        if gh.token:
            headers["Authorization"] = f"Bearer {gh.token}"
        # follow_redirects stays off: a redirect could carry the Authorization header elsewhere.
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))
        self.max_wait = max_wait
        self.retries = retries
        self._sleep = sleep
        self._quota_reset: float | None = None

    def __enter__(self) -> "GitHubClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- pages ---------------------------------------------------------------------------

    def get(self, ref: str) -> tuple[Any, str | None]:
        """GET `ref` (a path under the API root, with its query string): the JSON body and the
        `ref` of the next page (from the `Link` header), or None on the last page."""
        response = self._send(ref)
        link = response.links.get("next", {}).get("url")
        return response.json(), self._ref(link) if link else None

    def all(self, ref: str) -> list[Any]:
        """Every item of a paginated list, following `Link: rel="next"` to the end."""
        items: list[Any] = []
        next_ref: str | None = ref
        while next_ref:
            page, next_ref = self.get(next_ref)
            items.extend(page)
        return items

    def chunks(self, first: str, cursor: str | None, size: int) -> Iterator[tuple[list[Any], str | None]]:
        """The items of a paginated list, `size` at a time, each with the cursor that resumes
        after them: `ref` of a list page, plus `#k` when the first k items of it are done."""
        ref, sep, done = (cursor or first).rpartition("#")
        if not sep:
            ref, done = cursor or first, "0"
        if not done.isdigit():
            raise SourceError(f"{cursor!r} is not a GitHub cursor made by this source; restart the flow "
                              "without a cursor")
        skip = int(done)
        while ref:
            items, next_ref = self.get(ref)
            for start in range(skip, len(items), size):
                end = start + size
                yield items[start:end], f"{ref}#{end}" if end < len(items) else next_ref
            ref, skip = next_ref, 0

    def _ref(self, url: str) -> str:
        # Keep cursors short and host-free; refuse to follow a link off the API root,
        # which would also mean sending the token there.
        if not url.startswith(self.base + "/"):
            raise SourceError(f"GitHub sent a next-page link outside GITHUB_API_URL ({self.base}): {url}; "
                              "set GITHUB_API_URL to the API's own address")
        return url[len(self.base):]

    def _check_ref(self, ref: str) -> None:
        if not ref.startswith("/") or ref.startswith("//"):
            raise SourceError(f"{ref!r} is not a GitHub cursor made by this source; restart the flow "
                              "without a cursor")

    # -- one request ---------------------------------------------------------------------

    def _send(self, ref: str) -> httpx.Response:
        self._check_ref(ref)
        url = self.base + ref
        failures = waits = 0
        while True:
            self._wait_for_quota()
            try:
                response = self._http.get(url)
            except httpx.TransportError as exc:  # timeouts, refused and reset connections
                failures += 1
                if failures > self.retries:
                    raise GitHubUnavailable(f"GitHub did not answer GET {_path(ref)} after "
                                            f"{failures} attempts: {exc!r}") from exc
                self._sleep(BACKOFF * 2 ** (failures - 1))
                continue
            self._note_quota(response)
            if response.status_code < 400:
                return response
            delay = self._rate_limit_delay(response)
            if delay is not None:
                waits += 1
                if delay > self.max_wait or waits > MAX_RATE_WAITS:
                    raise GitHubUnavailable(f"GitHub rate limit on GET {_path(ref)}: asked to wait "
                                            f"{delay:.0f} s (wait {waits}); retrying later")
                self._sleep(delay)
                continue
            if response.status_code >= 500:
                failures += 1
                if failures > self.retries:
                    raise GitHubUnavailable(f"GitHub answered {response.status_code} to GET {_path(ref)} "
                                            f"{failures} times; retrying later")
                self._sleep(_retry_after(response) or BACKOFF * 2 ** (failures - 1))
                continue
            raise self._refusal(ref, response)

    def _note_quota(self, response: httpx.Response) -> None:
        # An answer that spends the last request of the quota says so; wait before the next
        # request rather than collect a 403 first.
        if response.headers.get("X-RateLimit-Remaining") == "0":
            self._quota_reset = _number(response.headers.get("X-RateLimit-Reset"))

    def _wait_for_quota(self) -> None:
        if self._quota_reset is None:
            return
        reset, self._quota_reset = self._quota_reset, None
        delay = reset - time.time()
        if delay > self.max_wait:
            raise GitHubUnavailable(f"GitHub rate limit spent until {time.ctime(reset)}; waiting "
                                    f"{delay:.0f} s is longer than we wait here; retrying later")
        if delay > 0:
            self._sleep(delay + 0.5)  # half a second for the clocks to disagree

    def _rate_limit_delay(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying a rate-limited answer, or None if it is not one."""
        if response.status_code not in (403, 429):
            return None
        after = _retry_after(response)
        if after is not None:
            return after
        if response.headers.get("X-RateLimit-Remaining") == "0":
            reset = _number(response.headers.get("X-RateLimit-Reset"))
            self._quota_reset = None  # this wait replaces the one _note_quota scheduled
            return max(1.0, (reset or 0) - time.time() + 0.5)
        if response.status_code == 429 or "rate limit" in _message(response).lower():
            return SECONDARY_WAIT
        return None

    def _refusal(self, ref: str, response: httpx.Response) -> SourceError:
        status, message, path = response.status_code, _message(response), _path(ref)
        if status == 401:
            fix = ("set GITHUB_TOKEN to a valid token" if self.has_token else
                   "this API needs a token: set GITHUB_TOKEN")
            return SourceError(f"GitHub rejected our credentials (401 {message}) for GET {path}: {fix}",
                               status=status)
        if status == 404:
            return SourceError(f"GitHub has no such thing (404 {message}) at GET {path}: check the query's "
                               "owner and repo, and for a private repository that GITHUB_TOKEN can read it",
                               status=status)
        if status == 403:
            return SourceError(f"GitHub refused access (403 {message}) to GET {path}: give GITHUB_TOKEN "
                               "read access to this repository's issues and pull requests", status=status)
        return SourceError(f"GitHub refused GET {path} ({status} {message}); retrying cannot fix this",
                           status=status)


def _path(ref: str) -> str:
    return ref.split("?", 1)[0]


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    return str(body.get("message", "")) if isinstance(body, dict) else response.reason_phrase


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds: a number of seconds or an HTTP date."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is None:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)
