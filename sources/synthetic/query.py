"""The `synthetic` query: how many events, from which seed, with what share of bad records."""

from __future__ import annotations

from dataclasses import dataclass

from etl.core.errors import QueryError
from etl.core.query import Query, query_type


@query_type("synthetic")
@dataclass(frozen=True)
class SyntheticQuery(Query):
    count: int = 1000
    """How many records to produce."""
    seed: int = 0
    """Different seeds give disjoint event ids."""
    bad_rate: float = 0.0
    """Share of records (0 to 1) that are malformed on purpose."""
    page_size: int = 1000
    start: int = 0
    """Index of the first record: sub-queries of a split cover disjoint ranges."""
    hostile_rate: float = 0.0
    """Share of records (0 to 1) replaced by hostile values: huge integers, deep nesting, a key that
    is no text, a record that is no object, NUL and lone surrogates in text."""
    page_pause_s: float = 0.0
    """Seconds to wait before each page: paces a run like a slow API (fault tests use it so a kill
    lands mid-run whatever the machine's speed). 0 to 10."""

    summary_fields = ("count", "seed", "bad_rate")

    def expected_records(self) -> int:
        return self.count

    def validate(self) -> None:
        if self.count < 0:
            raise QueryError(self.name, "count", f"{self.count} is negative; give 0 or more")
        if not 0.0 <= self.bad_rate <= 1.0:
            raise QueryError(self.name, "bad_rate", f"{self.bad_rate} is outside 0..1")
        if not 0.0 <= self.hostile_rate <= 1.0:
            raise QueryError(self.name, "hostile_rate", f"{self.hostile_rate} is outside 0..1")
        if self.page_size < 1:
            raise QueryError(self.name, "page_size", f"{self.page_size} must be at least 1")
        if self.start < 0:
            raise QueryError(self.name, "start", f"{self.start} is negative")
        if not 0.0 <= self.page_pause_s <= 10.0:
            raise QueryError(self.name, "page_pause_s", f"{self.page_pause_s} is outside 0..10 seconds")
