"""Which module registers each query type and strategy, so a new name cannot clash with another source's.

The registries (`QueryFactory.names()`, `ExtractStrategy.all()`) are the truth, and they
include sources installed through entry points. But discovery stops at the first source
that fails to import, and `new.py` is exactly what people run on a broken source; so the
decorators in the files under `sources/` are read too (with `ast`), which works however
broken a source is.
"""

from __future__ import annotations

import ast
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from etl.scaffold.layout import Layout
from etl.scaffold.names import SKIPPED


@dataclass
class Owners:
    query_types: dict[str, str] = field(default_factory=dict)
    """Query type name -> the module that registers it."""
    strategies: dict[str, str] = field(default_factory=dict)
    """Strategy name -> the module that registers it."""
    import_failure: tuple[Path | None, str] | None = None
    """When discovery failed: the file it failed in (if under the root) and the error."""


def find(root: Path) -> Owners:
    owners = Owners()
    try:
        from etl.core.extract import ExtractStrategy
        from etl.core.query import QueryFactory

        for name in QueryFactory.names():
            owners.query_types[name] = QueryFactory.get(name).__module__
        for strategy in ExtractStrategy.all():
            owners.strategies[strategy.name] = strategy.fn.__module__
    except Exception as exc:  # noqa: BLE001 - any source's import error; the files are read below instead
        owners.import_failure = (failing_file(exc, root), f"{type(exc).__name__}: {exc}")
    for path, module in _source_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            call = _registration(node)
            if call:
                kind, name = call
                target = owners.query_types if kind == "query_type" else owners.strategies
                target.setdefault(name, module)
    return owners


def failing_file(exc: BaseException, root: Path) -> Path | None:
    """The project file an import error came from: a SyntaxError's file, else the deepest frame under root."""
    filename = getattr(exc, "filename", None)
    if isinstance(exc, SyntaxError) and filename:
        return Path(filename).resolve()
    inside = [Path(f.filename).resolve() for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve().is_relative_to(root / "sources")]
    return inside[-1] if inside else None


def _source_files(root: Path):
    """(path, module) of every .py file discovery would import under sources/."""
    base = root / "sources"
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        inner = parts[1:-1] + ((parts[-1],) if parts[-1] != "__init__" else ())
        if any(p.startswith("_") or p in SKIPPED for p in inner):
            continue
        yield path, ".".join(p for p in parts if p != "__init__")


def _registration(node: ast.AST) -> tuple[str, str] | None:
    """("query_type" | "extract_method", name) for a call such as `extract_method("acme-widgets")`."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    func = node.func
    callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return (callee, node.args[0].value) if callee in ("query_type", "extract_method") else None


def clashes(layout: Layout, flows: list[str], owners: Owners) -> list[str]:
    """Names the source or its flows would take that are already registered elsewhere, with what to do."""
    found = []
    own = layout.package

    def ours(module: str) -> bool:
        return module == own or module.startswith(own + ".")

    module = owners.query_types.get(layout.source)
    if module and not ours(module):
        found.append(f"source name {layout.source!r} clashes with another source: query type {layout.source!r} "
                     f"is already registered by {module}; pick another source name")
    for flow in flows:
        strategy = layout.strategy(flow)
        module = owners.strategies.get(strategy)
        expected = f"{own}.flows.{flow}"
        if module and not ours(module):
            found.append(f"flow name {flow!r} clashes with another source: strategy {strategy!r} is already "
                         f"registered by {module}; pick another flow name")
        elif module and module != expected and not layout.flow(flow).exists():
            found.append(f"flow name {flow!r} clashes: strategy {strategy!r} is already registered by {module}, "
                         f"and flows/{flow}.py would register it a second time; pick another flow name")
    return found
