"""What new.py found in a source and means to do: findings, each with an action or a hand fix.

A file may be rewritten only while it is scaffold-shaped (`is_scaffold`): it still holds a
SAMPLE marker and, imports and decorators aside, is exactly what the templates produce, so
rewriting it can lose nothing but the breakage. Any other file may hold someone's work: its
problems are reported with what to fix, and it is left alone.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from etl.scaffold import pyast, render
from etl.scaffold.layout import Layout


@dataclass
class Action:
    verb: str
    """`create` a missing file, `repair` a broken scaffold-shaped one, `update` one to add to it."""
    path: Path
    content: str
    why: str | None = None
    """Why the file may be changed, when the verb alone does not say it."""


@dataclass
class Finding:
    """Something about one file: what is wrong (if anything), and the action or the hand fix."""

    path: Path
    problems: list[str] = field(default_factory=list)
    action: Action | None = None
    by_hand: str | None = None
    """Why new.py leaves the file alone, when it has problems and no action."""


@dataclass
class Plan:
    layout: Layout
    new_source: bool
    flows: list[str]
    query_class: str
    functions: dict[str, str]
    """Flow -> its extract method's name."""
    samples: list[str]
    """Flows that still yield exactly the generated sample."""
    marked: list[str]
    """Flows whose file still holds a SAMPLE marker (their extraction is not written yet)."""
    query_marked: bool
    """Whether query.py still holds its SAMPLE fields."""
    findings: list[Finding]

    @property
    def actions(self) -> list[Action]:
        return [f.action for f in self.findings if f.action]

    @property
    def by_hand(self) -> list[Finding]:
        return [f for f in self.findings if f.problems and not f.action]


IMPLEMENTED = ("not changed: it has no SAMPLE marker, so its code is yours; fix it by hand as said above")
CHANGED = ("not changed: it has a SAMPLE marker but differs from the generated sample, so it may hold your "
           "work; fix it by hand as said above")


def is_scaffold(module: pyast.Module, renderings: list[str]) -> bool:
    """Whether the file is still one of `renderings`, imports and decorators aside, and marked SAMPLE."""
    if module.tree is None or render.SAMPLE_MARKER not in module.text:
        return False
    shape = pyast.shape(module.tree)
    return any(pyast.shape(ast.parse(text)) == shape for text in renderings)


def resolve(problems: list[str], module: pyast.Module, renderings: list[str], repaired: str) -> Finding:
    """A repair when the file is scaffold-shaped, else the problems and why the file is left alone."""
    if is_scaffold(module, renderings):
        return Finding(module.path, problems, Action("repair", module.path, repaired))
    marked = render.SAMPLE_MARKER in module.text
    return Finding(module.path, problems, by_hand=CHANGED if marked else IMPLEMENTED)
