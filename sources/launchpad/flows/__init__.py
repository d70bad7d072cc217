"""The walk every Launchpad flow shares: top-level lists, then each item's collections, resumably.

A flow names its top-level lists (named operations on the member, such as
`searchTasks`), what an entry of them is (`Item`: its own events, and the collections
under it, such as a bug's messages and activity), and how a page of each collection
becomes events. `walk` reads every list and every collection to its last page and
yields records with a cursor after each piece of work that cost a request, at the
latest every `STEPS` requests, so a retry resumes close to where a failure struck:

    {"l": list, "p": page URL of that list (null: its first page), "i": entry in the page,
     "s": collection of that entry, "u": next page URL of that collection (null: its first), "k": last key}

URLs are relative to the API base and come from Launchpad's own `next_collection_link`,
so a resumed walk reads exactly the pages it had not finished.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from etl.core.extract import Page
from sources.launchpad.client import Session

#: Yield a cursor at least this often (in requests), even when the pages held no events of the member.
STEPS = 3

Handler = Callable[[list[dict], int], list[dict]]
"""(entries of one page, index of the first entry in the collection) -> records."""


@dataclass
class Item:
    records: list[dict] = field(default_factory=list)
    """The entry's own events (a proposal's creation, a question's): emitted once."""
    collections: list[tuple[str, Handler]] = field(default_factory=list)
    """(URL of the collection, what one of its pages yields)."""


@dataclass
class Listing:
    what: str
    open: Callable[[], object]
    """Calls the named operation: its result is the list's first page."""
    key: Callable[[dict], str]
    """An entry's identity: an entry with the same key as the one before it is skipped."""
    item: Callable[[dict], Item | None]
    """What the entry holds (None: nothing for this member)."""


@dataclass
class Cursor:
    l: int = 0  # noqa: E741 (short keys keep cursors small in workflow history)
    p: str | None = None
    i: int = 0
    s: int = 0
    u: str | None = None
    k: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> "Cursor":
        return cls(**json.loads(text)) if text else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def walk(session: Session, listings: list[Listing], cursor: str | None) -> Iterator[Page]:
    """Every listing, every entry, every collection page, from `cursor` on; closes `session` at the end."""
    try:
        yield from _walk(session, listings, cursor)
    finally:
        session.close()


def _walk(session: Session, listings: list[Listing], cursor: str | None) -> Iterator[Page]:
    at = Cursor.parse(cursor)
    pending: list[dict] = []
    since = session.requests

    def flush(position: Cursor) -> Page | None:
        nonlocal pending, since
        if not pending and session.requests - since < STEPS:
            return None
        page, pending, since = Page(pending, position.dump()), [], session.requests
        return page

    for l in range(at.l, len(listings)):
        listing, resuming = listings[l], l == at.l
        url = at.p if resuming else None
        first = at.i if resuming else 0
        last_key = at.k if resuming else None
        while True:
            view = session.page(url, listing.what) if url else session.open(listing.open, listing.what)
            following = session.relative(view.next) if view.next else None
            for i in range(first, len(view.entries)):
                # Mid-item: the entry's own events and part of its collections were yielded before.
                entry, mid = view.entries[i], resuming and url == at.p and i == at.i and bool(at.s or at.u)
                key = session.relative(listing.key(entry))
                item = None if key == last_key and not mid else listing.item(entry)
                last_key = key
                if item is not None:
                    if not mid:
                        pending += item.records
                    for s in range(at.s if mid else 0, len(item.collections)):
                        sub, handle = item.collections[s]
                        sub_url: str | None = at.u if mid and s == at.s and at.u else sub
                        while sub_url:
                            got = session.page(sub_url, f"{listing.what}: {session.relative(sub)}")
                            pending += handle(got.entries, got.start)
                            sub_url = session.relative(got.next) if got.next else None
                            here = Cursor(l, url, i, s, sub_url, key) if sub_url else \
                                Cursor(l, url, i, s + 1, None, key)
                            if page := flush(here):
                                yield page
                if i + 1 < len(view.entries):
                    after = Cursor(l, url, i + 1, 0, None, key)
                elif following:
                    after = Cursor(l, following, 0, 0, None, key)
                else:
                    after = Cursor(l + 1)
                if page := flush(after):
                    yield page
            if following is None:
                break
            url, first, resuming = following, 0, False
    if pending:
        yield Page(pending, Cursor(len(listings)).dump())
