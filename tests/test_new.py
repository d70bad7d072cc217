"""scripts/new.py: scaffold a source, check it, repair it, refuse bad names.

Everything that writes runs in a copy of the project under tmp_path, never in the real tree:
`new.py` is started there with the venv's Python and from another working directory, so
these tests also prove that it finds its project from its own location.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from etl.core.extract import REJECTED
from etl.scaffold import pyast, render
from etl.scaffold.layout import Layout
from etl.scaffold.plan import is_scaffold

REPO = Path(__file__).resolve().parent.parent
COPIED = ("etl", "sources", "scripts", "tests", "pyproject.toml", ".env.example")
IGNORED = shutil.ignore_patterns("__pycache__", "*.bak.*", "*.tmp", ".pytest_cache")
BACKUP = re.compile(r"\.bak\.\d{8}-\d{6}(-\d+)?$")

WIDGETS = "sources/acme/flows/widgets.py"
GADGETS = "sources/acme/flows/gadgets.py"
QUERY = "sources/acme/query.py"
TEST = "tests/sources/test_acme.py"


def copy_project(dest: Path) -> Path:
    for name in COPIED:
        source, target = REPO / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=IGNORED)
        else:
            shutil.copy2(source, target)
    return dest


def python(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The venv's Python in `cwd`, seeing only what is on its own path (no PYTHONPATH from outside)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def new(root: Path, *args: str) -> subprocess.CompletedProcess:
    elsewhere = root.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    return python(elsewhere, str(root / "scripts" / "new.py"), *args)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root, __pycache__ included: checking a source must not even leave bytecode."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def backups(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if BACKUP.search(p.name))


@pytest.fixture(scope="module")
def generation(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A copy of the project in which `new.py acme widgets gadgets` has run (once), and its output."""
    root = copy_project(tmp_path_factory.mktemp("generated") / "project")
    result = new(root, "acme", "widgets", "gadgets")
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


@pytest.fixture
def project(generation, tmp_path: Path) -> Path:
    """A fresh copy of the generated project for one test to change."""
    return Path(shutil.copytree(generation[0], tmp_path / "project", ignore=IGNORED))


def test_new_source_has_the_shape_of_every_source_and_says_what_to_fill_in(generation):
    root, result = generation
    for name in ("sources/acme/__init__.py", "sources/acme/settings.py", "sources/acme/client.py", QUERY,
                 "sources/acme/flows/__init__.py", WIDGETS, GADGETS, "sources/acme/fixture/__init__.py",
                 "sources/acme/fixture/server.py", "sources/acme/fixture/__main__.py", "sources/acme/README.md", TEST):
        assert (root / name).is_file(), name
    for path in [*(root / "sources/acme").rglob("*.py"), root / TEST]:
        compile(path.read_text(), str(path), "exec")  # what py_compile checks, without writing a .pyc
    query = (root / QUERY).read_text()
    assert '@query_type("acme")\n@dataclass(frozen=True)\nclass AcmeQuery(WindowQuery):' in query
    assert 'project: str = "example"' in query and "since: datetime = datetime(2024, 1, 1" in query
    assert 'summary_fields = ("project", "since", "until")' in query and 'window_fields = ("since", "until")' in query
    settings = (root / "sources/acme/settings.py").read_text()
    assert '@source_settings(prefix="ACME_")' in settings and "token: str | None = secret(" in settings
    widgets = (root / WIDGETS).read_text()
    assert '@extract_method("acme-widgets")\ndef extract_widgets(' in widgets
    assert "# SAMPLE: the request, its parameters and the events are the sample API's" in widgets
    assert 'pages = api.pages("/v1/widgets", {"project": query.project}, BodyCursor()' in widgets
    assert "## Flow `acme-widgets`" in (root / "sources/acme/README.md").read_text()
    assert "Created 12 files." in result.stdout
    assert "Imported cleanly; registered query type 'acme', acme-widgets, acme-gadgets." in result.stdout
    assert "AcmeQuery in sources/acme/query.py: its fields, and validate()" in result.stdout
    assert "extract_widgets in sources/acme/flows/widgets.py" in result.stdout
    assert "extract_gadgets in sources/acme/flows/gadgets.py" in result.stdout
    assert "python scripts/run_flow.py acme-widgets --wait" in result.stdout
    assert ".venv/bin/pytest tests/sources/test_acme.py" in result.stdout


def test_new_source_imports_and_yields_its_sample(generation):
    code = ("from etl.core.extract import ExtractStrategy; from etl.core.query import QueryFactory\n"
            "from etl.core.settings import settings_from_env\n"
            "from sources.acme.fixture.server import AcmeFixture\n"
            "with AcmeFixture(token='t0ken', max_per_page=2) as api:\n"
            "    settings = settings_from_env({'ACME_API_URL': api.url, 'ACME_TOKEN': 't0ken'})\n"
            "    for name in ('acme-widgets', 'acme-gadgets'):\n"
            "        s = ExtractStrategy.create(name)\n"
            "        q = QueryFactory.create(s.query_type, {})\n"
            "        pages = list(s.pages(q, None, settings))\n"
            "        print(name, s.query_type, sorted(r['event_id'] for p in pages for r in p.records),\n"
            "              [r['event_id'] for p in s.pages(q, pages[0].cursor, settings) for r in p.records][:1])\n")
    result = python(generation[0], "-B", "-c", code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [f"{s} acme {render.sample_ids(s)} ['{s}-sample-3']" for s in ("acme-widgets", "acme-gadgets")]


def test_generated_test_passes_on_the_real_stack_and_fails_once_the_sample_is_replaced(project):
    # A second source whose sample was replaced by "real" extraction, test left as generated.
    assert new(project, "beta").returncode == 0
    flow = project / "sources/beta/flows/events.py"
    flow.write_text(flow.read_text().replace('f"beta-events-{item[\'id\']}"', 'f"beta-real-{item[\'id\']}"'))

    # Its own pytest, in the copy: the generated tests start a stack of their own there.
    result = python(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST, "tests/sources/test_beta.py",
                    timeout=600)
    summary = result.stdout.strip().splitlines()[-1]
    assert "1 failed, 2 passed" in summary, result.stdout[-3000:] + result.stderr[-3000:]
    assert "FAILED tests/sources/test_beta.py::test_flow_loads_exactly_its_events[beta-events]" in result.stdout


def test_rerunning_on_a_working_source_changes_nothing_and_lists_what_is_left(project):
    before = snapshot(project)
    for args in (("acme", "widgets", "gadgets"), ("acme",), ("acme", "widgets")):
        result = new(project, *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "sources/acme works and needs no repair, but is not finished: 13 TODO or SAMPLE markers" \
            in result.stdout
        assert "  todo sources/acme/README.md:4: TODO: what this source extracts" in result.stdout
        assert "healthy" not in result.stdout
    assert snapshot(project) == before


def test_a_source_with_no_todo_left_is_healthy(project):
    for path in [*(project / "sources/acme").rglob("*.py"), *(project / "sources/acme").rglob("*.md"),
                 project / TEST]:
        text = path.read_text().replace("TODO", "Done").replace("SAMPLE:", "Note:")
        path.write_text(text)
    result = new(project, "acme")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sources/acme is healthy: nothing to change." in result.stdout


def test_a_deleted_decorator_is_restored_and_the_old_file_kept(project):
    generated = (project / WIDGETS).read_text()
    broken = generated.replace('@extract_method("acme-widgets")\n', "")
    (project / WIDGETS).write_text(broken)

    result = new(project, "acme", "widgets")

    assert result.returncode == 0, result.stdout + result.stderr
    assert (project / WIDGETS).read_text() == generated
    [backup] = backups(project)
    assert backup.startswith(WIDGETS + ".bak.")
    assert (project / backup).read_text() == broken
    assert ('extract_widgets is not decorated with @extract_method("acme-widgets"), so \'acme-widgets\' is not '
            'registered') in result.stdout
    assert f"repair: it is still the generated sample, so it is written again, keeping a backup {backup}" \
        in result.stdout
    assert "registered query type 'acme', acme-gadgets, acme-widgets" in result.stdout
    assert "needs no repair" in new(project, "acme").stdout


def test_a_wrong_import_and_an_unregistered_query_are_repaired(project):
    (project / WIDGETS).write_text((project / WIDGETS).read_text().replace("from etl.core.extract import",
                                                                             "from etl.core.extracts import"))
    (project / QUERY).write_text((project / QUERY).read_text().replace('@query_type("acme")\n', ""))

    result = new(project, "acme")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "`from etl.core.extracts import ...`: there is no module etl.core.extracts (did you mean etl.core.extract?)" \
        in result.stdout
    assert 'AcmeQuery is not decorated with @query_type("acme")' in result.stdout
    assert sorted(b.rsplit(".bak.", 1)[0] for b in backups(project)) == sorted([QUERY, WIDGETS])
    assert '@query_type("acme")' in (project / QUERY).read_text()
    assert "from etl.core.extract import Page, extract_method" in (project / WIDGETS).read_text()


def test_an_implemented_flow_is_never_modified_only_reported(project):
    implemented = (
        '"""`acme-gadgets`: gadgets from the Acme API."""\n\n'
        "from etl.core.extract import Page, extract_method\n\n\n"
        "def extract_gadgets(query, cursor, settings):\n"
        "    for page in range(3):\n"
        "        yield Page([{'event_id': f'g-{page}', 'employee_id': 'ann', "
        "'event_time_utc': '2024-01-01T00:00:00Z'}], cursor=str(page))\n")
    (project / GADGETS).write_text(implemented)
    half_done = (project / WIDGETS).read_text().replace('@extract_method("acme-widgets")\n', "") \
        .replace('actor=item["author"]', 'actor=item["author"].lower()')
    (project / WIDGETS).write_text(half_done)

    result = new(project, "acme")

    assert result.returncode == 1
    assert (project / GADGETS).read_text() == implemented
    assert (project / WIDGETS).read_text() == half_done
    assert backups(project) == []
    assert ('extract_gadgets is not decorated with @extract_method("acme-gadgets"), so \'acme-gadgets\' is not '
            'registered: put @extract_method("acme-gadgets") above it') in result.stdout
    assert "not changed: it has no SAMPLE marker, so its code is yours; fix it by hand" in result.stdout
    assert "not changed: it has a SAMPLE marker but differs from the generated sample" in result.stdout
    # Its generated test still expects the sample: that is reported too, and also left alone.
    assert "still expects the SAMPLE events of acme-gadgets, acme-widgets" in result.stdout
    assert "3 files to fix by hand" in result.stdout


def test_a_new_flow_is_added_with_its_test_and_readme_section(project):
    result = new(project, "acme", "sprockets")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "  create sources/acme/flows/sprockets.py" in result.stdout
    assert '@extract_method("acme-sprockets")' in (project / "sources/acme/flows/sprockets.py").read_text()
    test = (project / TEST).read_text()
    assert all(event_id in test for event_id in render.sample_ids("acme-sprockets"))
    assert all(event_id in test for event_id in render.sample_ids("acme-widgets"))
    assert "## Flow `acme-sprockets`" in (project / "sources/acme/README.md").read_text()
    assert sorted(b.rsplit(".bak.", 1)[0] for b in backups(project)) == sorted(["sources/acme/README.md", TEST])
    assert "registered query type 'acme', acme-gadgets, acme-widgets, acme-sprockets" in result.stdout


def test_a_flow_added_to_a_hand_written_source_leaves_its_test_and_readme_alone(project):
    hand_written = {name: (project / name).read_text() for name in
                    ("tests/sources/test_github.py", "sources/github/README.md", "sources/github/query.py")}

    result = new(project, "github", "releases")

    assert result.returncode == 1
    assert '@extract_method("github-releases")' in (project / "sources/github/flows/releases.py").read_text()
    assert {name: (project / name).read_text() for name in hand_written} == hand_written
    assert backups(project) == []
    assert "- does not test github-releases" in result.stdout
    assert "not changed: it was written by hand; add a test that runs github-releases" in result.stdout
    assert "- does not describe github-releases" in result.stdout
    assert "2 files to fix by hand" in result.stdout


def test_missing_files_are_reported_and_created(project):
    (project / "sources/acme/__init__.py").unlink()
    (project / "sources/acme/README.md").unlink()

    result = new(project, "acme")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "  create sources/acme/__init__.py (it was missing)" in result.stdout
    assert "  create sources/acme/README.md (it was missing)" in result.stdout
    assert (project / "sources/acme/__init__.py").is_file() and backups(project) == []


@pytest.mark.parametrize(("args", "message"), [
    (["123"], "error: source name '123' is not a valid Python identifier: start with a letter"),
    (["class"], "error: source name 'class' is a Python keyword"),
    (["Acme"], "error: source name 'Acme' has capital letters; names are lowercase: use 'acme'"),
    (["acme-crm"], "error: source name 'acme-crm' is not a valid Python identifier: use only lowercase letters, "
                   "digits and underscores, e.g. 'acme_crm'"),
    (["_acme"], "error: source name '_acme' starts with '_', and source discovery skips such names"),
    (["tests"], "error: source name 'tests' is reserved"),
    (["acme", "2fast"], "error: flow name '2fast' is not a valid Python identifier: start with a letter"),
    (["acme", "import"], "error: flow name 'import' is a Python keyword"),
    (["acme", "fixture"], "error: flow name 'fixture' is reserved"),
    (["lp"], "error: source name 'lp' would read its settings as LP_*, which sources.launchpad.settings already "
             "declares; pick another source name"),
])
def test_bad_names_are_refused_and_nothing_is_written(project, args, message):
    before = snapshot(project)
    result = new(project, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert snapshot(project) == before


def test_only_a_name_another_source_registered_is_a_clash(project):
    # A source whose package name differs from what it registers (renamed, or written by hand).
    (project / "sources/legacy/flows").mkdir(parents=True)
    for name in ("__init__.py", "flows/__init__.py"):
        (project / "sources/legacy" / name).write_text("")
    (project / "sources/legacy/query.py").write_text(
        "from dataclasses import dataclass\nfrom etl.core.query import Query, query_type\n\n\n"
        "@query_type('crm')\n@dataclass(frozen=True)\nclass CrmQuery(Query):\n    account: str = 'x'\n")
    (project / "sources/legacy/flows/sync.py").write_text(
        "from etl.core.extract import Page, extract_method\n\n\n@extract_method('billing-invoices', query_type='crm')\n"
        "def extract_invoices(query, cursor, settings):\n    yield Page([])\n")
    before = snapshot(project)

    crm = new(project, "crm")
    billing = new(project, "billing", "payments", "invoices")

    assert crm.returncode == billing.returncode == 2
    assert ("error: source name 'crm' clashes with another source: query type 'crm' is already registered by "
            "sources.legacy.query; pick another source name") in crm.stderr
    assert ("error: flow name 'invoices' clashes with another source: strategy 'billing-invoices' is already "
            "registered by sources.legacy.flows.sync; pick another flow name") in billing.stderr
    assert snapshot(project) == before
    # A source's own names are no clash: `synthetic events` checks the (healthy, hand-written) synthetic
    # source, whose flow is tested in tests/test_batch_flow.py; other sources' flow names are free to reuse.
    for args in (("synthetic", "events"), ("github",), ("billing", "payments", "--dry-run"),
                 ("acme", "synthetic", "--dry-run")):
        result = new(project, *args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_changes_nothing(project):
    (project / WIDGETS).write_text((project / WIDGETS).read_text().replace('@extract_method("acme-widgets")\n', ""))
    before = snapshot(project)

    broken = new(project, "acme", "sprockets", "--dry-run")
    fresh = new(project, "zeta", "--dry-run")

    assert broken.returncode == fresh.returncode == 0
    assert "would repair: it is still the generated sample" in broken.stdout
    assert "  would create sources/acme/flows/sprockets.py" in broken.stdout
    assert "  would create sources/zeta/flows/events.py" in fresh.stdout
    assert "Dry run: nothing was changed." in broken.stdout and "Dry run: nothing was changed." in fresh.stdout
    assert snapshot(project) == before


@pytest.mark.parametrize("template", ["project", "person"])
@pytest.mark.parametrize(("source", "flows"), [("a1", ["x"]), ("acme_crm", ["pull_requests", "events"])])
def test_templates_render_code_that_compiles_and_is_recognised_as_the_sample(tmp_path, source, flows, template):
    layout = Layout(tmp_path, source, template)
    files = {"query": render.query(layout), "init": render.source_init(layout), "settings": render.settings(layout),
             "client": render.client(layout), "flows": render.flows_init(layout),
             "test": render.test(layout, [layout.strategy(f) for f in flows]),
             **{f"fixture/{name}": text for name, text in render.fixture_files(layout).items()},
             **{f: render.flow(layout, f) for f in flows}}
    for name, text in files.items():
        compile(text, name, "exec")
    assert "${" not in "".join(files.values()) + render.readme(layout, flows)
    assert ("member_field = \"member\"" in files["query"]) == (template == "person")
    path = tmp_path / "flow.py"
    for flow in flows:
        path.write_text(files[flow].replace("\n\n\n", "\n\n\n# a comment changes nothing\n", 1))
        assert is_scaffold(pyast.load(path, "m"), [files[flow]])
        path.write_text(files[flow].replace('items="data"', 'items="items"'))
        assert not is_scaffold(pyast.load(path, "m"), [files[flow]])


def test_the_key_field_and_a_window_of_days_are_chosen(project):
    """A kanban board's query: one board key and a window of days (neither template had that shape)."""
    result = new(project, "board", "cards", "--key", "board", "--window", "days")
    assert result.returncode == 0, result.stdout + result.stderr
    query = (project / "sources/board/query.py").read_text()
    assert 'board: str = "example"' in query and "data_date_start: date = date(2024, 1, 1)" in query
    assert 'window_fields = ("data_date_start", "data_date_end")' in query and "member_field" not in query
    assert "`board` | the board whose acts are read" in (project / "sources/board/README.md").read_text()
    assert [r["event_id"] for r in extracted(project, "board", "cards", {
        "data_date_start": "2024-01-06", "data_date_end": "2024-01-20"})] == ["board-cards-sample-2"]
    assert extracted(project, "board", "cards", {"data_date_start": "2024-01-06", "data_date_end": "2024-01-06"}) == (
        "board.data_date_end: 2024-01-06 is not after data_date_start (2024-01-06); the window is "
        "[data_date_start, data_date_end): the end is exclusive")
    refused = new(project, "crew", "--key", "created_at")
    assert refused.returncode == 2 and "key 'created_at' is taken" in refused.stderr


def test_a_time_the_flow_cannot_read_makes_a_reject_not_a_failed_extract(project):
    """The generated flow reads RFC 2822 and epoch times too; an unreadable one rejects its item alone."""
    server = project / "sources/acme/fixture/server.py"
    server.write_text(server.read_text().replace(
        '"created_at": f"{day}T12:00:00Z"}',
        '"created_at": {1: "Fri, 05 Jan 2024 13:00:00 +0100", 2: "1705060800", 3: "not a time"}.get(n, day)}'))
    got = [(r.get("event_id"), r.get("event_time_utc"), r.get(REJECTED)) for r in extracted(project, "acme", "widgets")]
    assert got == [
        ("acme-widgets-sample-1", "2024-01-05T12:00:00+00:00", None),
        ("acme-widgets-sample-2", "2024-01-12T12:00:00+00:00", None),
        (None, None, "the source could not map the record: ValueError: 'not a time' is not a time (ISO 8601, "
                     "RFC 2822 or epoch seconds)")]


def extracted(root: Path, source: str, flow: str, args: dict | None = None) -> list[dict] | str:
    """What `SOURCE-FLOW` extracts with `args` from its sample fixture, in a fresh interpreter in the
    copy: its records, or the error's message."""
    layout = Layout(root, source)
    code = ("import json, sys\nfrom etl.core.extract import ExtractStrategy; from etl.core.query import QueryFactory\n"
            "from etl.core.settings import settings_from_env\n"
            f"from sources.{source}.fixture.server import {layout.fixture_class}\n"
            f"with {layout.fixture_class}(token='t0ken', max_per_page=2) as api:\n"
            f"    settings = settings_from_env({{'{layout.prefix}API_URL': api.url, '{layout.prefix}TOKEN': 't0ken'}})\n"
            "    try:\n"
            "        q = QueryFactory.create(sys.argv[1], json.loads(sys.argv[3]))\n"
            "        pages = ExtractStrategy.create(sys.argv[2]).pages(q, None, settings)\n"
            "        print(json.dumps([r for p in pages for r in p.records]))\n"
            "    except Exception as exc:\n"
            "        print(json.dumps(str(exc)))\n")
    run = python(root, "-B", "-c", code, source, layout.strategy(flow), json.dumps(args or {}))
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_a_stale_env_example_is_reported_and_repaired(project):
    settings = project / "sources/acme/settings.py"
    settings.write_text(settings.read_text().replace("seconds for one HTTP exchange", "seconds for one exchange"))

    result = new(project, "acme")

    assert "problem .env.example" in result.stdout and "is stale" in result.stdout
    assert "update: it is generated from the settings, so it is written again" in result.stdout
    assert "# seconds for one exchange" in (project / ".env.example").read_text()
    assert "is stale" not in new(project, "acme").stdout
