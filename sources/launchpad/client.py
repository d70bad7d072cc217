"""A launchpadlib session for one extract call: login, the member, errors, pages, records.

Login is anonymous unless the worker's settings name a credentials file
(LP_CREDENTIALS_FILE), which is read here and never enters a query. Every HTTP call
has a timeout. Errors that retrying cannot fix (401, 403, 404, 400, no such member)
become `SourceError`/`QueryError`, which activities fail at once; 5xx, 429, timeouts, lost
connections and answers cut short become `SourceUnavailable` (with the `Retry-After` Launchpad sent).
Every request, the member lookup included, goes through `retrying`: up to `RETRIES` tries
here (waits of at most 10 s), then the activity retry policy takes over, with Launchpad's
`Retry-After` as its delay.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from dataclasses import dataclass
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from httplib2 import HttpLib2Error
from launchpadlib import uris
from launchpadlib.credentials import Credentials
from launchpadlib.launchpad import Launchpad
from lazr.restfulclient.errors import CredentialsFileError, HTTPError

from etl.core.errors import ConfigError, QueryError, SourceError, SourceUnavailable, shown
from etl.core.settings import Settings
from etl.kit.answers import retry_after, transient
from etl.kit.retry import retrying as kit_retrying
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


@contextlib.contextmanager
def refusals(what: str) -> Iterator[None]:
    """Turn Launchpad's refusals of `what` into `SourceError` (permanent) or `SourceUnavailable` (for now)."""
    try:
        yield
    except HTTPError as exc:
        status = exc.response.status
        if transient(status):
            raise SourceUnavailable(f"Launchpad could not answer {what} (HTTP {status} {exc.response.reason})",
                                    status=status, retry_after_s=retry_after(exc.response.get("retry-after"))
                                    ) from exc
        body = shown(exc.content.decode("utf-8", "replace") if isinstance(exc.content, bytes) else str(exc.content),
                     300)
        hint = {401: "the credentials in LP_CREDENTIALS_FILE were refused; make new ones",
                403: "the credentials do not allow it (private data needs LP_CREDENTIALS_FILE)",
                404: "it does not exist (or is private); check service_root and api_version"}.get(status, body)
        raise SourceError(f"Launchpad refused {what} (HTTP {status}): {hint}", status=status) from None
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
# the next extract call (a resumed or chunked flow, a retry), each used by one thread at a time.
_IDLE: list[tuple[tuple, Launchpad]] = []
_IDLE_LOCK = threading.Lock()
MAX_IDLE = 2


def _take(key: tuple) -> Launchpad | None:
    with _IDLE_LOCK:
        for k, (idle_key, lp) in enumerate(_IDLE):
            if idle_key == key:
                del _IDLE[k]
                return lp
    return None


def _give_back(key: tuple, lp: Launchpad) -> None:
    with _IDLE_LOCK:
        _IDLE.append((key, lp))
        del _IDLE[:-MAX_IDLE]


def login(query: LaunchpadQuery, settings: Settings) -> Launchpad:
    """A Launchpad client for the query's service root and version, with the worker's credentials."""
    root, version, app, _, _, timeout = _login_key(query, settings)
    lp_settings = settings.source(LaunchpadSettings)
    home = Path(lp_settings.cache_dir or settings.state_dir / "launchpadlib")
    with refusals(f"the web service {root}{version}/"):
        if not lp_settings.credentials_file:
            return Launchpad.login_anonymously(app, service_root=root, launchpadlib_dir=str(home),
                                               timeout=timeout, version=version)
        try:
            credentials = Credentials.load_from_path(lp_settings.credentials_file)
        except (OSError, CredentialsFileError) as exc:
            raise ConfigError("LP_CREDENTIALS_FILE", lp_settings.credentials_file,
                              f"a readable launchpadlib credentials file ({exc})") from None
        cache = home / (root.split("://", 1)[-1].split("/", 1)[0].replace(":", "_")) / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        # No authorization engine: a worker cannot open a browser, so a bad token fails (401).
        return Launchpad(credentials, None, None, service_root=root, cache=str(cache), timeout=timeout,
                         version=version)


def person_named(lp: Launchpad, base: str, name: str):
    """The person or team called `name`, with the client's retries; `SourceError` when there is none."""
    def look_up():
        try:
            return lp.people[name]
        except KeyError:
            raise SourceError(f"Launchpad at {base} has no person or team named {name!r}: check the name "
                              "(the one in launchpad.net/~NAME, not the display name)", status=404) from None

    return retrying(look_up, f"the person {name!r}")


def when(value: Any) -> datetime | None:
    """A Launchpad time (ISO 8601 text or datetime) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def name_of(person_link: str | None) -> str | None:
    """`alice` from `.../~alice`: links are canonical, so no request is needed to know who acted."""
    return person_link.rstrip("/").rsplit("/~", 1)[-1] if person_link else None


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
        self.lp = _take(self.key) or login(query, settings)

    def __enter__(self) -> Launchpad:
        return self.lp

    def __exit__(self, *exc: Any) -> None:
        _give_back(self.key, self.lp)


@dataclass
class PageView:
    entries: list[dict]
    start: int
    next: str | None


class Session:
    """One extract call's view of Launchpad: the member, the range, and counted requests."""

    def __init__(self, query: LaunchpadQuery, settings: Settings):
        self.query = query
        self._key = _login_key(query, settings)
        self.base = f"{self._key[0]}{self._key[1]}/"
        self.requests = 0
        self.lp = _take(self._key) or login(query, settings)
        self.start = datetime.combine(query.data_date_start, time(), timezone.utc)
        self.end = datetime.combine(query.data_date_end, time(), timezone.utc)
        try:
            self.member = self._member(query.member)
        except BaseException:
            self.close()
            raise
        self._zones: dict[str, str | None] = {query.member: self.member.time_zone}

    def close(self) -> None:
        """Hand the client back for the next extract call (an HTTP error leaves it usable)."""
        if self.lp is not None:
            _give_back(self._key, self.lp)
            self.lp = None

    def _member(self, name: str):
        self.requests += 1
        person = person_named(self.lp, self.base, name)
        if person.is_team:
            raise QueryError(self.query.name, "member", f"{name!r} is a team; run the flow for each of its "
                                                        "members (the launcher expands teams)")
        return person

    def zone(self, name: str) -> str | None:
        """The person's time zone, fetched once per person per session."""
        if name not in self._zones:
            self.requests += 1
            self._zones[name] = person_named(self.lp, self.base, name).time_zone
        return self._zones[name]

    def mine(self, person_link: str | None) -> bool:
        return name_of(person_link) == self.query.member

    def in_range(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    def relative(self, url: str) -> str:
        """`url` without the API base: cursors stay short."""
        return url[len(self.base):] if url.startswith(self.base) else url

    def _call(self, call: Callable[[], Any], what: str) -> Any:
        self.requests += 1
        return retrying(call, what)

    @staticmethod
    def _view(page: Any) -> PageView:
        return PageView(list(page.entries), int(page.start), getattr(page, "next_collection_link", None))

    def open(self, operation: Callable[[], Any], what: str) -> PageView:
        """The first page of a named operation's result."""
        return self._call(lambda: self._view(operation()), what)

    def page(self, url: str, what: str) -> PageView:
        """The collection page at `url` (absolute, or relative to the API base)."""
        return self._call(lambda: self._view(self.lp.load(url if "://" in url else self.base + url)), what)

    def load(self, url: str, what: str):
        """The entry at `url`, or None when it is gone or hidden since the search listed it."""
        try:
            return self._call(lambda: self.lp.load(url), what)
        except SourceError as exc:
            if exc.status in (403, 404, 410):
                return None
            raise

    def record(self, *, event_id: str, parent: Any, event_type: str, relation_type: str, actor: str,
               moment: datetime, event_properties: dict, relation_properties: dict, metrics: dict) -> dict:
        """A raw event record (etl.core.models) of `actor`'s act at `moment`."""
        return {"source_kind_id": "launchpad", "parent_item_id": str(parent), "event_id": event_id,
                "event_type": event_type, "relation_type": relation_type, "employee_id": actor,
                "event_time_utc": moment.isoformat(), "timezone": self.zone(actor),
                "event_properties": event_properties, "relation_properties": relation_properties,
                "metrics": metrics}
