"""The tree's dependency rules (pyproject.toml's import-linter contracts) hold, and would catch a break.

Also: the activities the workflows call by their declarations are the ones workers register,
and the framework names no source.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio import activity

from etl.activities.batch import ETLActivities
from etl.activities.streaming import StreamingActivities
from etl.workflows import activity_contracts as contracts

ROOT = Path(__file__).resolve().parent.parent
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_every_contract_is_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("where, line, contract", [
    ("etl/workflows/common.py", "import etl.store.db", "Workflow code is sandbox-safe"),
    # Indirect: a workflow helper importing something that imports the settings.
    ("etl/workflows/windows.py", "import etl.launch.cli", "Workflow code is sandbox-safe"),
    ("sources/synthetic/query.py", "import etl.store.db", "Sources use only the source contract"),
    ("sources/synthetic/query.py", "import sources.github.query", "No source imports another source"),
    ("etl/core/models.py", "import sources.synthetic.query", "etl knows no source"),
    ("etl/store/db.py", "import etl.activities.batch", "The framework's layers"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, where, line, contract):
    for part in ("etl", "sources", "workers", "pyproject.toml"):
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "fixture"))
        else:
            shutil.copy(source, tmp_path / part)
    target = tmp_path / where
    target.write_text(target.read_text() + f"\n{line}  # added on purpose\n")
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout
    text = " ".join(result.stdout.split())  # long contract names wrap
    verdict = re.search(r"\b(KEPT|BROKEN)\b", text[text.index(contract):])
    assert verdict and verdict.group(1) == "BROKEN", result.stdout


@pytest.mark.parametrize("contract, implementation", [
    (contracts.BatchActivities, ETLActivities),
    (contracts.StreamingActivities, StreamingActivities),
])
def test_implementations_match_what_the_workflows_call(contract, implementation):
    declared = {name: fn for name, fn in vars(contract).items() if callable(fn) and not name.startswith("_")}
    assert declared
    for name, fn in declared.items():
        impl = getattr(implementation, name)
        assert impl is not fn, f"{implementation.__name__}.{name} is not implemented"
        assert activity._Definition.from_callable(impl).name == activity._Definition.from_callable(fn).name == name
        want = inspect.signature(fn)
        got = inspect.signature(inspect.unwrap(impl))
        assert list(got.parameters) == list(want.parameters), name
        assert [p.annotation for p in got.parameters.values()] == [p.annotation for p in want.parameters.values()]
        assert got.return_annotation == want.return_annotation, name


def test_the_framework_names_no_source():
    """Only docstrings and comments may name a source, as examples."""
    offenders = []
    for path in (ROOT / "etl").rglob("*.py"):
        code = _code_only(path.read_text())
        for n, line in enumerate(code.splitlines(), 1):
            if re.search(r"launchpad|github", line, re.I):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _code_only(text: str) -> str:
    """The source without docstrings, string literals used as docs, and comments."""
    import io
    import tokenize

    out, previous = [], None
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            continue
        if tok.type == tokenize.STRING and (previous in (None, tokenize.INDENT, tokenize.NEWLINE, tokenize.NL,
                                                         tokenize.DEDENT)):
            out.append((tok.start[0], '""'))
            previous = tok.type
            continue
        if tok.type == tokenize.STRING:
            # Messages may name examples; identifiers and keys may not.
            text_value = tok.string
            if re.search(r"launchpad|github", text_value, re.I) and " " in text_value:
                out.append((tok.start[0], '""'))
                previous = tok.type
                continue
        out.append((tok.start[0], tok.string))
        previous = tok.type
    lines: dict[int, list[str]] = {}
    for row, s in out:
        lines.setdefault(row, []).append(s)
    return "\n".join(" ".join(lines.get(i, [])) for i in range(1, max(lines, default=0) + 1))
