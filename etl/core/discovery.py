"""Finds and imports every source, once, so its decorators register it.

Every package under `sources/` is imported with all its modules (`query.py`,
`flows/*.py`; not its `fixture/` service), so a source made by `scripts/new.py` is live without editing any
list. Installed distributions can contribute sources too, through the `etl.sources`
entry-point group (each entry names a package or module to import).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading
from importlib.metadata import entry_points

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "etl.sources"

_lock = threading.RLock()
_done = False


#: Subpackage names discovery never enters: fixture services and tests live beside a source
#: but register nothing.
SKIPPED = ("fixture", "tests")


def _skipped(name: str) -> bool:
    return name.startswith("_") or name in SKIPPED


def _import_tree(package_name: str) -> None:
    """Import a package and its modules, never entering (or importing) a skipped subpackage."""
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        if _skipped(info.name):
            continue
        name = f"{package_name}.{info.name}"
        if info.ispkg:
            _import_tree(name)
        else:
            importlib.import_module(name)


def discover() -> None:
    """Import every source, once per process."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        import sources

        for info in pkgutil.iter_modules(sources.__path__):
            if info.ispkg and not _skipped(info.name):
                _import_tree(f"sources.{info.name}")
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            log.debug("importing source %s from entry point %s", entry.value, entry.name)
            _import_tree(entry.value.split(":", 1)[0])
        _done = True
