"""A source in a package of its own: the fleet as a dependency, not a fork.

`new.py acme --package DIR` makes the package in a temporary folder; a fresh venv made from this
project gets `pip install` of the project and of the package, nothing else (pip may use the
package index; its cache makes later runs quicker). In that venv the package's own generated
tests run and pass; `run_flow.py --list` shows its flow; workers started from it run the flow
through ETLFlow and StreamingETLFlow against the package's own fixture API, on this session's
Temporal and PostgreSQL; and changing one line of the package gives a new build id.

One venv serves the whole module (its install is the slow part: the figures are printed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from etl.store.db import Database
from etl.testing.flows import table_rows
from etl.testing.workers import WorkerProcess, settings_env

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("etl", "sources", "workers", "pyproject.toml", "README.md")
TOKEN = "pkg-token-7d2e"
EXPECTED = {"acme-events-sample-1", "acme-events-sample-2", "acme-events-sample-3"}
FLOW_FILE = "etl_source_acme/flows/events.py"

pytestmark = pytest.mark.slow


@dataclass
class Venv:
    python: Path
    package: Path
    figures: dict


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without PYTHONPATH: the venv sees only what was installed into it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def run(*args, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", clean_env())
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)


def pip(python: Path, *args: str) -> float:
    """`pip install ARGS` into the venv of `python`; the seconds it took."""
    start = time.monotonic()
    result = run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args)
    assert result.returncode == 0, f"pip install {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return time.monotonic() - start


@pytest.fixture(scope="module")
def venv() -> Venv:
    # Not under pytest's tmp folder: that one is private to us, and the embedded PostgreSQL of the
    # package's own tests runs its binaries from the venv as another user when we are root.
    base = Path(tempfile.mkdtemp(prefix="etl-source-package-"))
    base.chmod(0o755)
    try:
        yield make_venv(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def make_venv(base: Path) -> Venv:
    package = base / "acme-source"
    generated = run(sys.executable, ROOT / "scripts" / "new.py", "acme", "--package", package, cwd=base)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert f"pip install -e {package}" in generated.stdout

    # A copy of the project to install from, so building it leaves nothing in this tree.
    project = base / "fleet"
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.bak.*"))
        else:
            shutil.copy2(source, project / name)

    figures = {}
    start = time.monotonic()
    made = run(sys.executable, "-m", "venv", base / "venv")
    assert made.returncode == 0, made.stderr
    figures["venv_s"] = time.monotonic() - start
    python = base / "venv" / "bin" / "python"
    figures["install_project_s"] = pip(python, f"{project}[dev,embedded]")
    figures["install_package_s"] = pip(python, "-e", str(package))
    print(f"\nsource package venv: created in {figures['venv_s']:.1f}s, project installed in "
          f"{figures['install_project_s']:.1f}s, package in {figures['install_package_s']:.1f}s")
    return Venv(python, package, figures)


def build_id(venv: Venv, **env: str) -> str:
    result = run(venv.python, "-c", "from etl.runtime.versioning import code_build_id; print(code_build_id())",
                 env=clean_env(**env))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def broken_distribution(where: Path) -> Path:
    """An installed-looking distribution `etl-source-broken` whose source package cannot import."""
    dist = where / "etl_source_broken-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: etl-source-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[etl.sources]\nbroken = etl_source_broken\n")
    (where / "etl_source_broken").mkdir()
    (where / "etl_source_broken" / "__init__.py").write_text("import nowhere_to_be_found  # a missing dependency\n")
    return where


@pytest.fixture
def fixture_api(venv):
    """The package's own fixture API, served by the venv (`python -m etl_source_acme.fixture`)."""
    proc = subprocess.Popen([str(venv.python), "-m", "etl_source_acme.fixture", "--require-token", TOKEN,
                             "--max-per-page", "2"], env=clean_env(), stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert " on http://127.0.0.1:" in first, first
        yield first.split(" on ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_generated_package_passes_its_own_tests_and_its_flow_runs_on_workers_from_its_venv(
        venv, fixture_api, stack, tmp_path):
    # The package's own generated tests, in the venv: etl.testing's fixtures come from the plugin.
    tests = run(venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=venv.package)
    assert tests.returncode == 0 and " passed" in tests.stdout.strip().splitlines()[-1], \
        tests.stdout[-3000:] + tests.stderr[-3000:]

    # A package that cannot import is named with its error; the others still load.
    broken = broken_distribution(tmp_path / "broken")
    listing = run(venv.python, ROOT / "scripts" / "run_flow.py", "--list", env=clean_env(PYTHONPATH=str(broken)))
    assert listing.returncode == 0, listing.stderr
    assert "acme-events" in listing.stdout and "github-issues" in listing.stdout
    assert ("error: source package etl-source-broken 1.0 (entry point 'broken = etl_source_broken') did not load: "
            "ModuleNotFoundError: No module named 'nowhere_to_be_found'") in listing.stderr

    # Workers from the venv (batch and streaming, each with a task queue and table of its own).
    deployment = f"pkg-{uuid.uuid4().hex[:8]}"
    source_env = {"ACME_API_URL": fixture_api, "ACME_TOKEN": TOKEN, "WORKER_DEPLOYMENT_NAME": deployment,
                  "PYTHONPATH": str(broken)}
    ways = {}
    workers = []
    try:
        for kind, streaming in (("etl_worker", False), ("streaming_worker", True)):
            way_settings = stack.settings.replace(events_table=f"ev_pkg_{kind[:3]}_{uuid.uuid4().hex[:8]}")
            Database.get(way_settings).ensure_schema()
            queue = f"tq-pkg-{uuid.uuid4().hex[:8]}"
            log = tmp_path / f"{kind}.log"
            # PYTHONPATH (set here) replaces this process's: the venv imports only what it installed.
            workers.append(WorkerProcess(way_settings, queue, kind, log_path=log, python=venv.python, cwd=tmp_path,
                                         extra_env=source_env))
            launched = run(venv.python, ROOT / "scripts" / "run_flow.py", "acme-events", "--task-queue", queue,
                           *(["--streaming"] if streaming else []), "--wait", "--json", timeout=300,
                           env=clean_env(**settings_env(way_settings)))
            assert launched.returncode == 0, launched.stdout + launched.stderr + log.read_text()
            ways[kind] = (json.loads(launched.stdout.strip().splitlines()[-1])["summary"], way_settings, log)
    finally:
        for worker in workers:
            worker.stop()

    for kind, (summary, way_settings, log) in ways.items():
        rows = table_rows(Database.get(way_settings))
        assert {r["event_id"] for r in rows} == EXPECTED, kind
        assert summary["loaded"] == len(EXPECTED) and summary["rejected"] == 0, (kind, summary)
        assert {r["source_kind_id"] for r in rows} == {"acme"}
        output = log.read_text()
        assert f"build id '{build_id(venv, PYTHONPATH=str(broken))}'" in output, output[-3000:]
        assert "source package etl-source-acme 0.1.0 (etl_source_acme, code " in output, output[-3000:]
        assert "error: source package etl-source-broken 1.0" in output, output[-3000:]


def test_changing_one_line_of_an_installed_package_gives_a_new_build_id(venv):
    flow = venv.package / FLOW_FILE
    original = flow.read_text()
    before = build_id(venv)
    try:
        flow.write_text(original.replace('relation="events_created"', 'relation="events_made"', 1))
        assert flow.read_text() != original
        changed = build_id(venv)
    finally:
        flow.write_text(original)
    assert changed != before, "a changed source package must start a new build"
    assert build_id(venv) == before, "the same code gives the same build id"
