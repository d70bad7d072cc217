"""The pytest fixtures of `etl.testing` (see its docstring), loaded through the `pytest11` entry
point wherever the fleet is installed. Each test gets its own events table and task queue, so
tests cannot leak into each other; the servers are started once per session, on first use.

Importing this module starts nothing: a test session that uses none of the fixtures costs nothing.
"""

from __future__ import annotations

import uuid

import pytest

try:
    import pytest_asyncio
except ImportError:  # the fleet without its `dev` extra: pytest must still start for other projects' tests
    pytest_asyncio = None


@pytest.fixture(scope="session")
def stack():
    from etl.testing.stack import private_test_stack

    with private_test_stack() as running:
        yield running


@pytest.fixture
def table_name() -> str:
    return f"ev_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(stack, table_name: str):
    return stack.settings.replace(events_table=table_name)


@pytest.fixture
def db(settings):
    from etl.store.db import Database

    database = Database.get(settings)
    database.ensure_schema()
    return database


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


if pytest_asyncio is not None:  # the async fixtures (pip install 'temporal-etl-fleet[dev]')
    @pytest_asyncio.fixture(loop_scope="session", scope="session")
    async def client(stack):
        from etl.runtime.client import connect

        return await connect(stack.settings)

    @pytest_asyncio.fixture(loop_scope="session")
    async def flow_runner(client, settings, task_queue: str):
        """The FlowRunner itself, for tests that start flows and watch them (`.start`, `.run`)."""
        from etl.testing.flows import FlowRunner

        async with FlowRunner(client, settings, task_queue) as runner:
            yield runner

    @pytest_asyncio.fixture(loop_scope="session")
    async def run_flow(flow_runner):
        """async (strategy, args, streaming=False, **input_fields) -> the flow's summary as a dict."""
        yield flow_runner.run

    @pytest_asyncio.fixture(loop_scope="session")
    async def flow_both_ways(client, settings):
        """async (strategy, args, before=None, **input_fields) -> {"ETLFlow": Table, "StreamingETLFlow":
        Table}: `etl.testing.flows.run_both_ways` with this test's settings."""
        from etl.testing.flows import run_both_ways

        async def run(strategy: str, args: dict, **options):
            return await run_both_ways(client, settings, strategy, args, **options)

        yield run
