"""Examining a source: what is missing or broken in its package, and what to do about each.

Nothing here writes. The README and the test are checked in check_docs.py; what may be
rewritten, and what is only reported, is decided in plan.py.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

from etl.scaffold import check_docs, pyast, render
from etl.scaffold.layout import Layout
from etl.scaffold.names import DEFAULT_FLOW
from etl.scaffold.owners import failing_file
from etl.scaffold.plan import Action, Finding, Plan, is_scaffold, resolve


def examine(layout: Layout, requested: list[str]) -> Plan:
    new = not layout.dir.exists()
    existing = layout.existing_flows()
    flows = existing + [f for f in requested if f not in existing] or [DEFAULT_FLOW]
    findings: list[Finding] = []

    def need(path: Path, content: str) -> None:
        if not path.exists():
            findings.append(Finding(path, [] if new else ["missing"], Action("create", path, content)))

    if layout.packaged:
        need(layout.pyproject, render.pyproject(layout))
        findings += check_docs.entry_point(layout)
    need(layout.init, render.source_init(layout))
    if new:  # an existing source may well read no API (synthetic): these are only a new one's start
        need(layout.settings, render.settings(layout))
        need(layout.client, render.client(layout))
        for name, content in render.fixture_files(layout).items():
            need(layout.fixture_dir / name, content)
    query_class, finding = _query(layout)
    findings += [finding] if finding else []
    need(layout.flows_init, render.flows_init(layout))
    functions, samples, marked = {}, [], []
    for flow in flows:
        functions[flow], finding, sample, mark = _flow(layout, flow, query_class)
        findings += [finding] if finding else []
        samples += [flow] if sample else []
        marked += [flow] if mark else []
    findings += check_docs.readme(layout, flows, query_class)
    if layout.tests_init and (layout.tests_dir.is_dir() or samples):
        need(layout.tests_init, render.tests_init())
    findings += check_docs.tests(layout, flows, samples)
    if not any(f.problems for f in findings if f.path != layout.test):
        findings += _imports(layout, flows)
    query_marked = not layout.query.exists() or render.SAMPLE_MARKER in layout.query.read_text(encoding="utf-8")
    return Plan(layout, new, flows, query_class, functions, samples, marked, query_marked, findings)


@dataclass(frozen=True)
class Registration:
    """How a file must register its source or flow: `@query_type("acme")` on a class, say."""

    decorator: str
    home: str
    """The module the decorator comes from."""
    name: str
    kind: type
    """`ast.ClassDef` or `ast.FunctionDef`: what it decorates."""
    default: str
    """The class or function a generated file has."""

    @property
    def usage(self) -> str:
        return f'@{self.decorator}("{self.name}")'


def _problems(module: pyast.Module, layout: Layout, reg: Registration) -> tuple[list[str], str]:
    """What is wrong with the file's imports and its registration, and the class or function it registers."""
    imports = pyast.import_problems(module, layout.root)
    bad_names = set().union(*(names for _, names in imports))
    problems = [message for message, _ in imports]
    found = [d for d in pyast.decorations(module) if d.callee == reg.decorator]
    right = [d for d in found if d.arg == reg.name]
    hint = f"`from {reg.home} import {reg.decorator}`"
    if right:
        # An import already reported broken explains a wrong origin; saying it twice would not help.
        if right[0].qualified != f"{reg.home}.{reg.decorator}" and reg.decorator not in bad_names:
            problems.append(f"{reg.usage} on {right[0].target} is not the one from {reg.home}: add {hint}")
        return problems, right[0].target
    if found:
        problems.append(f"{found[0].target} is registered as {found[0].arg!r}, but this file must register "
                        f"{reg.name!r}: make it {reg.usage}")
        return problems, found[0].target
    # Name the class or function that should carry it: the generated name, else the likeliest one.
    nodes = pyast.definitions(module, reg.kind)
    likely = [n.name for n in nodes if n.name == reg.default] + [
        n.name for n in nodes if (n.name.startswith("extract") if reg.kind is ast.FunctionDef
                                  else any(getattr(b, "id", getattr(b, "attr", "")) == "Query" for b in n.bases))]
    target = likely[0] if likely else None
    if target:
        problems.append(f"{target} is not decorated with {reg.usage}, so {reg.name!r} is not registered: put "
                        f"{reg.usage} above it ({hint})")
    else:
        kind = "class" if reg.kind is ast.ClassDef else "function"
        problems.append(f"no {kind} is decorated with {reg.usage}, so {reg.name!r} is not registered: "
                        f"write one ({hint})")
    return problems, target or reg.default


def _query(layout: Layout) -> tuple[str, Finding | None]:
    path = layout.query
    fresh = render.query(layout)
    if not path.exists():
        return layout.query_class, Finding(path, [] if not layout.dir.exists() else ["missing"],
                                           Action("create", path, fresh))
    module = pyast.load(path, layout.module(path))
    if module.error:
        return layout.query_class, Finding(path, [f"does not parse ({module.error})"],
                                           by_hand="not changed: fix the syntax error by hand")
    reg = Registration("query_type", "etl.core.query", layout.source, ast.ClassDef, layout.query_class)
    problems, name = _problems(module, layout, reg)
    node = next((n for n in pyast.definitions(module, ast.ClassDef) if n.name == name), None)
    if node is not None and not problems:
        names = pyast.imported(module)
        decorators = [pyast.dotted(d.func if isinstance(d, ast.Call) else d, names) for d in node.decorator_list]
        if "dataclasses.dataclass" not in decorators:
            problems.append(f"{name} is not a dataclass: put @dataclass(frozen=True) below @query_type "
                            f"(`from dataclasses import dataclass`)")
    finding = resolve(problems, module, [fresh], fresh) if problems else None
    return (name if node is not None else layout.query_class), finding


def _flow(layout: Layout, flow: str, query_class: str) -> tuple[str, Finding | None, bool, bool]:
    """(extract method name, finding, still exactly the sample?, still marked SAMPLE?)"""
    path = layout.flow(flow)
    default = layout.function(flow)
    fresh = render.flow(layout, flow, query_class)
    if not path.exists():
        return default, Finding(path, action=Action("create", path, fresh)), True, True
    module = pyast.load(path, layout.module(path))
    marked = render.SAMPLE_MARKER in module.text
    if module.error:
        return default, Finding(path, [f"does not parse ({module.error})"],
                                by_hand="not changed: fix the syntax error by hand"), False, marked
    reg = Registration("extract_method", "etl.core.extract", layout.strategy(flow), ast.FunctionDef, default)
    problems, name = _problems(module, layout, reg)
    # The query class may have been renamed since this flow was generated.
    renderings = [fresh, render.flow(layout, flow)]
    finding = resolve(problems, module, renderings, fresh) if problems else None
    return name, finding, is_scaffold(module, renderings), marked


def _imports(layout: Layout, flows: list[str]) -> list[Finding]:
    """Import every module of the source: what `ast` cannot see (a NameError, a bad signature) shows here."""
    findings = []
    for path in [layout.query] + [layout.flow(f) for f in flows]:
        if not path.exists():
            continue
        try:
            importlib.import_module(layout.module(path))
        except Exception as exc:  # noqa: BLE001 - whatever the module raises is what the worker would hit
            origin = failing_file(exc, layout.root)
            if origin is None or origin == path.resolve():
                findings.append(Finding(path, [f"importing it fails: {type(exc).__name__}: {exc}"],
                                        by_hand="not changed: fix it by hand (new.py rewrites only untouched samples)"))
    return findings
