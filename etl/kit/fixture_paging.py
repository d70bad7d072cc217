"""How the fixture server pages a `Listing`, in the style and with the names of the API it plays.

Styles, matching the kit's paginators:

    link     `page`/`per_page`, a `Link` header (GitHub)           LinkHeader()
    next     the same, with a `next` URL in the body               NextLink()
    cursor   `cursor`/`limit`, `next_cursor` in the body           BodyCursor()
    offset   `offset`/`limit`, `total` in the body                 Offset(total_field="total")
    page     `page`/`per_page`, nothing else                       PageNumber()

`params` renames the parameters (`{"offset": "start", "limit": "count"}`); `links=True` adds
`Link` headers to any style (offset and limit over `Link`, say); `items_field=None` answers
the bare list; `total_header` (`X-Total-Count`) sends the list's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

PAGING = ("link", "next", "cursor", "offset", "page")
NAMES = ("page", "per_page", "offset", "limit", "cursor")


@dataclass
class Listing:
    """A list for the fixture to page; links point at `link_path` (default: the path asked)."""

    items: list
    link_path: str | None = None


class Pager:
    def __init__(self, style: str = "link", max_per_page: int = 100, default_per_page: int = 30,
                 items_field: str | None = "data", params: dict[str, str] | None = None,
                 links: bool | None = None, total_header: str | None = None):
        if style not in PAGING:
            raise ValueError(f"paging={style!r}: choose one of {', '.join(PAGING)}")
        unknown = sorted(set(params or {}) - set(NAMES))
        if unknown:
            raise ValueError(f"params: {unknown[0]!r} is not a paging parameter; rename any of {', '.join(NAMES)}")
        self.style, self.max_per_page, self.default_per_page = style, max_per_page, default_per_page
        self.items_field, self.total_header = items_field, total_header
        self.names = {**{n: n for n in NAMES}, **(params or {})}
        self.links = style == "link" if links is None else links

    def page(self, listing: Listing, url: str, params: dict[str, str], headers: dict[str, str]) -> Any:
        """The body of the page `params` ask for (at `url`, for links), adding its headers to `headers`."""
        items, style, name = listing.items, self.style, self.names
        by_offset = style in ("cursor", "offset")
        size_param = name["limit"] if by_offset else name["per_page"]
        size = min(_int(params.get(size_param), self.default_per_page), 100, self.max_per_page)
        if style == "cursor":
            start = _int(params.get(name["cursor"], "c0")[1:], 0, minimum=0)
        elif style == "offset":
            start = _int(params.get(name["offset"]), 0, minimum=0)
        else:
            start = (_int(params.get(name["page"]), 1) - 1) * size
        chunk, after = items[start:start + size], start + size
        more = after < len(items)
        if self.total_header:
            headers[self.total_header] = str(len(items))

        def link(position: int) -> str:
            at = {name["offset"]: position} if style == "offset" else \
                {name["cursor"]: f"c{position}"} if style == "cursor" else {name["page"]: position // size + 1}
            return f"{url}?" + urlencode({**params, size_param: size, **at})

        if self.links:
            last = max(0, (len(items) - 1) // size * size)
            rels = [("prev", max(0, start - size), start > 0), ("next", after, more), ("last", last, more),
                    ("first", 0, start > 0)]
            if any(ok for *_, ok in rels):
                headers["Link"] = ", ".join(f'<{link(n)}>; rel="{rel}"' for rel, n, ok in rels if ok)
        if self.items_field is None or style == "link":
            return chunk
        extra = {"cursor": {"next_cursor": f"c{after}" if more else None}, "offset": {"total": len(items)},
                 "next": {"next": link(after) if more else None}}.get(style, {})
        return {self.items_field: chunk, **extra}


def _int(value: str | None, default: int, minimum: int = 1) -> int:
    # APIs ignore a page or size they cannot read, and so does the fixture.
    try:
        return max(minimum, int(value)) if value else default
    except ValueError:
        return default
