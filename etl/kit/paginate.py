"""Paginators: how a list is paged, and the cursor that resumes after each page.

A paginator says which request reads the page at a cursor (None: the first page) and, from
an answer, the cursor of the next page (None: that was the last). Cursors are short strings
that go into workflow history, so they hold a position, never a host or a secret:

    LinkHeader()                 `Link: <...>; rel="next"` (GitHub, GitLab): cursor = the next path
    NextLink("links.next")       a next-page URL in the body: cursor = the next path
    BodyCursor("next_cursor")    an opaque token in the body, sent back as `?cursor=`
    Offset(limit=100)            `?offset=&limit=`: cursor = the next offset
    PageNumber(size=100)         `?page=&per_page=`: cursor = the next page number
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterable, Iterator, Protocol, TypeVar

from etl.core.errors import SourceError

T = TypeVar("T")


class Client(Protocol):
    """What a paginator needs of the client that reads the pages (`SourceClient` is one)."""

    name: str

    def relative(self, url: str) -> str:
        """`url` as a path under the client's base URL; refused when it is not under it."""


class Paginator(Protocol):
    def request(self, client: Client, path: str, params: dict, cursor: str | None) -> tuple[str, dict]:
        """The path and parameters that read the page at `cursor`."""

    def next(self, client: Client, response: Any, body: Any, items: list, cursor: str | None) -> str | None:
        """The cursor of the page after this one, or None when this was the last."""


def pick(body: Any, path: str | None, source: str = "the API") -> list:
    """The list at dotted `path` in a JSON body (the body itself when `path` is None)."""
    found = body
    for part in path.split(".") if path else ():
        found = found.get(part) if isinstance(found, dict) else None
    if found is None:
        return []
    if not isinstance(found, list):
        raise SourceError(f"{source} answered with {type(found).__name__} at {path or 'the top'} where a list "
                          "was expected; check the paginator's `items` path")
    return found


def _number(cursor: str | None, default: int, source: str) -> int:
    if cursor is None:
        return default
    if not cursor.isdigit():
        raise SourceError(f"{cursor[:40]!r} is not a {source} cursor made by this source; restart the flow "
                          "without a cursor")
    return int(cursor)


@dataclass(frozen=True)
class LinkHeader:
    """Follows `Link: <url>; rel="next"`; the cursor is that URL's path under the base URL."""

    def request(self, client, path, params, cursor):
        return (cursor, {}) if cursor is not None else (path, params)

    def next(self, client, response, body, items, cursor):
        link = response.links.get("next", {}).get("url")
        return client.relative(link) if link else None


@dataclass(frozen=True)
class NextLink:
    """Follows a next-page URL found in the body at dotted `field` (absolute or a path)."""

    field: str = "next"

    def request(self, client, path, params, cursor):
        return (cursor, {}) if cursor is not None else (path, params)

    def next(self, client, response, body, items, cursor):
        link = _at(body, self.field)
        return client.relative(link) if isinstance(link, str) and link else None


@dataclass(frozen=True)
class BodyCursor:
    """Sends back the token found in the body at dotted `field` as the `param` query parameter."""

    field: str = "next_cursor"
    param: str = "cursor"

    def request(self, client, path, params, cursor):
        return path, ({**params, self.param: cursor} if cursor is not None else params)

    def next(self, client, response, body, items, cursor):
        token = _at(body, self.field)
        return str(token) if token not in (None, "") and items else None


@dataclass(frozen=True)
class Offset:
    """`offset` and `limit` parameters; the list ends at a short page (or at `total_field`, when given)."""

    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_field: str | None = None

    def request(self, client, path, params, cursor):
        return path, {**params, self.offset_param: _number(cursor, 0, client.name), self.limit_param: self.limit}

    def next(self, client, response, body, items, cursor):
        after = _number(cursor, 0, client.name) + len(items)
        total = _at(body, self.total_field) if self.total_field else None
        done = len(items) < self.limit if total is None else after >= int(total)
        return None if done or not items else str(after)


@dataclass(frozen=True)
class PageNumber:
    """`page` (from `first`) and `size_param` parameters; the list ends at a short page."""

    size: int = 100
    page_param: str = "page"
    size_param: str = "per_page"
    first: int = 1

    def request(self, client, path, params, cursor):
        return path, {**params, self.page_param: _number(cursor, self.first, client.name), self.size_param: self.size}

    def next(self, client, response, body, items, cursor):
        page = _number(cursor, self.first, client.name)
        return str(page + 1) if len(items) >= self.size else None


def _at(body: Any, path: str | None) -> Any:
    found = body
    for part in (path or "").split(".") if path else ():
        found = found.get(part) if isinstance(found, dict) else None
    return found


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last may be shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
