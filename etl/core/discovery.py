"""Finds and imports every source, once, so its decorators register it.

Every package under `sources/` is imported with all its modules (`query.py`,
`flows/*.py`; not its `fixture/` service), so a source made by `scripts/new.py` is live without editing any
list. Installed distributions contribute sources too, through the `etl.sources` entry-point group
(each entry names a package or module to import; `new.py NAME --package DIR` makes such a package).

What can go wrong, and what follows:
- a name registered twice (two packages, or a package and `sources/`): `DuplicateNameError`
  naming both origins (`sources/` or the distribution, its version); nothing runs, because
  which code would serve the name is a guess;
- an installed package that fails to import: `failures()` holds its distribution, entry point
  and error, it is logged, and every other source still loads (a worker, `dev.py` and
  `run_flow.py --list` show the failures; a flow of that package is an unknown name);
- a source of this tree that fails to import: the error itself, as before (the tree is the
  project's own code, and `new.py` reports exactly that file).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from etl.core.errors import DuplicateNameError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "etl.sources"

_lock = threading.RLock()
_done = False
_failures: list["LoadFailure"] = []


#: Subpackage names discovery never enters: fixture services and tests live beside a source
#: but register nothing.
SKIPPED = ("fixture", "tests")


@dataclass(frozen=True)
class SourcePackage:
    """An installed distribution's entry in the `etl.sources` group."""

    distribution: str
    version: str
    entry_point: str
    """`name = module`, as the distribution declares it."""
    module: str
    """The package or module imported."""

    @property
    def label(self) -> str:
        return f"distribution {self.distribution} {self.version}"

    def files(self) -> list[tuple[str, Path]]:
        """(name, path) of each .py file discovery would import from it, `name` independent of where it
        is installed; empty when it cannot be found. Found without importing it."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return []
        if spec is None:
            return []
        if spec.submodule_search_locations:
            found = []
            for location in spec.submodule_search_locations:
                base = Path(location)
                for path in sorted(base.rglob("*.py")):
                    inner = path.relative_to(base).parts
                    if "__pycache__" in inner or any(_skipped(part) for part in inner[:-1]):
                        continue
                    found.append((f"{self.module}/{path.relative_to(base).as_posix()}", path))
            return found
        return [(f"{self.module}.py", Path(spec.origin))] if spec.origin and spec.has_location else []


@dataclass(frozen=True)
class LoadFailure:
    """An installed source package that did not import."""

    package: SourcePackage
    error: str
    """`Type: message` of what its import raised."""

    def __str__(self) -> str:
        p = self.package
        return (f"source package {p.distribution} {p.version} (entry point {p.entry_point!r}) did not load: "
                f"{self.error}; its flows are not available, the other sources are")


def _skipped(name: str) -> bool:
    return name.startswith("_") or name in SKIPPED


def import_source(package_name: str) -> None:
    """Import one source package and its modules as discovery does (the generator checks a source
    package before it is installed with this)."""
    _import_tree(package_name)


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


def _package(entry: EntryPoint) -> SourcePackage:
    dist = entry.dist
    return SourcePackage(dist.name if dist else "(unknown distribution)", dist.version if dist else "?",
                         f"{entry.name} = {entry.value}", entry.value.split(":", 1)[0].strip())


def source_packages() -> list[SourcePackage]:
    """Every installed distribution's source package (`etl.sources` entry points), by distribution name."""
    found = {(p.distribution, p.module): p for p in map(_package, entry_points(group=ENTRY_POINT_GROUP))}
    return [found[k] for k in sorted(found)]


def origin(where: str, packages: list[SourcePackage]) -> str:
    """`where` (a registered class or function, `module.qualname`) with where it comes from."""
    if where.startswith("sources."):
        return f"{where} (this project's sources/)"
    for package in packages:
        if where == package.module or where.startswith(package.module + "."):
            return f"{where} ({package.label})"
    return where


def discover() -> None:
    """Import every source, once per process."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        import sources

        packages = source_packages()
        try:
            for info in pkgutil.iter_modules(sources.__path__):
                if info.ispkg and not _skipped(info.name):
                    _import_tree(f"sources.{info.name}")
            failures = []
            for package in packages:
                log.debug("importing source package %s from %s", package.module, package.label)
                try:
                    _import_tree(package.module)
                except DuplicateNameError:
                    raise
                except Exception as exc:  # noqa: BLE001 - whatever a package raises, the others still load
                    # Not logged here: the commands say it in their own words (`failures()`), and an
                    # unknown name's error names it (`failure_note()`).
                    failures.append(LoadFailure(package, f"{type(exc).__name__}: {exc}"))
        except DuplicateNameError as exc:
            raise DuplicateNameError(exc.kind, exc.name, origin(exc.first, packages),
                                     origin(exc.second, packages)) from None
        _failures[:] = failures
        _done = True


def failures() -> list[LoadFailure]:
    """The installed source packages that did not import (sources are discovered first)."""
    discover()
    return list(_failures)


def failure_note() -> str:
    """For an unknown name's message: which packages did not load, or "" when all did."""
    if not _done or not _failures:
        return ""
    return "; not loaded: " + ", ".join(f"{f.package.distribution} ({f.error})" for f in _failures)
