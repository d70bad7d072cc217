"""Reading Python files with `ast`, without running them: decorators, imports and shape.

`ast` rather than regular expressions, so that a decorator in a comment, an import in a
string, or an unusual line break never fools the checks.
"""

from __future__ import annotations

import ast
import copy
import difflib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


@dataclass
class Module:
    """One Python file, parsed."""

    path: Path
    name: str
    """Its dotted module name, e.g. `sources.acme.flows.widgets`."""
    text: str
    tree: ast.Module | None
    error: str | None = None
    """Why it does not parse, when it does not."""

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def load(path: Path, name: str) -> Module:
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return Module(path, name, text, ast.parse(text, filename=str(path)))
    except SyntaxError as exc:
        return Module(path, name, text, None, f"line {exc.lineno}: {exc.msg}")


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, including those inside `if`/`try`/`with` (not inside defs)."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                yield from _top_level(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)


def bindings(tree: ast.Module) -> set[str] | None:
    """The names a module defines at its top level; None when that cannot be known statically."""
    names: set[str] = set()
    for node in _top_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if any(a.name == "*" for a in node.names):
                return None
            names.update(a.asname or a.name for a in node.names)
    return names


def absolute(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names, resolving relative imports."""
    if not node.level:
        return node.module or ""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (node.level - 1)])
    return f"{base}.{node.module}" if node.module else base


def imported(module: Module) -> dict[str, str]:
    """Each name the module's imports bind, mapped to what it is: `extract_method` -> `etl.core.extract.extract_method`."""
    names: dict[str, str] = {}
    for node in _top_level(module.tree.body if module.tree else []):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for a in node.names:
                names[a.asname or a.name] = f"{source}.{a.name}"
    return names


def dotted(expr: ast.expr, names: dict[str, str]) -> str | None:
    """What a `Name` or `a.b.c` expression refers to, through the imports; None if unknown."""
    if isinstance(expr, ast.Name):
        return names.get(expr.id)
    if isinstance(expr, ast.Attribute):
        base = dotted(expr.value, names)
        return f"{base}.{expr.attr}" if base else None
    return None


@dataclass
class Decoration:
    """One `@decorator("arg")` on a top-level function or class."""

    target: str
    """The decorated function or class."""
    callee: str
    """The decorator's own name, e.g. `extract_method`."""
    qualified: str | None
    """What it refers to through the imports, e.g. `etl.core.extract.extract_method`; None if not imported."""
    arg: str | None
    """Its first argument, when that is a string."""


def decorations(module: Module) -> list[Decoration]:
    if module.tree is None:
        return []
    names = imported(module)
    found = []
    for node in module.tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for deco in node.decorator_list:
            func = deco.func if isinstance(deco, ast.Call) else deco
            callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if callee is None:
                continue
            arg = None
            if isinstance(deco, ast.Call) and deco.args and isinstance(deco.args[0], ast.Constant) \
                    and isinstance(deco.args[0].value, str):
                arg = deco.args[0].value
            found.append(Decoration(node.name, callee, dotted(func, names), arg))
    return found


def definitions(module: Module, kind: type) -> list[ast.AST]:
    """Top-level functions (`ast.FunctionDef`) or classes (`ast.ClassDef`)."""
    return [n for n in (module.tree.body if module.tree else []) if isinstance(n, kind)]


def import_problems(module: Module, root: Path) -> list[tuple[str, set[str]]]:
    """Imports that cannot work: (what is wrong and what to do, the local names it would bind)."""
    found: list[tuple[str, set[str]]] = []
    for node in _top_level(module.tree.body if module.tree else []):
        if isinstance(node, ast.ImportFrom):
            target = absolute(module, node)
            missing = _missing_module(target, root)
            if missing:
                found.append((f"`from {target} import ...`: {missing}", {a.asname or a.name for a in node.names}))
                continue
            defined = _project_bindings(target, root)
            for a in node.names:
                if defined is None or a.name == "*" or a.name in defined or _exists(f"{target}.{a.name}", root):
                    continue
                close = difflib.get_close_matches(a.name, sorted(defined), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                found.append((f"`from {target} import {a.name}`: {target} has no {a.name!r}{hint}",
                              {a.asname or a.name}))
        elif isinstance(node, ast.Import):
            for a in node.names:
                missing = _missing_module(a.name, root)
                if missing:
                    found.append((f"`import {a.name}`: {missing}", {a.asname or a.name.split(".")[0]}))
    return found


def _project_bindings(name: str, root: Path) -> set[str] | None:
    """The top-level names of a project module; None for an installed module or when unknowable."""
    if not _is_project(name, root):
        return None  # an installed module: that it exists is all we check
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            try:
                return bindings(ast.parse(path.read_text(encoding="utf-8", errors="replace")))
            except SyntaxError:
                return None  # reported when that file itself is checked
    return None  # a namespace package: only its submodules can be imported from it


def _exists(name: str, root: Path) -> bool:
    """Whether `name` is a module or package of the project."""
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or base.is_dir()


def _is_project(name: str, root: Path) -> bool:
    top = name.split(".")[0]
    return (root / top).is_dir() or (root / f"{top}.py").is_file()


def _missing_module(name: str, root: Path) -> str | None:
    """Why module `name` cannot be imported, or None when it exists."""
    if not name:
        return "the relative import goes above the top-level package"
    if _is_project(name, root):
        if _exists(name, root):
            return None
        parent, _, leaf = name.rpartition(".")
        folder = root.joinpath(*parent.split(".")) if parent else root
        siblings = sorted({p.stem for p in folder.glob("*.py")} |
                          {p.name for p in folder.iterdir() if p.is_dir() and p.name.isidentifier()}) \
            if folder.is_dir() else []
        close = difflib.get_close_matches(leaf, siblings, n=1)
        hint = f" (did you mean {'.'.join(filter(None, [parent, close[0]]))}?)" if close else ""
        return f"there is no module {name}{hint}"
    try:
        if importlib.util.find_spec(name.split(".")[0]) is None:
            return f"no module named {name.split('.')[0]!r} is installed (add it to pyproject.toml)"
    except (ImportError, ValueError):
        return f"module {name!r} cannot be found"
    return None


def shape(tree: ast.Module) -> str:
    """The module with its imports and decorators set aside, as comparable text.

    Two files of the same shape differ at most in imports, decorators, comments and layout:
    exactly what a repair of a scaffold-shaped file may change."""
    parts = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        node = copy.deepcopy(node)
        for inner in ast.walk(node):
            if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner.decorator_list = []
        parts.append(ast.dump(node))
    return "\n".join(parts)
