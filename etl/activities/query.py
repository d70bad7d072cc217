"""What both flows' activities do with a flow's input: check its query and load mode, and split
the query into parts."""

from __future__ import annotations

from typing import Any

from etl.core.errors import ConfigError, QueryError
from etl.core.extract import ExtractStrategy
from etl.core.query import Query, QueryFactory
from etl.workflows.flow_io import LOAD_MODES, SplitInput, SplitResult


def resolve(query_type: str, strategy_name: str, args: dict[str, Any]) -> tuple[Query, ExtractStrategy]:
    """The validated query and the strategy, checked to belong together."""
    strategy = ExtractStrategy.create(strategy_name)
    if strategy.query_type != query_type:
        raise QueryError(query_type, None, f"strategy {strategy_name!r} takes a {strategy.query_type!r} query, "
                                           f"not {query_type!r}")
    return QueryFactory.create(query_type, args), strategy


def split(inp: SplitInput) -> SplitResult:
    """The query's disjoint parts (up to `inp.parts`) as the source splits it; the query itself when
    it cannot. Every part is validated before anything runs."""
    query, strategy = resolve(inp.query_type, inp.strategy, inp.args)
    if strategy.split is None or inp.parts <= 1:
        return SplitResult([query.to_dict()])
    parts = strategy.split(query, inp.parts)
    for args in parts:
        QueryFactory.create(inp.query_type, args)
    return SplitResult(parts)


def check_load_mode(mode: str) -> str:
    """`mode` if it is a load mode; `ConfigError` (no retry fixes it) names the known ones."""
    if mode not in LOAD_MODES:
        raise ConfigError("load_mode", mode, " or ".join(LOAD_MODES))
    return mode
