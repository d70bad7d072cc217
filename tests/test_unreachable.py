"""Every command that holds a Temporal client, with Temporal stopped: one line naming the address and
what to do, status 1, never a traceback or a crash on the way out (the SDK's threads once made
`deploy.py status` end with SIGSEGV or SIGABRT about one run in four).

`ETL_TEST_UNREACHABLE_RUNS` sets the runs of each command (default 2; the issue's check used 20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from temporalio.service import RPCError, RPCStatusCode

from etl.core.errors import TemporalUnreachable
from etl.devstack.servers import free_port
from etl.runtime.client import unreachable
from tests.workers import ROOT

RUNS = int(os.environ.get("ETL_TEST_UNREACHABLE_RUNS", "2"))

COMMANDS = {
    "deploy status": ["scripts/deploy.py", "status"],
    "deploy rollout": ["scripts/deploy.py", "rollout", "--build-id", "b-unreachable"],
    "run_flow": ["scripts/run_flow.py", "synthetic-events", "--arg", "count=1"],
    "run_queue": ["scripts/run_queue.py", "{flows}"],
    "schedule": ["scripts/schedule.py", "list"],
}


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_with_temporal_stopped_says_so_in_one_line(name, tmp_path):
    flows = tmp_path / "flows.json"
    flows.write_text(json.dumps([{"strategy": "synthetic-events", "args": {"count": 1}}]))
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = dict(os.environ, TEMPORAL_HOST=address, ETL_STATE_DIR=str(tmp_path / "state"))
    argv = [sys.executable, *(a.format(flows=flows) for a in COMMANDS[name])]
    for _ in range(RUNS):
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert (done.returncode, len(lines)) == (1, 1), (done.returncode, done.stderr[-3000:])
        assert lines[0].startswith(f"error: cannot reach Temporal at {address} ("), lines[0]
        assert lines[0].endswith("start it with `python scripts/dev.py up`, or set TEMPORAL_HOST to where it runs")


def test_a_server_that_goes_away_mid_command_is_the_same_one_line():
    from etl.core.settings import settings_from_env

    settings = settings_from_env({"TEMPORAL_HOST": "temporal.example:7233"})
    gone = unreachable(RPCError("transport error: connection reset", RPCStatusCode.UNAVAILABLE, b""), settings)
    assert isinstance(gone, TemporalUnreachable) and gone.code == (
        "error: Temporal at temporal.example:7233 went away (transport error: connection reset); start it with "
        "`python scripts/dev.py up`, or set TEMPORAL_HOST to where it runs, then run the command again")
    assert unreachable(RPCError("no such version", RPCStatusCode.NOT_FOUND, b""), settings) is None
