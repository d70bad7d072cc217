"""Running flows from tests: an in-process worker (batch and streaming) on the test's own task
queue, writing to the test's own events table, and a `run` that starts a flow through the same
launcher code as `scripts/run_flow.py` and waits for its summary. `run_both_ways` runs one flow
through ETLFlow and StreamingETLFlow, each into a table of its own, and gives back each table."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any, Callable

from psycopg2 import sql
from temporalio.client import Client

from etl.core.settings import Settings
from etl.launch.plan import plan_flow, start_flow
from etl.runtime.worker import build_worker
from etl.store.db import Database

WAYS = {"ETLFlow": False, "StreamingETLFlow": True}
"""Each workflow a flow runs through, and whether it is the streaming one."""

COLUMNS = ("event_id", "source_kind_id", "parent_item_id", "event_type", "relation_type", "employee_id",
           "event_time_utc", "week", "timezone", "event_time", "event_properties", "relation_properties", "metrics")


class FlowRunner:
    def __init__(self, client: Client, settings: Settings, task_queue: str, concurrency: int = 4):
        self.client = client
        self.settings = settings
        self.task_queue = task_queue
        self.worker = build_worker(client, settings, task_queue=task_queue, concurrency=concurrency,
                                   kinds=("batch", "streaming"))
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "FlowRunner":
        self._task = asyncio.create_task(self.worker.run())
        # Polling before the test goes on: a busy machine may not have run the task yet, and a
        # test that looks at the worker at once (its /healthz) would see it "not started".
        for _ in range(600):
            if self.worker.is_running or self._task.done():
                break
            await asyncio.sleep(0.05)
        if self._task.done():
            await self._task  # it failed to start: say why
        return self

    async def __aexit__(self, *exc) -> None:
        await self.worker.shutdown()
        if self._task:
            await self._task

    async def start(self, strategy: str, args: dict[str, Any], streaming: bool = False,
                    workflow_id: str | None = None, **input_fields: Any):
        plan = plan_flow(self.settings, strategy, args, streaming=streaming, task_queue=self.task_queue,
                         workflow_id=workflow_id or f"test-{strategy}-{uuid.uuid4().hex[:8]}", **input_fields)
        handle, _ = await start_flow(self.client, plan)
        return handle

    async def run(self, strategy: str, args: dict[str, Any], streaming: bool = False,
                  workflow_id: str | None = None, **input_fields: Any) -> dict[str, Any]:
        """Run one flow to completion; returns its summary as a dict."""
        handle = await self.start(strategy, args, streaming, workflow_id, **input_fields)
        return dataclasses.asdict(await handle.result())


@dataclasses.dataclass
class Table:
    """What one run of a flow loaded: its summary and the rows of its events table."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    """Every row, ordered by event_id, with the `events` columns (`COLUMNS`)."""
    rejects: int
    """Rows in the table's rejects table."""

    @property
    def event_ids(self) -> set[str]:
        return {row["event_id"] for row in self.rows}


def table_rows(db: Database) -> list[dict[str, Any]]:
    """Every row of `db`'s events table, ordered by event_id."""
    query = sql.SQL("SELECT {} FROM {} ORDER BY event_id").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), db.tables.events)
    return db.run(lambda cur: (cur.execute(query), [dict(zip(COLUMNS, row)) for row in cur.fetchall()])[1])


async def run_both_ways(client: Client, settings: Settings, strategy: str, args: dict[str, Any], *,
                        before: Callable[[str], None] | None = None, **input_fields: Any) -> dict[str, Table]:
    """Run `strategy` with `args` through ETLFlow, then StreamingETLFlow, each into a fresh events
    table (named after `settings.events_table`) on a task queue of its own; `before(way)` is called
    before each (to inject a fixture's faults, say). Returns {"ETLFlow": Table, "StreamingETLFlow": Table}."""
    tables = {}
    for way, streaming in WAYS.items():
        suffix = "b" if not streaming else "s"
        way_settings = settings.replace(events_table=f"{settings.events_table[:40]}_{suffix}{uuid.uuid4().hex[:6]}")
        db = Database.get(way_settings)
        db.ensure_schema()
        if before:
            before(way)
        async with FlowRunner(client, way_settings, f"tq-{uuid.uuid4().hex[:12]}") as runner:
            summary = await runner.run(strategy, args, streaming=streaming, **input_fields)
        tables[way] = Table(summary, table_rows(db), db.count_rejects())
    return tables
