"""Discovery of installed source packages (the `etl.sources` entry points), as a worker and the
launchers meet them: a name registered twice stops the worker naming both origins; a package
that fails to import is named with its distribution and error, and every other source loads.

Each case is a fresh process whose path holds distributions made here (a `.dist-info` folder
with an `entry_points.txt`, as pip leaves them), so nothing is installed and the registries of
this process stay as they are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GITHUB_AGAIN = '''
from dataclasses import dataclass

from etl.core.query import Query, query_type


@query_type("github")
@dataclass(frozen=True)
class Impostor(Query):
    pass
'''

WIDGETS = '''
from dataclasses import dataclass

from etl.core.query import Query, query_type


@query_type("widgets")
@dataclass(frozen=True)
class Widgets(Query):
    pass
'''


def distribution(where: Path, name: str, module: str, code: str, version: str = "1.0") -> None:
    """An installed-looking distribution `name` whose `etl.sources` entry point is `module`."""
    dist = where / f"{module}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[etl.sources]\n{module.rsplit('_', 1)[-1]} = {module}\n")
    (where / module).mkdir()
    (where / module / "__init__.py").write_text(code)


def run(where: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(where)]))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["-m", "workers.etl_worker"], ["scripts/run_flow.py", "--list"]])
def test_a_name_a_package_registers_again_stops_the_command_naming_both_origins(tmp_path, command):
    distribution(tmp_path, "etl-source-impostor", "etl_source_impostor", GITHUB_AGAIN, "2.1")

    result = run(tmp_path, *command)

    assert result.returncode == 2, result.stdout + result.stderr
    assert ("error: query type 'github' is registered twice: in sources.github.query.GitHubQuery (this project's "
            "sources/) and in etl_source_impostor.Impostor (distribution etl-source-impostor 2.1); rename one of "
            "them") in result.stderr


def test_two_packages_registering_one_name_are_both_named(tmp_path):
    distribution(tmp_path, "etl-source-widgets-a", "etl_source_a", WIDGETS)
    distribution(tmp_path, "etl-source-widgets-b", "etl_source_b", WIDGETS.replace("Widgets(", "OtherWidgets("))

    result = run(tmp_path, "scripts/run_flow.py", "--list")

    assert result.returncode == 2
    assert ("query type 'widgets' is registered twice: in etl_source_a.Widgets (distribution etl-source-widgets-a "
            "1.0) and in etl_source_b.OtherWidgets (distribution etl-source-widgets-b 1.0)") in result.stderr


def test_a_package_that_fails_to_import_is_named_and_the_others_still_load(tmp_path):
    distribution(tmp_path, "etl-source-broken", "etl_source_broken", "raise RuntimeError('no config file')\n", "0.3")
    distribution(tmp_path, "etl-source-widgets", "etl_source_widgets", WIDGETS)

    listing = run(tmp_path, "scripts/run_flow.py", "--list")
    unknown = run(tmp_path, "scripts/run_flow.py", "broken-events")

    failure = ("source package etl-source-broken 0.3 (entry point 'broken = etl_source_broken') did not load: "
               "RuntimeError: no config file")
    assert listing.returncode == 0, listing.stderr
    assert f"error: {failure}" in listing.stderr
    assert "github-issues" in listing.stdout and "launchpad-bugs" in listing.stdout
    assert unknown.returncode == 2
    assert "unknown extract strategy 'broken-events'" in unknown.stderr
    assert "not loaded: etl-source-broken (RuntimeError: no config file)" in unknown.stderr
