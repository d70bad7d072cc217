"""The custom search attributes every flow carries, so the UI and `temporal workflow list --query`
can filter on them, e.g. `temporal workflow list --query 'EtlSource="launchpad"'`."""

from __future__ import annotations

from typing import Iterable

from temporalio.common import SearchAttributeKey, SearchAttributePair

ETL_SOURCE = SearchAttributeKey.for_keyword("EtlSource")
ETL_STRATEGY = SearchAttributeKey.for_keyword("EtlStrategy")
ETL_MEMBER = SearchAttributeKey.for_keyword("EtlMember")
ETL_FLOW_KIND = SearchAttributeKey.for_keyword("EtlFlowKind")
ETL_QUERY = SearchAttributeKey.for_text("EtlQuery")

ALL = (ETL_SOURCE, ETL_STRATEGY, ETL_MEMBER, ETL_FLOW_KIND, ETL_QUERY)


def shared_by(flows: Iterable) -> list[SearchAttributePair]:
    """`EtlSource` and `EtlStrategy` of a workflow that runs `flows` (fan-out children, each with an
    `ETLFlowInput` as `.input`): each one the flows share. A keyword holds one value, so a fan-out
    over several sources or strategies carries neither of those; its memo lists its strategies."""
    inputs = [flow.input for flow in flows]
    pairs = []
    for key, values in ((ETL_SOURCE, {i.query_type for i in inputs}),
                        (ETL_STRATEGY, {i.extract_strategy for i in inputs})):
        if len(values) == 1:
            pairs.append(SearchAttributePair(key, values.pop()))
    return pairs


def cli_flags() -> list[str]:
    """`temporal server start-dev` flags that register every attribute."""
    flags: list[str] = []
    for key in ALL:
        kind = "Text" if key is ETL_QUERY else "Keyword"
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags
