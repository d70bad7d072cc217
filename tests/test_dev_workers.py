"""The dev stack's workers as an operator runs them: each with a `/healthz` of its own, scaled up
and down by `dev.py up --workers N`, restarted after a settings change, and found by the README's
stuck-flow checklist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request

from etl.core.settings import load_settings
from etl.devstack.local_workers import settings_fingerprint
from etl.devstack.servers import free_port, temporal_binary
from tests.test_cli import _gone, dev_ports, readme_section, run


def _status(env: dict) -> dict:
    return json.loads(run(["scripts/dev.py", "status", "--json"], env).stdout)


def test_each_dev_worker_serves_healthz_and_the_readme_checklist_finds_its_poller(tmp_path):
    # One HEALTH_PORT for every worker is what an operator tried: each worker must still get its own.
    env = dev_ports(tmp_path) | {"HEALTH_PORT": str(free_port())}
    try:
        up = run(["scripts/dev.py", "up", "--workers", "2"], env)
        assert up.returncode == 0, up.stderr
        workers = _status(env)["worker_list"]
        assert len(workers) == 4 and len({w["health_port"] for w in workers}) == 4
        for worker in workers:
            assert f"{worker['name']:20} pid {worker['pid']:<8} {worker['healthz']}" in up.stdout
            with urllib.request.urlopen(worker["healthz"], timeout=15) as response:
                assert response.read() == b"ok\n"
        assert [w["health"] for w in workers] == ["ok"] * 4

        # "Stuck rather than failed", step 2, run as written against this versioned fleet.
        section = readme_section("#### Stuck rather than failed")
        commands = [line.split() for line in section.splitlines() if line.startswith("       temporal task-queue")]
        assert len(commands) == 2
        cli_env = dict(os.environ, TEMPORAL_ADDRESS=env["TEMPORAL_HOST"])
        pollers = {}
        for command in commands:
            out = subprocess.run([str(temporal_binary()), *command[1:]], env=cli_env, capture_output=True,
                                 text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            pollers[command[command.index("--task-queue") + 1]] = {
                int(pid) for pid in re.findall(r"^\s*(?:batch|streaming)@\S+:(\d+)\s", out.stdout, re.M)}
        assert pollers == {"etl": {w["pid"] for w in workers if w["kind"] == "etl_worker"},
                           "etl-streaming": {w["pid"] for w in workers if w["kind"] == "streaming_worker"}}
    finally:
        run(["scripts/dev.py", "down"], env)


def test_dev_up_workers_drains_the_extra_and_restart_takes_new_settings(tmp_path):
    env = dev_ports(tmp_path)
    try:
        assert run(["scripts/dev.py", "up", "--workers", "2"], env).returncode == 0
        first = {w["name"]: w["pid"] for w in _status(env)["worker_list"]}

        down_to_one = run(["scripts/dev.py", "up", "--workers", "1"], env)
        assert down_to_one.returncode == 0, down_to_one.stderr
        assert "drained 2 workers (etl_worker-1, streaming_worker-1)" in down_to_one.stdout
        assert _gone(first["etl_worker-1"]) and _gone(first["streaming_worker-1"])
        kept = {w["name"]: w["pid"] for w in _status(env)["worker_list"]}
        assert kept == {"etl_worker-0": first["etl_worker-0"], "streaming_worker-0": first["streaming_worker-0"]}

        changed = env | {"WORKER_CONCURRENCY": "3"}  # as an edit of .env would (the environment wins over it)
        warned = run(["scripts/dev.py", "up"], changed)
        assert warned.returncode == 0
        assert ("warning: 2 workers (etl_worker-0, streaming_worker-0) started with other settings than .env and "
                "the environment give now") in warned.stderr
        assert "python scripts/dev.py restart" in warned.stderr

        restart = run(["scripts/dev.py", "restart"], changed)
        assert restart.returncode == 0, restart.stderr
        now = {w["name"]: w["pid"] for w in _status(changed)["worker_list"]}
        assert sorted(now) == ["etl_worker-0", "streaming_worker-0"] and not set(now.values()) & set(kept.values())
        assert all(_gone(pid) for pid in kept.values())
        assert "warning" not in run(["scripts/dev.py", "up"], changed).stderr
    finally:
        run(["scripts/dev.py", "down"], env)


def test_dev_up_refuses_a_negative_worker_count(tmp_path):
    env = dev_ports(tmp_path)  # its own ports: should it not refuse, it starts nothing of anyone else's
    result = run(["scripts/dev.py", "up", "--workers", "-1"], env, timeout=60)
    if result.returncode != 2:
        run(["scripts/dev.py", "down"], env)
    assert result.returncode == 2
    assert "argument --workers: -1 is below 0; give how many workers of each kind to keep running" in result.stderr


def test_a_settings_fingerprint_changes_with_env_file_and_holds_no_value(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DB_PASSWORD=hunter2-secret\nWORKER_CONCURRENCY=4\n")
    before = settings_fingerprint(load_settings(dotenv))
    assert settings_fingerprint(load_settings(dotenv)) == before
    dotenv.write_text("DB_PASSWORD=hunter2-secret\nWORKER_CONCURRENCY=6\n")
    after = settings_fingerprint(load_settings(dotenv))
    assert after != before and "hunter2" not in before + after


def test_dev_up_says_which_worker_died_at_start_and_why(tmp_path):
    env = dev_ports(tmp_path) | {"HEALTH_HOST": "192.0.2.1"}  # an address of no interface here: no worker can bind
    try:
        up = run(["scripts/dev.py", "up", "--workers", "1"], env)
    finally:
        run(["scripts/dev.py", "down"], env)
    assert up.returncode == 2 and "Workers:" not in up.stdout
    for name in ("etl_worker-0", "streaming_worker-0"):
        assert re.search(rf"worker {name} exited at start: error: cannot serve /healthz on 192\.0\.2\.1:\d+: .*"
                         rf"\(log: \S+/workers/{name}\.log\)", up.stderr), up.stderr
