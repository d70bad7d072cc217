"""Planning and starting flows: what `run_flow.py`, `run_queue.py`, the demo and the tests share.

`plan_flow` validates everything before anything starts (unknown strategy, missing or
malformed argument) and derives a readable, deterministic workflow id: the same query
gives the same id, so launching twice while one runs attaches to it instead of doubling.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from etl.core.archive import as_of_time
from etl.core.env_values import task_queue_name
from etl.core.errors import ConfigError
from etl.core.extract import ExtractStrategy
from etl.core.query import Query, QueryFactory
from etl.core.settings import Settings
from etl.workflows import search_attributes as sa
from etl.workflows.flow_io import LOAD_MODES, ETLFlowInput, FlowSummary


@dataclass
class FlowPlan:
    """Everything needed to start one flow; nothing secret."""

    workflow_id: str
    streaming: bool
    task_queue: str
    input: ETLFlowInput
    query: Query = field(repr=False)

    @property
    def workflow_name(self) -> str:
        return "StreamingETLFlow" if self.streaming else "ETLFlow"

    def memo(self) -> dict[str, Any]:
        memo = {"query": self.query.to_summary_base(), "strategy": self.input.extract_strategy,
                "query_type": self.input.query_type}
        if self.input.replay:  # shown in the UI: this flow read the archive, not the source
            memo["replay"] = {"from": "source archive", "as_of": self.input.as_of or "newest"}
        elif self.input.archive:
            memo["archive"] = True
        return memo

    def summary(self) -> str:
        """The one line the UI shows for the flow."""
        replay = f" (replay from the archive{f' as of {self.input.as_of}' if self.input.as_of else ''})" \
            if self.input.replay else " (archived)" if self.input.archive else ""
        return f"{self.input.extract_strategy}{replay}: {self.memo()['query']}"

    def search_attributes(self) -> TypedSearchAttributes:
        summary = ", ".join(f"{k}={v}" for k, v in self.query.to_summary_base().items())
        pairs = [
            SearchAttributePair(sa.ETL_SOURCE, self.input.query_type),
            SearchAttributePair(sa.ETL_STRATEGY, self.input.extract_strategy),
            SearchAttributePair(sa.ETL_FLOW_KIND, "streaming" if self.streaming else "batch"),
            SearchAttributePair(sa.ETL_QUERY, summary[:2000]),
        ]
        member = self.query.member_name()
        if member:
            pairs.append(SearchAttributePair(sa.ETL_MEMBER, str(member)))
        return TypedSearchAttributes(pairs)


#: The largest value of a flow's numeric options (batch size, chunks in flight, ...).
MAX_INPUT_FIELD = 10_000_000


def flow_id(strategy: str, query: Query, streaming: bool, events_table: str = "events", replay: bool = False,
            as_of: str | None = None) -> str:
    """`<strategy>[-stream][-replay][-<member>]-<hash of the query and table>`: readable and deterministic.

    The events table is part of the hash, so two deployments that share a namespace but load
    different tables never mistake each other's flows for their own. A replay (and its `as_of`) is
    a flow of its own: it never attaches to the live flow of the same query."""
    canonical = json.dumps(query.to_dict(), sort_keys=True, default=str)
    replayed = f"|replay|{as_of or ''}" if replay else ""
    digest = hashlib.sha256(f"{strategy}|{events_table}|{canonical}{replayed}".encode()).hexdigest()[:10]
    parts = [strategy] + (["stream"] if streaming else []) + (["replay"] if replay else [])
    member = query.member_name()
    if member:
        parts.append(str(member))
    return "-".join(parts + [digest])


def plan_flow(settings: Settings, strategy: str, args: dict[str, Any], *, streaming: bool = False,
              task_queue: str | None = None, workflow_id: str | None = None, archive: bool = False,
              replay: bool = False, as_of: str | None = None, **input_fields: Any) -> FlowPlan:
    """Validate a flow and decide its id; raises UnknownNameError, QueryError or ConfigError before anything starts."""
    strat = ExtractStrategy.create(strategy)
    query = QueryFactory.create(strat.query_type, args)
    archive, replay, as_of = archive_options(archive, replay, as_of)
    inp = ETLFlowInput(query_type=strat.query_type, extract_strategy=strategy, args=query.to_dict(),
                       expected=query.expected_records(), archive=archive, replay=replay, as_of=as_of, **input_fields)
    queue = task_queue_name("--task-queue", task_queue or (
        settings.streaming_task_queue if streaming else settings.task_queue))
    mode = input_fields.get("load_mode", "insert")
    if mode not in LOAD_MODES:
        raise ConfigError("--load-mode", mode, " or ".join(LOAD_MODES))
    for name, value in input_fields.items():  # batch_size, chunks_in_flight, ...: bounded like query fields
        if isinstance(value, bool) or (isinstance(value, int) and not 0 <= value <= MAX_INPUT_FIELD):
            raise ConfigError(f"--{name.replace('_', '-')}", value, f"a whole number from 0 to {MAX_INPUT_FIELD:,}")
    return FlowPlan(workflow_id or flow_id(strategy, query, streaming, settings.events_table, replay, as_of),
                    streaming, queue, inp, query)


def archive_options(archive: Any, replay: Any, as_of: Any) -> tuple[bool, bool, str | None]:
    """`--archive`, `--replay` and `--as-of`, checked together: (archive, replay, as_of in ISO 8601)."""
    for flag, value in (("--archive", archive), ("--replay", replay)):
        if not isinstance(value, bool):
            raise ConfigError(flag, value, "true or false")
    if archive and replay:
        raise ConfigError("--archive", archive, "not with --replay: a replay reads the archive and keeps nothing "
                                                "new; archive with one flow, replay with another")
    if as_of is not None and not replay:
        raise ConfigError("--as-of", as_of, "only with --replay (the archived answers a replay reads)")
    if as_of is not None and not isinstance(as_of, str):
        raise ConfigError("--as-of", as_of, "an ISO 8601 date or time, e.g. 2024-05-01")
    moment = as_of_time(as_of)
    return archive, replay, moment.isoformat() if moment else None


async def start_flow(client: Client, plan: FlowPlan) -> tuple[WorkflowHandle, bool]:
    """Start the flow; if one with the same id is running, attach to it. Returns (handle, started)."""
    try:
        handle = await client.start_workflow(
            plan.workflow_name,
            plan.input,
            id=plan.workflow_id,
            task_queue=plan.task_queue,
            memo=plan.memo(),
            search_attributes=plan.search_attributes(),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            static_summary=plan.summary(),
            result_type=FlowSummary,
        )
        return handle, True
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(plan.workflow_id, result_type=FlowSummary), False


def ui_link(settings: Settings, workflow_id: str) -> str:
    return f"{settings.ui_url}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"
