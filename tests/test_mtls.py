"""mTLS to Temporal: TEMPORAL_TLS_CERT / _KEY / _CA / _SERVER_NAME, against a TLS terminator on
loopback that requires a client certificate signed by a test CA, in front of the dev server.

A worker process and the launcher with the certificate run a flow; without it, each fails at once
with one line naming the setting. The private key reaches no log, output or history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from etl.core.errors import ConfigError
from etl.core.settings import settings_from_env
from tests.tls_terminator import TLSTerminator, make_certificates
from tests.workers import ROOT, WorkerProcess, settings_env


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


def key_lines(path) -> list[str]:
    """The base64 lines of a PEM private key: none may appear anywhere else."""
    return [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]


def launch(settings, env: dict[str, str], task_queue: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/run_flow.py", "synthetic-events", "--arg", "count=300", "--arg", "seed=29",
         "--task-queue", task_queue, "--wait", "--json"],
        cwd=ROOT, env={**os.environ, **settings_env(settings), **env}, capture_output=True, text=True, timeout=300)


def test_a_missing_or_unreadable_certificate_file_names_its_setting(certs, tmp_path):
    with pytest.raises(ConfigError) as missing:
        settings_from_env({"TEMPORAL_TLS_CERT": str(tmp_path / "nope.pem"), "TEMPORAL_TLS_KEY": str(certs.client_key)})
    assert missing.value.variable == "TEMPORAL_TLS_CERT" and "readable PEM file" in str(missing.value)
    not_pem = tmp_path / "key.txt"
    not_pem.write_text("hunter2\n")
    with pytest.raises(ConfigError) as garbled:
        settings_from_env({"TEMPORAL_TLS_CERT": str(certs.client_cert), "TEMPORAL_TLS_KEY": str(not_pem)})
    assert garbled.value.variable == "TEMPORAL_TLS_KEY" and "hunter2" not in str(garbled.value)
    with pytest.raises(ConfigError) as half:
        settings_from_env({"TEMPORAL_TLS_CERT": str(certs.client_cert)})
    assert half.value.variable == "TEMPORAL_TLS_KEY"
    settings = settings_from_env({"TEMPORAL_TLS_CERT": str(certs.client_cert), "TEMPORAL_TLS_KEY": str(certs.client_key)})
    assert str(certs.client_key) not in repr(settings)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_worker_and_a_launcher_with_the_certificate_run_a_flow_and_without_it_fail_at_once(
        stack, settings, db, client, task_queue, certs, tmp_path):
    with TLSTerminator(certs, stack.settings.temporal_host) as proxy:
        settings = settings.replace(temporal_host=proxy.address)  # for the worker processes and the launcher
        trusted = {"TEMPORAL_TLS_CA": str(certs.ca),
                   "TEMPORAL_TLS_SERVER_NAME": "localhost", "WORKER_DEPLOYMENT_NAME": f"mtls-{uuid.uuid4().hex[:8]}"}
        with_cert = {**trusted, "TEMPORAL_TLS_CERT": str(certs.client_cert), "TEMPORAL_TLS_KEY": str(certs.client_key)}

        # Without a client certificate: refused at the handshake, one line naming the setting.
        no_cert_log = tmp_path / "worker-without.log"
        refused = WorkerProcess(settings, task_queue, log_path=no_cert_log, extra_env=trusted)
        assert refused.proc.wait(120) == 1
        said = no_cert_log.read_text().strip().splitlines()
        assert len(said) == 1 and "TEMPORAL_TLS_CERT" in said[0] and "refused the TLS connection" in said[0], said
        denied = launch(settings, trusted, task_queue)
        assert denied.returncode == 1 and denied.stdout == "", denied
        assert len(denied.stderr.strip().splitlines()) == 1 and "TEMPORAL_TLS_CERT" in denied.stderr, denied.stderr
        assert proxy.accepted == 0  # refused at the handshake: nothing reached the server

        # With it: a worker process polls through the terminator, the launcher runs a flow to the end.
        log = tmp_path / "worker.log"
        worker = WorkerProcess(settings, task_queue, log_path=log, extra_env=with_cert)
        try:
            done = launch(settings, with_cert, task_queue)
        finally:
            worker.terminate()
        assert done.returncode == 0, (done.stdout, done.stderr, log.read_text()[-3000:])
        result = json.loads(done.stdout)
        assert result["summary"]["loaded"] == 300 == db.count_events()
        assert proxy.accepted > 0

    history = await client.get_workflow_handle(result["workflow_id"]).fetch_history()
    secret = key_lines(certs.client_key)
    for where, text in (("worker log", log.read_text()), ("refused worker log", no_cert_log.read_text()),
                        ("launcher output", done.stdout + done.stderr), ("history", history.to_json())):
        assert not any(line in text for line in secret), f"the client key is in the {where}"
