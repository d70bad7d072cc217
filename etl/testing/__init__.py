"""Testing a source, in this project or in a package of its own: the supported helpers.

Installed with the fleet and loaded by pytest as a plugin (the `pytest11` entry point `etl`,
module `plugin.py`), so a source package's tests get these fixtures with no conftest of their own:

    stack        one private Temporal dev server and PostgreSQL for the test session
    table_name   a fresh events table name for this test
    settings     Settings for this test: the session's servers, that table
    db           Database for those settings, its schema created
    task_queue   a task queue no other test uses
    client       a temporalio Client connected to the session's server
    run_flow     async (strategy, args, streaming=False, **input_fields) -> summary dict, on an
                 in-process worker (batch and streaming) for this test's settings
    flow_runner  the FlowRunner itself (`.start`, `.run`)
    flow_both_ways  async (strategy, args, before=None, **input_fields) -> {"ETLFlow": Table,
                 "StreamingETLFlow": Table}: the flow run through each workflow into a table of
                 its own, and what each table holds

The modules, each one idea:

    stack.py     the private stack (`Stack`, `private_test_stack`)
    flows.py     `FlowRunner`, `Table` and `run_both_ways`
    workers.py   real worker processes (`WorkerProcess`) and the environment that gives them settings
    history.py   a flow's history as text with every payload decoded; `assert_no_secret`
    fixture.py   the kit's fixture server, for a source's offline API (`FixtureServer`, `Listing`)
    plugin.py    the pytest fixtures above

A source imports `etl.core` and `etl.kit`; its tests may also import `etl.testing` (the import
contracts in pyproject.toml say so for the sources of this tree).
"""
