"""The custom search attributes every flow carries, so the UI and `temporal workflow list --query`
can filter on them, e.g. `temporal workflow list --query 'EtlSource="launchpad"'`."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ETL_SOURCE = SearchAttributeKey.for_keyword("EtlSource")
ETL_STRATEGY = SearchAttributeKey.for_keyword("EtlStrategy")
ETL_MEMBER = SearchAttributeKey.for_keyword("EtlMember")
ETL_FLOW_KIND = SearchAttributeKey.for_keyword("EtlFlowKind")
ETL_QUERY = SearchAttributeKey.for_text("EtlQuery")

ALL = (ETL_SOURCE, ETL_STRATEGY, ETL_MEMBER, ETL_FLOW_KIND, ETL_QUERY)


def cli_flags() -> list[str]:
    """`temporal server start-dev` flags that register every attribute."""
    flags: list[str] = []
    for key in ALL:
        kind = "Text" if key is ETL_QUERY else "Keyword"
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags
