"""Which names a source or a flow may have, and why a name is refused.

A source name becomes a package (`sources.<name>`) and a query type; a flow name becomes a
module (`flows/<flow>.py`) and half of a strategy name (`<source>-<flow>`). So both must be
importable, lowercase identifiers that source discovery does not skip.
"""

from __future__ import annotations

import keyword
import re

DEFAULT_FLOW = "events"
"""The flow a new source gets when none is named."""

# Discovery never imports these, so a source or flow so named would never register.
from etl.core.discovery import SKIPPED  # noqa: E402

_VALID = re.compile(r"[a-z][a-z0-9_]*")
_EXAMPLES = {"source": "'acme' or 'acme_crm'", "flow": "'issues' or 'pull_requests'"}


def problem(kind: str, name: str) -> str | None:
    """Why `name` cannot name a `kind` ("source" or "flow"), saying what to do; None if it can."""
    label = f"{kind} name {name!r}"
    example = _EXAMPLES[kind]
    if not name:
        return f"{kind} name is empty: give one such as {example}"
    if name[0].isdigit():
        return (f"{label} is not a valid Python identifier: start with a letter, then use lowercase "
                f"letters, digits and underscores, e.g. {example}")
    if not name.isidentifier() or not name.isascii():
        suggestion = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
        hint = f", e.g. {suggestion!r}" if _VALID.fullmatch(suggestion or "-") else f", e.g. {example}"
        return f"{label} is not a valid Python identifier: use only lowercase letters, digits and underscores{hint}"
    if name != name.lower():
        return f"{label} has capital letters; names are lowercase: use {name.lower()!r}"
    if keyword.iskeyword(name):
        return (f"{label} is a Python keyword, so `import ...{name}` would be a syntax error: "
                f"pick another name, e.g. '{name}_{kind}'")
    if name.startswith("_"):
        return (f"{label} starts with '_', and source discovery skips such names, so it would never be "
                f"registered: start with a letter")
    if name in SKIPPED:
        return (f"{label} is reserved: discovery skips packages and modules named "
                f"{' and '.join(repr(s) for s in SKIPPED)} (where a source keeps its fixture service "
                f"and tests), so it would never be registered: pick another name")
    return None


def problems(source: str, flows: list[str]) -> list[str]:
    """Every refused name among a source and its flows, each with what to do."""
    found = [problem("source", source)] + [problem("flow", flow) for flow in flows]
    return [p for p in found if p]


#: Names the generated query and sample already use for something else.
TAKEN_KEYS = ("id", "author", "title", "created_at", "name", "data_date_start", "data_date_end", "since", "until")


def key_problem(key: str) -> str | None:
    """Why `key` cannot name a query's key field (`--key`), saying what to do; None if it can."""
    if not _VALID.fullmatch(key or "-") or keyword.iskeyword(key) or key.startswith("_"):
        return (f"key {key!r} is not a field name: use lowercase letters, digits and underscores, starting "
                "with a letter, e.g. 'project', 'board' or 'member'")
    if key in TAKEN_KEYS:
        return f"key {key!r} is taken by the generated query or its sample data; pick another, e.g. '{key}_key'"
    return None
