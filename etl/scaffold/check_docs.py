"""Checking a source's README and test: every flow described, every flow tested.

A generated test expects the sample's exact events, so it keeps failing once a sample is
replaced until someone writes the real expectations; these checks say so before pytest does.
"""

from __future__ import annotations

import ast
import tomllib

from etl.scaffold import pyast, render
from etl.scaffold.layout import Layout
from etl.scaffold.plan import Action, Finding, is_scaffold


def readme(layout: Layout, flows: list[str], query_class: str) -> list[Finding]:
    path = layout.readme
    if not path.exists():
        missing = [] if not layout.dir.exists() else ["missing"]
        return [Finding(path, missing, Action("create", path, render.readme(layout, flows, query_class)))]
    text = path.read_text(encoding="utf-8", errors="replace")
    absent = [f for f in flows if layout.strategy(f) not in text]
    if not absent:
        return []
    problems = [f"does not describe {', '.join(layout.strategy(f) for f in absent)}"]
    if render.README_MARKER in text:
        added = text.rstrip("\n") + "\n" + "".join(render.readme_flow(layout, f) for f in absent)
        return [Finding(path, problems, Action("update", path, added))]
    return [Finding(path, problems, by_hand="not changed: it was written by hand; add a section for each "
                                            "flow (what it reads, which events it emits)")]


_REAL_TEST = "put the events your test data implies in EXPECTED (and the query arguments in ARGS), then delete " \
             "the SAMPLE line"


def tests(layout: Layout, flows: list[str], samples: list[str]) -> list[Finding]:
    path = layout.test
    strategies = {f: layout.strategy(f) for f in flows}
    # A flow is tested when some test names its strategy (synthetic-events is tested in tests/test_*.py).
    others = [p for p in layout.tests_dir.rglob("*.py") if p != path] if layout.tests_dir.is_dir() else []
    elsewhere = " ".join(p.read_text(encoding="utf-8", errors="replace") for p in others)
    untested = [f for f in flows if f not in samples and strategies[f] not in elsewhere]
    findings = []
    if not path.exists():
        if samples:
            missing = [] if not layout.dir.exists() else ["missing"]
            content = render.test(layout, [strategies[f] for f in samples])
            findings.append(Finding(path, missing, Action("create", path, content)))
        text, keys, scaffold = "", [], False
    else:
        module = pyast.load(path, layout.module(path))
        text, keys = module.text, _expected_keys(module)
        scaffold = keys is not None and is_scaffold(module, [render.test(layout, keys)])
        absent = [strategies[f] for f in samples if strategies[f] not in text]
        if absent and scaffold:
            findings.append(Finding(path, [f"does not test {', '.join(absent)}"],
                                    Action("update", path, render.test(layout, keys + absent))))
        elif absent:
            # A generated test could not know the arguments a real query needs, and this file is someone's work.
            ids = ", ".join(render.sample_ids(absent[0]))
            findings.append(Finding(path, [f"does not test {', '.join(absent)}"], by_hand=(
                f"not changed: it was written by hand; add a test that runs {' and '.join(absent)} through the "
                f"run_flow fixture with real query arguments and checks the events (the sample yields {ids})")))
        if scaffold:
            by_flow = {v: k for k, v in strategies.items()}
            stale = [k for k in keys if by_flow.get(k) not in samples]
            if stale:
                findings.append(Finding(path, [
                    f"still expects the SAMPLE events of {', '.join(stale)}, whose flow no longer yields the "
                    f"sample (or is gone)"], by_hand=_REAL_TEST))
    untested = [f for f in untested if strategies[f] not in text]
    if untested:
        findings.append(Finding(path, [f"no test runs {', '.join(strategies[f] for f in untested)}"],
                                by_hand="write a test that runs each through the run_flow fixture and checks "
                                        "the events its test data implies, as tests/sources/test_github.py does"))
    return findings


def _expected_keys(module: pyast.Module) -> list[str] | None:
    """The strategies a generated test's EXPECTED names, or None when it has no such literal."""
    for node in module.tree.body if module.tree else []:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "EXPECTED" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                return None
            return sorted(value) if isinstance(value, dict) else None
    return None


def entry_point(layout: Layout) -> list[Finding]:
    """A packaged source's pyproject.toml must name its package in the `etl.sources` entry points:
    without it no worker, launcher or schedule ever sees the source."""
    path = layout.pyproject
    if not path.exists():
        return []
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {}).get(
            "entry-points", {}).get("etl.sources", {})
    except tomllib.TOMLDecodeError as exc:
        return [Finding(path, [f"does not parse ({exc})"], by_hand="not changed: fix the TOML by hand")]
    if layout.package in [str(v).split(":", 1)[0].strip() for v in entries.values()]:
        return []
    return [Finding(path, [f"has no `etl.sources` entry point naming {layout.package}, so no worker loads it"],
                    by_hand=f'not changed: add `[project.entry-points."etl.sources"]` with '
                            f'`{layout.source} = "{layout.package}"`, then pip install -e {layout.root} again')]
