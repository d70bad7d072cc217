"""One flow per member of a group (a team) and per strategy, in any source's own terms.

The source says how: its query type names the member field and the window fields, and expands
a group into members (`Query.expand_group`). Runs in the launcher, never in a workflow.
"""

from __future__ import annotations

from typing import Any

from etl.core.errors import ConfigError, UnknownNameError
from etl.core.extract import ExtractStrategy
from etl.core.query import Query, QueryFactory
from etl.launch.flow_file import FlowSpec


def team_sources() -> list[str]:
    """The sources whose query names a member and a window: those that take `--team`."""
    return sorted({s.query_type for s in ExtractStrategy.all() if _takes_teams(QueryFactory.get(s.query_type))})


def _takes_teams(qcls: type[Query]) -> bool:
    return bool(qcls.member_field and qcls.window_fields)


def source_strategies(source: str) -> list[str]:
    """Every strategy of `source`; `UnknownNameError` lists the known sources."""
    strategies = [s.name for s in ExtractStrategy.all() if s.query_type == source]
    if not strategies:
        raise UnknownNameError("source", source, {s.query_type for s in ExtractStrategy.all()})
    return strategies


def group_query_type(strategies: list[str], flag: str = "--strategies", given: str | None = None) -> type[Query]:
    """The one query type the strategies share; it must name a member and a window. `flag` and
    `given` are what the user wrote (`--source github`), so an error names that."""
    given = given if given is not None else ",".join(strategies)
    types = {ExtractStrategy.create(s).query_type for s in strategies}
    if len(types) != 1:
        raise ConfigError(flag, given, "strategies of one source (they take "
                          f"{', '.join(sorted(types))} queries)")
    qcls = QueryFactory.get(types.pop())
    if not _takes_teams(qcls):
        raise ConfigError(flag, given, f"a source whose query names a member and a window, so that a team expands "
                          f"into members; {qcls.name!r} queries do not. Sources that take --team: "
                          f"{', '.join(team_sources()) or '(none)'}")
    return qcls


def team_flow_specs(qcls: type[Query], members: list[str], strategies: list[str], date_from: str, date_to: str,
                    extra: dict[str, Any] | None = None) -> list[FlowSpec]:
    """One flow per member x strategy over [date_from, date_to), with `extra` arguments for all."""
    start, end = qcls.window_fields  # type: ignore[misc]
    return [FlowSpec(strategy, {**(extra or {}), qcls.member_field: member, start: date_from, end: date_to})
            for member in members for strategy in strategies]
