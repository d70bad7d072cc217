"""One flow per member of a group (a team) and per strategy, in any source's own terms.

The source says how: its query type names the member field and the window fields, and expands
a group into members (`Query.expand_group`). Runs in the launcher, never in a workflow.
"""

from __future__ import annotations

from typing import Any

from etl.core.errors import ConfigError
from etl.core.extract import ExtractStrategy
from etl.core.query import Query, QueryFactory
from etl.launch.flow_file import FlowSpec


def group_query_type(strategies: list[str]) -> type[Query]:
    """The one query type the strategies share; it must name a member and a window."""
    types = {ExtractStrategy.create(s).query_type for s in strategies}
    if len(types) != 1:
        raise ConfigError("--strategies", ",".join(strategies), "strategies of one source (they take "
                          f"{', '.join(sorted(types))} queries)")
    qcls = QueryFactory.get(types.pop())
    if not qcls.member_field or not qcls.window_fields:
        raise ConfigError("--strategies", ",".join(strategies), f"strategies whose query names a member and a "
                          f"window; {qcls.name!r} queries do not")
    return qcls


def team_flow_specs(qcls: type[Query], members: list[str], strategies: list[str], date_from: str, date_to: str,
                    extra: dict[str, Any] | None = None) -> list[FlowSpec]:
    """One flow per member x strategy over [date_from, date_to), with `extra` arguments for all."""
    start, end = qcls.window_fields  # type: ignore[misc]
    return [FlowSpec(strategy, {**(extra or {}), qcls.member_field: member, start: date_from, end: date_to})
            for member in members for strategy in strategies]
