"""Test-only sources: the synthetic query's pages over records a test makes, registered for one
test under a name of its own."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from etl.core import extract
from etl.core.extract import Page
from sources.synthetic.flows import events as synthetic
from sources.synthetic.query import SyntheticQuery


@contextmanager
def made_up_source(name: str, records: Callable[[SyntheticQuery, Any, int], list[Any]]) -> Iterator[str]:
    """Register `name` (a `synthetic` query, split like the synthetic source) whose pages hold
    `records(query, settings, i)` for each index `i` of the query's range; unregistered after."""

    def pages(query: SyntheticQuery, cursor: str | None, settings) -> Iterator[Page]:
        end = query.start + query.count
        i = int(cursor) if cursor else query.start
        while i < end:
            stop = min(i + query.page_size, end)
            yield Page([r for j in range(i, stop) for r in records(query, settings, j)], cursor=str(stop))
            i = stop

    extract.extract_method(name, query_type="synthetic", split=synthetic.split)(pages)
    try:
        yield name
    finally:
        extract._STRATEGIES.pop(name, None)  # noqa: SLF001 - other tests must not see it
