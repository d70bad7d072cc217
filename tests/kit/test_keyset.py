"""KeySet: resuming by the last (updated, id) read. Pure logic, so plain lists stand in for the API."""

from __future__ import annotations

import pytest

from etl.core.errors import SourceError
from etl.kit import KeySet, keyset_walk


def api(items: list[dict], per_page: int, changes: dict[int, list[tuple[int, str]]] | None = None):
    """`fetch(since, page)` over `items`, sorted by (updated, id) like an API; after request n, the
    `changes[n]` (id, new updated) are applied, as people acting during the walk would."""
    calls = []

    def fetch(since: str, page: int):
        calls.append((since, page))
        listed = sorted((i for i in items if i["updated_at"] >= since), key=lambda i: (i["updated_at"], i["id"]))
        answer = [dict(i) for i in listed[(page - 1) * per_page: page * per_page]]
        for ident, updated in (changes or {}).get(len(calls), []):
            next(i for i in items if i["id"] == ident)["updated_at"] = updated
        return answer, page * per_page < len(listed)

    return fetch, calls


def make(n: int, ties: int = 1) -> list[dict]:
    return [{"id": i, "updated_at": f"2024-01-01T00:{i // ties:02d}:00Z"} for i in range(n)]


def test_items_updated_during_the_walk_are_neither_skipped_nor_looped():
    items = make(20)
    fetch, _ = api(items, per_page=5, changes={1: [(0, "2024-02-01T00:00:00Z"), (1, "2024-02-01T00:00:01Z")],
                                               3: [(9, "2024-02-01T00:00:02Z")]})
    read = [item["id"] for item, _ in keyset_walk(fetch, None, "2024-01-01T00:00:00Z")]
    assert sorted(set(read)) == list(range(20))
    assert read.count(0) == read.count(1) == read.count(9) == 2 and len(read) == 23, \
        "the items moved after they were read are read again, once"


def test_more_ties_than_a_page_holds_are_paged_through():
    fetch, calls = api(make(12, ties=12), per_page=5)
    read = [item["id"] for item, _ in keyset_walk(fetch, None, "2024-01-01T00:00:00Z")]
    assert read == list(range(12))
    assert [page for _, page in calls] == [1, 2, 3]


def test_a_resume_from_any_cursor_yields_exactly_the_rest():
    items = make(17, ties=3)
    fetch, _ = api(items, per_page=4)
    walked = list(keyset_walk(fetch, None, "2024-01-01T00:00:00Z"))
    for k, (_, cursor) in enumerate(walked):
        rest = [item["id"] for item, _ in keyset_walk(fetch, cursor, "2024-01-01T00:00:00Z")]
        assert rest == [item["id"] for item, _ in walked[k + 1:]]


@pytest.mark.parametrize("cursor", ["//evil.example/x", "no-hash", "#1", "2024-01-01T00:00:00Z#1,,2"])
def test_a_foreign_cursor_is_refused(cursor):
    with pytest.raises(SourceError, match="not a Acme cursor made by this source"):
        KeySet.resume(cursor, "2024-01-01", source="Acme")
