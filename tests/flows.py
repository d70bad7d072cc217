"""Running flows from tests: an in-process worker (batch and streaming) on the test's own task
queue, writing to the test's own events table, and a `run` that starts a flow through the same
launcher code as `scripts/run_flow.py` and waits for its summary."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

from temporalio.client import Client

from etl.core.settings import Settings
from etl.launch.plan import plan_flow, start_flow
from etl.runtime.worker import build_worker


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
