"""The source archive's hook in a source's HTTP client: record each answer, or give it from the archive.

A flow's activity sets the archive in use around its read (`using(...)`); a client consults it for
every request through `through_archive`, so a source needs nothing of its own: the kit's
`SourceClient` does it in its transport (`etl.kit.archive_transport`), the Launchpad source in
launchpadlib's HTTP object.

    answer = through_archive("GET", url, accept, fetch, secrets=(token,))

- no archive in use: `fetch()`, as if this module did not exist;
- recording: `fetch()`, and its answer is kept (statuses in `KEPT` only: what a retry would
  change is not an answer);
- replaying: the archived answer; `fetch` is never called, so no connection is opened. A request
  the archive cannot answer raises `ArchiveMiss`, non-retryable, naming the request.

Secrets never reach the archive: a request is kept as its method, path and query (parameters named
like secrets masked, `etl.kit.answers.redact`) and the media type it asked for, never its headers;
an answer keeps only the headers in `KEPT_HEADERS`, and its body has every secret the client
knows masked. The archive itself (a table) is handed in by the activity (`etl.store.archive`):
the kit does not know where it is kept.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator
from urllib.parse import urlsplit

from etl.core.archive import Answer, Book, Request
from etl.core.errors import ArchiveMiss
from etl.kit.answers import redact

#: Answers worth keeping: what the source said for good. 5xx, 429 and the like were moments.
KEPT = frozenset({200, 203, 204, 404, 410})
#: The only answer headers kept: what a client reads to page and decode. Never cookies, never
#: rate-limit counters (a replay must not wait for a quota it does not spend).
KEPT_HEADERS = ("content-type", "link", "etag", "last-modified", "location", "content-location")
#: A request target longer than this is kept as a prefix and the hash of the whole.
MAX_TARGET = 1500


@dataclass
class InUse:
    """The archive an activity reads through: `replay` answers from `book`, else answers go into it."""

    book: Book
    replay: bool
    source: str
    strategy: str
    secrets: tuple[str, ...] = ()
    """Secrets of the worker's settings, masked in whatever is kept, whichever client read it."""
    answered: int = 0
    """Answers given from the archive."""
    kept: int = 0
    """Answers recorded into it."""
    missing_hint: str = ""
    """What the miss error says to do (which flow would archive the request)."""


_IN_USE: contextvars.ContextVar[InUse | None] = contextvars.ContextVar("etl_source_archive", default=None)


@contextlib.contextmanager
def using(in_use: InUse | None) -> Iterator[InUse | None]:
    """Every request a client makes in this block (in this thread) goes through `in_use` (None: none)."""
    token = _IN_USE.set(in_use)
    try:
        yield in_use
    finally:
        _IN_USE.reset(token)


def in_use() -> InUse | None:
    return _IN_USE.get()


def request_of(method: str, url: str, accept: str = "", secrets: Iterable[str | None] = ()) -> Request:
    """The archive's key of a request to `url`: the host dropped (a fixture's port, a moved API),
    secrets masked, a long target cut to a prefix and a hash."""
    parts = urlsplit(url)
    target = redact(parts.path + (f"?{parts.query}" if parts.query else ""), secrets)
    if len(target) > MAX_TARGET:
        target = f"{target[:MAX_TARGET - 80]}#sha256:{hashlib.sha256(target.encode()).hexdigest()}"
    return Request(method.upper(), target, (accept or "").split(";")[0].strip().lower())


def through_archive(method: str, url: str, accept: str, fetch: Callable[[], Answer],
                    secrets: Iterable[str | None] = ()) -> Answer:
    """The answer to a request: fetched (and kept, when recording), or given from the archive."""
    current = _IN_USE.get()
    if current is None:
        return fetch()
    secrets = tuple(s for s in (*secrets, *current.secrets) if s)
    request = request_of(method, url, accept, secrets)
    if current.replay:
        found = current.book.answer(request) if request.method == "GET" else None
        if found is None:
            raise ArchiveMiss(f"the archive holds no answer from {current.source} to {request}, so the replay of "
                              f"{current.strategy} stops here without asking the source"
                              + (f"; {current.missing_hint}" if current.missing_hint else ""), request=str(request))
        current.answered += 1
        return found
    answer = fetch()
    if request.method == "GET" and answer.status in KEPT:
        current.book.keep(request, cleaned(answer, secrets))
        current.kept += 1
    return answer


def cleaned(answer: Answer, secrets: Iterable[str]) -> Answer:
    """`answer` as it may be kept: the kept headers only, and no secret in the body."""
    headers = {k.lower(): redact(str(v), secrets) for k, v in answer.headers.items() if k.lower() in KEPT_HEADERS}
    body = answer.body
    for secret in sorted(secrets, key=len, reverse=True):
        raw = secret.encode()
        if raw in body:
            body = body.replace(raw, b"***")
    return Answer(answer.status, headers, body)
