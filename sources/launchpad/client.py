"""A launchpadlib session for one extract call: login, the member, errors, pages, events.

Login is anonymous unless LP_CREDENTIALS_FILE names a credentials file (read here, never a query
argument). Every HTTP call, the member lookup included, has a timeout and goes through `retrying`:
refusals that retrying cannot fix (401, 403, 404, 400, no such member) become `SourceError` or
`QueryError`, which fail the activity at once; 5xx, 429, timeouts, lost connections and answers
cut short become `SourceUnavailable`, retried `RETRIES` times here (waits of at most 10 s), then
by the activity's retry policy with Launchpad's `Retry-After` as its delay.

Every request after login draws from the fleet's budget for Launchpad and this credential
(`LP_RATE_LIMIT`, `LP_MAX_CONCURRENT`; `etl.kit.budget`), at the one place every request of
launchpadlib goes through: its httplib2 connection."""

from __future__ import annotations

import contextlib
import http.client
from datetime import timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from httplib2 import HttpLib2Error
from launchpadlib import uris
from launchpadlib.credentials import Credentials
from launchpadlib.launchpad import Launchpad
from lazr.restfulclient.errors import CredentialsFileError, HTTPError

from etl.core.errors import ConfigError, QueryError, SourceError, SourceUnavailable, shown
from etl.core.extract import Page
from etl.core.settings import Settings
from etl.core.times import read_time
from etl.kit.answers import retry_after, transient
from etl.kit.archive import in_use
from etl.kit.budget import BudgetKey, Folded, Turns
from etl.kit.events import Events
from etl.kit.idle import Idle
from etl.kit.retry import retrying as kit_retrying
from etl.kit.walk import Batch, Item, Listing, walk
from sources.launchpad.archive import ArchivedLaunchpad
from sources.launchpad.query import LaunchpadQuery
from sources.launchpad.settings import LaunchpadSettings

#: Seconds for any one HTTP exchange with Launchpad (httplib2's socket timeout).
TIMEOUT = 60.0
#: Attempts of one request before a transient failure goes to the activity's retry policy.
RETRIES = 4


def service_root(query: LaunchpadQuery, settings: Settings) -> str:
    """The service root URL (ending with `/`): the query's, else LP_WEB_ROOT; aliases and web roots resolved."""
    root = query.service_root or settings.source(LaunchpadSettings).web_root
    for alias, web in uris.web_roots.items():
        if root.rstrip("/") == web.rstrip("/"):
            root = alias  # a web root such as https://launchpad.net/ names its API's root
    root = uris.lookup_service_root(root)
    return root if root.endswith("/") else root + "/"


HINTS = {401: "the credentials in LP_CREDENTIALS_FILE were refused; make new ones",
         403: "the credentials do not allow it (private data needs LP_CREDENTIALS_FILE)",
         404: "it does not exist (or is private); check service_root and api_version"}


@contextlib.contextmanager
def refusals(what: str) -> Iterator[None]:
    """Turn Launchpad's refusals of `what` into `SourceError` (permanent) or `SourceUnavailable` (for now)."""
    try:
        yield
    except HTTPError as exc:
        status, answer, body = exc.response.status, exc.response, exc.content
        if transient(status):
            raise SourceUnavailable(f"Launchpad could not answer {what} (HTTP {status} {answer.reason})",
                                    status=status, retry_after_s=retry_after(answer.get("retry-after"))) from exc
        said = shown(body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body), 300)
        raise SourceError(f"Launchpad refused {what} (HTTP {status}): {HINTS.get(status, said)}", status=status) \
            from None
    except (TimeoutError, ConnectionError, HttpLib2Error, http.client.HTTPException) as exc:
        # HTTPException: an answer cut short (IncompleteRead) or garbled on the wire; asking again helps.
        # Quoted: what came off the wire may hold control characters (an ESC would recolour a terminal).
        raise SourceUnavailable(f"Launchpad did not answer {what}: {type(exc).__name__}: {shown(str(exc), 300)}"
                                ) from exc


def _login_key(query: LaunchpadQuery, settings: Settings) -> tuple:
    lp = settings.source(LaunchpadSettings)
    return (service_root(query, settings), query.api_version or lp.api_version,
            query.application_name or lp.app_id, lp.credentials_file,
            lp.cache_dir or str(settings.state_dir), lp.timeout or TIMEOUT)


# Logging in parses Launchpad's 1.5 MB WADL (about 0.1 s and 16 MB): a few idle clients are kept for
# the next extract call (a resumed or chunked flow, a retry).
IDLE: Idle[Launchpad] = Idle(keep=2)


def login(query: LaunchpadQuery, settings: Settings) -> Launchpad:
    """A Launchpad client for the query's service root and version, with the worker's credentials."""
    root, version, app, _, _, timeout = _login_key(query, settings)
    lp_settings = settings.source(LaunchpadSettings)
    home = Path(lp_settings.cache_dir or settings.state_dir / "launchpadlib")
    with refusals(f"the web service {root}{version}/"):
        if not lp_settings.credentials_file:
            return ArchivedLaunchpad.login_anonymously(app, service_root=root, launchpadlib_dir=str(home),
                                               timeout=timeout, version=version)
        try:
            credentials = Credentials.load_from_path(lp_settings.credentials_file)
        except (OSError, CredentialsFileError) as exc:
            raise ConfigError("LP_CREDENTIALS_FILE", lp_settings.credentials_file,
                              f"a readable launchpadlib credentials file ({exc})") from None
        cache = home / (root.split("://", 1)[-1].split("/", 1)[0].replace(":", "_")) / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        # No authorization engine: a worker cannot open a browser, so a bad token fails (401).
        return ArchivedLaunchpad(credentials, None, None, service_root=root, cache=str(cache), timeout=timeout,
                         version=version)


def draw_from_budget(lp: Launchpad, root: str, settings: LaunchpadSettings, timeout: float) -> Launchpad:
    """`lp` with every request it sends drawn from the fleet's budget for Launchpad and its credential."""
    token = getattr(getattr(lp, "credentials", None), "access_token", None)
    secrets = (getattr(token, "key", None), getattr(token, "secret", None))
    turns = Turns(BudgetKey.of("Launchpad", root, secrets), settings.limits(), lease_s=timeout + 5.0, max_wait=10.0)
    connection = lp._browser._connection  # noqa: SLF001 - launchpadlib's one door to the network
    send = connection.request

    def request(*args: Any, **kwargs: Any):
        return turns.send(lambda: send(*args, **kwargs), lambda answer: (answer[0].status, Folded(answer[0]), ""))

    connection.request = request
    return lp


def person_named(lp: Launchpad, base: str, name: str):
    """The person or team called `name`, with the client's retries; `SourceError` when there is none."""
    def look_up():
        try:
            return lp.people[name]
        except KeyError:
            raise SourceError(f"Launchpad at {base} has no person or team named {name!r}: check the name "
                              "(the one in launchpad.net/~NAME, not the display name)", status=404) from None

    return retrying(look_up, f"the person {name!r}")


def retrying(call: Callable[[], Any], what: str) -> Any:
    """`call()` with Launchpad's refusals translated, and the kit's few quick retries of what is
    transient (a Retry-After over 10 s goes to Temporal as the activity's retry delay): one flaky
    request should not cost the activity attempt, and the pages it already read."""
    def translated() -> Any:
        with refusals(what):
            return call()

    return kit_retrying(translated, what, retries=RETRIES - 1, max_wait=10.0)


class Client:
    """A logged-in launchpadlib client, taken from the idle ones when it can be: `with Client(...) as lp`."""

    def __init__(self, query: LaunchpadQuery, settings: Settings):
        self.key = _login_key(query, settings)
        self.base = f"{self.key[0]}{self.key[1]}/"
        # Recording into the archive, a fresh login: its WADL and service root go into the archive too,
        # so a replay can log in from it.
        archive = in_use()
        self.lp = (None if archive and not archive.replay else IDLE.take(self.key)) or draw_from_budget(
            login(query, settings), self.key[0], settings.source(LaunchpadSettings), self.key[5])

    def __enter__(self) -> Launchpad:
        return self.lp

    def __exit__(self, *exc: Any) -> None:
        if self.lp is not None:  # an HTTP error leaves it usable: hand it back for the next extract call
            IDLE.give_back(self.key, self.lp)
            self.lp = None


class Session(Client):
    """One extract call's view of Launchpad: the member, its acts in the window, counted requests."""

    def __init__(self, query: LaunchpadQuery, settings: Settings, event_type: str):
        super().__init__(query, settings)
        self.query, self.requests, self.events = query, 1, Events("launchpad", event_type)
        try:
            self.member = person_named(self.lp, self.base, query.member)
            if self.member.is_team:
                raise QueryError(query.name, "member", f"{query.member!r} is a team; run the flow for each of "
                                                       "its members (the launcher expands teams)")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.__exit__()

    def act(self, person_link: str | None, at: Any, event_id: str, **fields: Any) -> dict | None:
        """The event of an act (see `etl.kit.events`) in the member's time zone, when the member did it
        (`person_link` is theirs) inside the window; else None."""
        # `alice` from `.../~alice`: links are canonical, so no request is needed to know who acted.
        mine = bool(person_link) and person_link.rstrip("/").rsplit("/~", 1)[-1] == self.query.member
        mine = mine and at not in (None, "")
        moment = read_time(at).astimezone(timezone.utc) if mine else None
        return self.events.event(event_id, actor=self.query.member, at=moment, zone=self.member.time_zone,
                                 **fields) if moment and self.query.contains(moment) else None

    def relative(self, url: str) -> str:
        """`url` without the API base: cursors stay short."""
        return url[len(self.base):] if url.startswith(self.base) else url

    def _call(self, call: Callable[[], Any], what: str) -> Any:
        self.requests += 1
        return retrying(call, what)

    def _batch(self, fetch: Callable[[], Any], what: str) -> Batch:
        def read(page: Any) -> Batch:
            following = getattr(page, "next_collection_link", None)
            return Batch(list(page.entries), int(page.start), self.relative(following) if following else None)
        return self._call(lambda: read(fetch()), what)

    def listing(self, what: str, operation: Callable[[], Any], key: Callable[[dict], str],
                item: Callable[[dict], Item | None]) -> Listing:
        """A top-level list for the walk: the named operation `what` (its first page is `operation()`),
        an entry's key (a link, kept relative) and what the entry holds."""
        return Listing(what, lambda: self._batch(operation, what), lambda entry: self.relative(key(entry)), item)

    def read(self, ref: str, what: str) -> Batch:
        """The collection page at `ref` (relative to the API base, or absolute)."""
        return self._batch(lambda: self.lp.load(ref if "://" in ref else self.base + ref), what)

    def load(self, url: str, what: str):
        """The entry at `url`, or None when it is gone or hidden since the search listed it."""
        try:
            return self._call(lambda: self.lp.load(url), what)
        except SourceError as exc:
            if exc.status in (403, 404, 410):
                return None
            raise

    def walk(self, listings: list[Listing], cursor: str | None) -> Iterator[Page]:
        """The kit's walk over `listings` (etl/kit/walk.py), from `cursor`; closes the session at the end."""
        try:
            yield from walk(listings, cursor, self.read, cost=lambda: self.requests, source="Launchpad")
        finally:
            self.close()
