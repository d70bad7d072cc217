"""The commands as a user runs them: exit codes, messages, and what they start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
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


@pytest.mark.parametrize("source, message", [
    ("github", "--source='github' is not valid: expected a source whose query names a member and a window, so that "
               "a team expands into members; 'github' queries do not. Sources that take --team: launchpad"),
    ("launchpd", "unknown source 'launchpd'; the known ones are: github, launchpad, "),
])
def test_run_queue_team_errors_name_the_source_the_user_gave(source, message):
    result = run(["scripts/run_queue.py", "--team", "core", "--source", source, "--from", "2024-01-01",
                  "--to", "2024-02-01"], NOWHERE, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr and "--strategies" not in result.stderr


def test_run_flow_list_shows_every_strategy_with_its_fields():
    result = run(["scripts/run_flow.py", "--list"], NOWHERE, timeout=30)
    assert result.returncode == 0
    line = next(l for l in result.stdout.splitlines() if l.startswith("synthetic-events"))
    assert "synthetic" in line and "[count=1000]" in line and "[bad_rate=0.0]" in line


@pytest.mark.parametrize("script", ["scripts/run_flow.py", "scripts/dev.py", "scripts/bench.py", "scripts/demo.py",
                                    "scripts/run_queue.py", "scripts/schedule.py", "scripts/archive.py",
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


def dev_ports(tmp_path: Path) -> dict[str, str]:
    """Settings for a `dev.py` stack of this test's own, on free ports, with its state under `tmp_path`."""
    tmp_path.chmod(0o755)
    return {"TEMPORAL_HOST": f"127.0.0.1:{free_port()}", "TEMPORAL_UI_PORT": str(free_port()),
            "DB_PORT": str(free_port()), "ETL_STATE_DIR": str(tmp_path / "state")}


def test_dev_stack_up_status_down(tmp_path):
    ports = dev_ports(tmp_path)
    try:
        up = run(["scripts/dev.py", "up"], ports)
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}" in up.stdout
        assert f"export TEMPORAL_ADDRESS={ports['TEMPORAL_HOST']}\n" in up.stdout  # for the `temporal` CLI
        status = json.loads(run(["scripts/dev.py", "status", "--json"], ports).stdout)
        assert status["temporal_ok"] and status["postgres_ok"]
        assert status["temporal_ours"] and status["postgres_ours"]
        assert status["temporal"]["pid"] == int((tmp_path / "state" / "temporal.pid").read_text())
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


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pid: int) -> bool:
    """Wait until `pid` has exited (it is not our child, so poll rather than wait())."""
    for _ in range(600):
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_dev_up_workers_after_a_worker_died_keeps_every_live_worker_tracked(tmp_path):
    env = dev_ports(tmp_path)
    workers = tmp_path / "state" / "workers"
    started: set[int] = set()
    try:
        up = run(["scripts/dev.py", "up", "--workers", "2"], env)
        assert up.returncode == 0, up.stderr
        first = {f.stem: int(f.read_text()) for f in workers.glob("*.pid")}
        assert sorted(first) == ["etl_worker-0", "etl_worker-1", "streaming_worker-0", "streaming_worker-1"]
        started |= set(first.values())

        os.kill(first["etl_worker-0"], signal.SIGKILL)  # one worker dies
        assert _gone(first["etl_worker-0"])
        with open(workers / "etl_worker-0.log", "a") as log:
            log.write("last words of the dead worker\n")
        status = json.loads(run(["scripts/dev.py", "status", "--json"], env).stdout)
        assert status["workers"] == 3

        again = run(["scripts/dev.py", "up", "--workers", "2"], env)
        assert again.returncode == 0, again.stderr
        now = {f.stem: int(f.read_text()) for f in workers.glob("*.pid")}
        started |= set(now.values())
        # The live workers keep their numbers and pid files; the new one takes the dead one's number.
        assert {k: now[k] for k in ("etl_worker-1", "streaming_worker-0", "streaming_worker-1")} == \
            {k: first[k] for k in ("etl_worker-1", "streaming_worker-0", "streaming_worker-1")}
        assert now["etl_worker-0"] not in first.values() and _alive(now["etl_worker-0"])
        status = json.loads(run(["scripts/dev.py", "status", "--json"], env).stdout)
        assert status["workers"] == 4 and status["workers_by_kind"] == {"etl_worker": 2, "streaming_worker": 2}
        # The new worker writes a log of its own; the dead worker's is kept beside it.
        assert "last words" not in (workers / "etl_worker-0.log").read_text()
        assert "last words of the dead worker" in (workers / "etl_worker-0.log.1").read_text()
    finally:
        down = run(["scripts/dev.py", "down"], env)
    assert down.returncode == 0, down.stderr
    assert [pid for pid in started if not _gone(pid)] == []  # `down` stopped every worker it started


def test_dev_status_says_whose_servers_answer_on_its_ports(stack, tmp_path):
    """Another checkout's stack (here: the test session's) answers on the configured ports: both
    servers are reported the same way, answering but not ours, with the process that answers."""
    env = {"TEMPORAL_HOST": stack.temporal.address, "TEMPORAL_UI_PORT": str(free_port()), "DB_HOST": "127.0.0.1",
           "DB_PORT": str(stack.pg.port), "ETL_STATE_DIR": str(tmp_path / "state")}
    result = run(["scripts/dev.py", "status", "--json"], env, timeout=60)
    info = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert (info["temporal_ok"], info["postgres_ok"]) == (True, True)
    assert (info["temporal_ours"], info["postgres_ours"]) == (False, False)
    assert info["temporal"]["pid"] == stack.temporal.pid() and "start-dev" in info["temporal"]["process"]
    assert info["postgres"]["pid"] == stack.pg.pid() and "postgres" in info["postgres"]["process"]

    text = run(["scripts/dev.py", "status"], env, timeout=60).stdout
    assert text.count("NOT started from this state dir") == 2, text
    assert f"pid {stack.temporal.pid()}: " in text and f"pid {stack.pg.pid()}: " in text

    up = run(["scripts/dev.py", "up"], env, timeout=60)  # and `up` says whose port it is instead of starting
    assert up.returncode == 2
    assert f"port {stack.pg.port} for PostgreSQL is already taken by pid {stack.pg.pid()}" in up.stderr

    down = run(["scripts/dev.py", "down"], env, timeout=60)  # stops nothing of theirs, and says so
    assert down.returncode == 0 and down.stdout.count("was not started from here and still runs") == 2
    assert stack.temporal.running() and stack.pg.running()


def readme_section(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(heading + "\n")
    following = [text.find(f"\n{h} ", start + 1) for h in ("#", "##", "###", "####")]
    ends = [i for i in following if i != -1]
    return text[start:min(ends) if ends else len(text)]


def test_readme_gives_the_flow_file_format_with_an_example_that_plans(tmp_path):
    from etl.core.settings import Settings
    from etl.launch.flow_file import load_flow_file, plan_all

    section = readme_section("#### The flow file")
    example = "\n".join(line[4:] for line in section.splitlines() if line.startswith("    "))
    path = tmp_path / "flows.yaml"
    path.write_text(example)
    plans = plan_all(Settings(), load_flow_file(path), source=str(path))
    assert [p.input.extract_strategy for p in plans] == ["launchpad-bugs", "launchpad-questions", "synthetic-events"]
    assert [p.streaming for p in plans] == [False, True, False]


def test_readme_points_the_temporal_cli_where_the_fleet_is():
    """The `temporal` CLI reads TEMPORAL_ADDRESS, not TEMPORAL_HOST: every section with `temporal`
    commands says how to point it, and `dev.py up` prints the line (test_dev_stack_up_status_down)."""
    text = (ROOT / "README.md").read_text()
    first_command = min(text.index(f"    temporal {verb} ") for verb in ("workflow", "operator"))
    assert "export TEMPORAL_ADDRESS=" in text[:first_command]
    finding = readme_section("### Finding flows: the UI and `temporal workflow list`")
    assert "export TEMPORAL_ADDRESS=$TEMPORAL_HOST" in finding and "--address" in finding
