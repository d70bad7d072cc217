"""`walk`: the resumable walk over lists and the collections under each of their entries.

For APIs whose items hold collections of their own (a bug's messages, a proposal's comments):
a flow names its top-level lists (`Listing`), what an entry of them is (`Item`: its own
records, and the collections under it) and how one entry of a collection becomes records.
`walk` reads every list and every collection to its last page and yields the records with a
cursor after each piece of work that cost a request, at the latest every `steps` requests, so
a retry resumes close to where a failure struck. The cursor (`WalkCursor`) names its fields:

    {"listing": 0, "page": "<ref of that list's page; null: its first>", "entry": 3,
     "collection": 1, "collection_page": "<ref of that collection's next page; null: its first>",
     "last_key": "<key of the last entry read>"}

`read(ref, what)` reads the page at a ref (a path or URL the API gave) as a `Batch`; refs go into
workflow history, so keep them short (relative to the API's base). Each entry is mapped alone:
an exception from one entry's content makes it a reject (etl/kit/events.py), never a failure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterator

from etl.core.errors import SourceError
from etl.core.extract import Page
from etl.kit.events import attempt, one

STEPS = 3
"""Yield a cursor at least this often (in requests), even when the pages held no records."""

Handler = Callable[[Any, int], list]
"""(one entry of a collection, its index in the collection) -> records."""


@dataclass
class Batch:
    """One page of a list or collection: its entries, the index of the first, the next page's ref."""

    entries: list
    start: int = 0
    next: str | None = None


@dataclass
class Item:
    records: list = field(default_factory=list)
    """The entry's own records (a proposal's creation): emitted once."""
    collections: list[tuple[str, Handler]] = field(default_factory=list)
    """(ref of the collection's first page, what one of its entries yields)."""


@dataclass
class Listing:
    what: str
    """What the list is, for messages (`person.searchTasks`)."""
    first: Callable[[], Batch]
    """Reads the list's first page."""
    key: Callable[[Any], str]
    """An entry's identity: an entry with the same key as the one before it is skipped."""
    item: Callable[[Any], Item | None]
    """What the entry holds (None: nothing to read)."""


@dataclass
class WalkCursor:
    listing: int = 0
    page: str | None = None
    entry: int = 0
    collection: int = 0
    collection_page: str | None = None
    last_key: str | None = None

    @classmethod
    def parse(cls, text: str | None, source: str = "the source") -> "WalkCursor":
        if not text:
            return cls()
        try:
            found = json.loads(text)
            cursor = cls(**found)
            types = {"listing": int, "entry": int, "collection": int}
            if all(isinstance(getattr(cursor, f.name), types.get(f.name, (str, type(None)))) for f in fields(cls)):
                return cursor
        except (ValueError, TypeError):
            pass
        raise SourceError(f"{text[:60]!r} is not a {source} cursor made by this source; restart the flow "
                          "without a cursor")

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def walk(listings: list[Listing], cursor: str | None, read: Callable[[str, str], Batch], *, steps: int = STEPS,
         cost: Callable[[], int] | None = None, source: str = "the source") -> Iterator[Page]:
    """Every listing, every entry, every collection page, from `cursor` on. `cost()` counts the
    requests made so far (default: the reads of this walk), to yield a cursor every `steps`."""
    reads = [0]

    def counted(ref: str | None, what: str, listing: Listing) -> Batch:
        reads[0] += 1
        return read(ref, what) if ref else listing.first()

    spent = cost or (lambda: reads[0])
    at = WalkCursor.parse(cursor, source)
    pending: list = []
    since = spent()

    def flush(position: WalkCursor) -> Page | None:
        nonlocal pending, since
        if not pending and spent() - since < steps:
            return None
        page, pending, since = Page(pending, position.dump()), [], spent()
        return page

    for n in range(at.listing, len(listings)):
        listing, resuming = listings[n], n == at.listing
        ref = at.page if resuming else None
        first = at.entry if resuming else 0
        last_key = at.last_key if resuming else None
        while True:
            batch = counted(ref, listing.what, listing)
            for i in range(first, len(batch.entries)):
                # Mid-item: the entry's own records and part of its collections were yielded before.
                entry = batch.entries[i]
                mid = resuming and ref == at.page and i == at.entry and bool(at.collection or at.collection_page)
                key = listing.key(entry)
                item, bad = (None, []) if key == last_key and not mid else attempt(entry, listing.item)
                pending += bad
                last_key = key
                if item is not None:
                    if not mid:
                        pending += item.records
                    for s in range(at.collection if mid else 0, len(item.collections)):
                        sub, handle = item.collections[s]
                        sub_ref = at.collection_page if mid and s == at.collection and at.collection_page else sub
                        while sub_ref:
                            got = counted(sub_ref, f"{listing.what}: {sub}", listing)
                            for k, sub_entry in enumerate(got.entries):
                                pending += one(sub_entry, lambda e: handle(e, got.start + k))
                            sub_ref = got.next
                            here = WalkCursor(n, ref, i, s, sub_ref, key) if sub_ref else \
                                WalkCursor(n, ref, i, s + 1, None, key)
                            if page := flush(here):
                                yield page
                if i + 1 < len(batch.entries):
                    after = WalkCursor(n, ref, i + 1, 0, None, key)
                elif batch.next:
                    after = WalkCursor(n, batch.next, 0, 0, None, key)
                else:
                    after = WalkCursor(n + 1)
                if page := flush(after):
                    yield page
            if batch.next is None:
                break
            ref, first, resuming = batch.next, 0, False
    if pending:
        yield Page(pending, WalkCursor(len(listings)).dump())
