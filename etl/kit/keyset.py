"""Resuming by key, for lists sorted by a field that changes while we read (an update time).

Paging such a list by page number loses items: one updated during the walk moves to the end,
everything behind it moves up a place, and the item at the next page boundary is never read
(nor by the next scheduled window, which starts after it). A `KeySet` instead remembers the
last key read, `(updated, ids read at that updated)`, and each request asks again from that
`updated` value (`since=`), skipping what it has read. An item updated during the walk is
read again at its new place (its events have the same ids, so it is loaded once); nothing is
skipped, and nothing loops.

    for item, cursor in keyset_walk(fetch, cursor, start="2024-03-01T00:00:00Z", source="GitHub"):
        ...   # `cursor` resumes right after `item`

`fetch(since, page)` returns the items updated at or after `since`, in ascending order of
`updated`, and whether more pages follow. Page numbers are used only while a whole page
shares one `updated` value (more ties than a page holds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from etl.core.errors import SourceError


@dataclass
class KeySet:
    since: str
    """The `updated` value to ask from (inclusive), as the API wrote it."""
    seen: set[str] = field(default_factory=set)
    """The ids already read whose `updated` is exactly `since`."""

    @property
    def cursor(self) -> str:
        return f"{self.since}#{','.join(sorted(self.seen))}"

    @classmethod
    def resume(cls, cursor: str | None, start: str, source: str = "the source") -> "KeySet":
        """The key set a cursor holds, or a fresh one from `start`."""
        if cursor is None:
            return cls(start)
        since, sep, ids = cursor.rpartition("#")
        if not sep or not since or "/" in since or any(not i.strip() for i in ids.split(",") if ids):
            raise SourceError(f"{cursor[:60]!r} is not a {source} cursor made by this source; restart the flow "
                              "without a cursor")
        return cls(since, set(ids.split(",")) if ids else set())

    def take(self, updated: str, key: str) -> bool:
        """Whether the item `(updated, key)` is new; if so, it becomes the last key read."""
        if updated < self.since or (updated == self.since and key in self.seen):
            return False
        if updated > self.since:
            self.since, self.seen = updated, set()
        self.seen.add(key)
        return True


def keyset_walk(fetch: Callable[[str, int], tuple[list, bool]], cursor: str | None, start: str, *,
                updated: str = "updated_at", key: str = "id", source: str = "the source") -> Iterator[tuple[Any, str]]:
    """Every item not read yet, each with the cursor that resumes after it."""
    keys = KeySet.resume(cursor, start, source)
    page = 1
    while True:
        asked = keys.since
        items, more = fetch(asked, page)
        for item in items:
            if keys.take(str(item[updated]), str(item[key])):
                yield item, keys.cursor
        if not more:
            return
        page = 1 if keys.since != asked else page + 1
