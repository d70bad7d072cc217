"""The commands as a user runs them: exit codes, messages, and what they start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from etl.devstack.servers import free_port
from tests.flows import FlowRunner
from tests.workers import settings_env

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=dict(os.environ, **(env or {})),
                          capture_output=True, text=True, timeout=timeout)


# Nothing listens here: a launcher that reached for Temporal before validating would hang or fail differently.
NOWHERE = {"TEMPORAL_HOST": f"127.0.0.1:{free_port()}"}


@pytest.mark.parametrize("args, message", [
    (["synthetic-nope"], "unknown extract strategy 'synthetic-nope'; the known ones are: "),
    (["synthetic-events", "--arg", "count=many"], "synthetic.count: 'many' is not a whole number"),
    (["synthetic-events", "--arg", "colour=red"], "synthetic.colour: unknown argument; synthetic takes: count"),
    (["synthetic-events", "--arg", "count"], "--arg='count' is not valid: expected key=value"),
    (["launchpad-bugs", "--arg", "data_date_start=2024-01-01", "--arg", "data_date_end=2024-02-01"],
     "launchpad.member: is required"),
    (["launchpad-bugs", "--arg", "member=alice", "--arg", "data_date_start=2024-13-01",
      "--arg", "data_date_end=2024-02-01"], "launchpad.data_date_start: '2024-13-01' is not a date as YYYY-MM-DD"),
])
def test_run_flow_refuses_bad_input_before_starting_anything(args, message):
    result = run(["scripts/run_flow.py", *args], NOWHERE, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr + result.stdout


def test_run_flow_list_shows_every_strategy_with_its_fields():
    result = run(["scripts/run_flow.py", "--list"], NOWHERE, timeout=30)
    assert result.returncode == 0
    line = next(l for l in result.stdout.splitlines() if l.startswith("synthetic-events"))
    assert "synthetic" in line and "[count=1000]" in line and "[bad_rate=0.0]" in line


@pytest.mark.parametrize("script", ["scripts/run_flow.py", "scripts/dev.py", "scripts/bench.py", "scripts/demo.py",
                                    "-m workers.etl_worker", "-m workers.streaming_worker"])
def test_every_command_has_help(script):
    result = run([*script.split(), "--help"], NOWHERE, timeout=30)
    assert result.returncode == 0 and "usage:" in result.stdout


async def test_run_flow_wait_json_prints_the_summary(client, settings, task_queue, db):
    async with FlowRunner(client, settings, task_queue):
        import asyncio

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "scripts/run_flow.py", "synthetic-events", "--arg", "count=3000", "--arg", "seed=51",
            "--arg", "bad_rate=0.01", "--task-queue", task_queue, "--wait", "--json",
            cwd=ROOT, env=dict(os.environ, **settings_env(settings)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["workflow_id"].startswith("synthetic-events-")
    assert result["summary"]["extracted"] == 3000
    assert result["summary"]["loaded"] == db.count_events() > 2900


def test_dev_stack_up_status_down(tmp_path):
    ports = {"TEMPORAL_HOST": f"127.0.0.1:{free_port()}", "TEMPORAL_UI_PORT": str(free_port()),
             "DB_PORT": str(free_port()), "ETL_STATE_DIR": str(tmp_path / "state")}
    tmp_path.chmod(0o755)
    try:
        up = run(["scripts/dev.py", "up"], ports)
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}" in up.stdout
        status = json.loads(run(["scripts/dev.py", "status", "--json"], ports).stdout)
        assert status["temporal_ok"] and status["postgres_ok"]
        assert status["database_url"] == f"postgresql://etl@127.0.0.1:{ports['DB_PORT']}/etl"
        pid = (tmp_path / "state" / "temporal.pid").read_text()

        again = run(["scripts/dev.py", "up"], ports)  # idempotent: reuses what runs
        assert again.returncode == 0 and (tmp_path / "state" / "temporal.pid").read_text() == pid

        psql = subprocess.run([str(Path(sys.executable).parent / "python"), "-c",
                               "import psycopg2,sys; c=psycopg2.connect(sys.argv[1]); print(c.server_version)",
                               status["database_url"]], capture_output=True, text=True)
        assert psql.returncode == 0 and int(psql.stdout) >= 180000
    finally:
        down = run(["scripts/dev.py", "down"], ports)
    assert down.returncode == 0
    after = json.loads(run(["scripts/dev.py", "status", "--json"], ports).stdout)
    assert not after["temporal_ok"] and not after["postgres_ok"]
    assert (tmp_path / "state" / "postgres" / "PG_VERSION").exists()  # the data stays


def test_dev_stack_names_a_taken_port_and_its_setting(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    tmp_path.chmod(0o755)
    try:
        env = {"TEMPORAL_HOST": f"127.0.0.1:{taken}", "TEMPORAL_UI_PORT": str(free_port()),
               "DB_PORT": str(free_port()), "ETL_STATE_DIR": str(tmp_path / "state")}
        result = run(["scripts/dev.py", "up"], env)
    finally:
        blocker.close()
        run(["scripts/dev.py", "down"], env)
    assert result.returncode == 2
    assert f"port {taken} for the Temporal server is already taken" in result.stderr
    assert "TEMPORAL_HOST" in result.stderr


def test_bad_setting_names_the_variable():
    result = run(["scripts/dev.py", "status"], {"DB_PORT": "fivefour"}, timeout=30)
    assert result.returncode == 2
    assert "DB_PORT='fivefour' is not valid: expected a whole number" in result.stderr
