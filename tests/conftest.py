"""The suite's fixtures are `etl.testing`'s (etl/testing/plugin.py), the same a source package's
tests get: one real stack per test session, on free ports of its own, and per test its own events
table (and derived tables) and task queue. Imported here so the suite needs no installed plugin.

Fixtures:
    stack      the running servers (`.pg`, `.temporal`, `.settings`)
    settings   Settings for this test: the session's servers, a fresh EVENTS_TABLE
    db         Database for those settings
    client     a temporalio Client connected to the session's server
    task_queue a task queue name no other test uses
    run_flow   async (strategy, args, streaming=False, **input_fields) -> summary dict:
               runs one flow to completion on an in-process worker for this test's settings
    flow_runner     the FlowRunner itself
    flow_both_ways  the flow through ETLFlow and StreamingETLFlow, and each one's table
"""

from __future__ import annotations

from etl.testing.plugin import (  # noqa: F401 - fixtures, found by pytest by name
    client,
    db,
    flow_both_ways,
    flow_runner,
    run_flow,
    settings,
    stack,
    table_name,
    task_queue,
)
from etl.testing.stack import Stack  # noqa: F401 - tests annotate with it
