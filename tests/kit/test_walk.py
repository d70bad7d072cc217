"""The kit's resumable walk over lists and the collections under their entries (pure logic: the
pages come from dicts)."""

from __future__ import annotations

import json

import pytest

from etl.core.errors import SourceError
from etl.core.extract import REJECTED
from etl.kit.walk import Batch, Item, Listing, walk

# Two lists of items paged three at a time; item i has a collection of i % 4 notes, paged two at a time.
PAGES = {f"list{n}/{k}": Batch([{"key": f"i{n}-{j}", "n": j} for j in range(k, min(k + 3, 7 + n))], k,
                             f"list{n}/{k + 3}" if k + 3 < 7 + n else None) for n in (0, 1) for k in range(0, 10, 3)}
NOTES = {f"notes/{key}/{k}": Batch([{"at": k + m} for m in range(min(2, count - k))], k,
                                   f"notes/{key}/{k + 2}" if k + 2 < count else None)
         for n in (0, 1) for j in range(7 + n) for key, count in [(f"i{n}-{j}", j % 4)] for k in range(0, 4, 2)}


def listings(bad: set[str] = frozenset(), bad_note: str = "") -> list[Listing]:
    def item(entry: dict) -> Item:
        if entry["key"] in bad:
            raise KeyError("title")
        own = [{"event_id": entry["key"]}]
        return Item(own, [(f"notes/{entry['key']}/0", lambda note, index: {"event_id": f"{entry['key']}-n{index}"}
                           if f"{entry['key']}-n{index}" != bad_note else 1 / 0)] if entry["n"] % 4 else [])

    return [Listing(f"list{n}", lambda n=n: PAGES[f"list{n}/0"], lambda e: e["key"], item) for n in (0, 1)]


def read(ref: str, what: str) -> Batch:
    return PAGES.get(ref) or NOTES[ref]


def records(cursor: str | None = None, **options) -> tuple[list, list]:
    pages = list(walk(listings(**options), cursor, read, steps=1))
    return [r.get("event_id") or r[REJECTED] for p in pages for r in p.records], [p.cursor for p in pages]


def test_every_record_once_and_a_resume_from_every_cursor_yields_exactly_the_rest():
    everything, cursors = records()
    want = [f"i{n}-{j}" + s for n in (0, 1) for j in range(7 + n) for s in [""] + [f"-n{k}" for k in range(j % 4)]]
    assert everything == want
    assert len(cursors) > 10 and cursors[-1] is not None
    seen: list = []
    pages = list(walk(listings(), None, read, steps=1))
    for page in pages:
        seen += [r["event_id"] for r in page.records]
        rest, _ = records(page.cursor)
        assert seen + rest == want, page.cursor


def test_the_cursor_names_its_fields():
    _, cursors = records()
    assert set(json.loads(cursors[0])) == {"listing", "page", "entry", "collection", "collection_page", "last_key"}


def test_an_entry_whose_content_cannot_be_read_is_one_reject():
    got, _ = records(bad={"i0-2"})
    assert "i0-2" not in got and "i0-2-n0" not in got and "i0-3" in got
    assert got.count("the source could not map the record: KeyError: 'title'") == 1
    got, _ = records(bad_note="i1-3-n1")
    assert "i1-3-n0" in got and "i1-3-n2" in got and "i1-3-n1" not in got
    assert got.count("the source could not map the record: ZeroDivisionError: division by zero") == 1


@pytest.mark.parametrize("cursor", ['{"l": 0}', "[1]", '{"listing": "x"}', "not json"])
def test_a_foreign_cursor_is_refused(cursor):
    with pytest.raises(SourceError, match="is not a Acme cursor made by this source"):
        list(walk(listings(), cursor, read, source="Acme"))
