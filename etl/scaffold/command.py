"""The whole `new.py` command: check the names, examine the source, act, report.

Exit codes: 0 when the source is healthy afterwards (or would be, with `dry_run`); 1 when
problems remain that must be fixed by hand (they are reported) or it does not import;
2 when the names are refused and nothing was looked at or written.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Callable

from etl.scaffold import apply, check, names, owners, report
from etl.scaffold.layout import Layout

OK, BY_HAND, REFUSED = 0, 1, 2


def scaffold(root: Path, source: str, flows: list[str], *, dry_run: bool = False, template: str = "project",
             key: str | None = None, window: str | None = None, package_dir: Path | None = None,
             out: Callable[[str], None] = print, err: Callable[[str], None] | None = None) -> int:
    """Create the source `source` with `flows` under `root` from `template` (`person` or `project`), its
    query's `key` field and `window` (`days` or `times`) as asked, or check and repair it; with
    `package_dir`, as a package of its own there instead."""
    err = err or (lambda line: print(line, file=sys.stderr))
    flows = list(dict.fromkeys(flows))  # a flow named twice is still one flow
    if package_dir is not None:
        if package_dir.exists() and not package_dir.is_dir():
            err(f"error: --package {package_dir}: it exists and is not a directory; give a folder (new or not)")
            return REFUSED
        root = package_dir.resolve()
        if str(root) not in sys.path:  # its modules are imported to check them, installed or not
            sys.path.insert(0, str(root))
    layout = Layout(root, source, template, key, window, packaged=package_dir is not None)
    refused = ([names.key_problem(key)] if key and names.key_problem(key) else []) or refusals(layout, flows, out)
    if refused:
        for message in refused:
            err(f"error: {message}")
        return REFUSED

    plan = check.examine(layout, flows)
    # With files to write, .env.example is regenerated after them (below), from what they declare then.
    stale = apply.stale_env_example(root) if not plan.actions else None
    if stale:
        plan.findings.append(stale)
    backups: dict[Path, Path] = {}
    if not dry_run:
        now = datetime.now()
        for action in plan.actions:
            backup = apply.write(action, now)
            if backup:
                backups[action.path] = backup
    report.findings(plan, dry_run, backups, out)
    report.summary(plan, dry_run, out)
    status = BY_HAND if plan.by_hand else OK
    if plan.actions and not dry_run:
        # Only what is not reported broken: that is the part these changes promise works.
        broken = {f.path for f in plan.by_hand}
        query_type = source if layout.query not in broken else None
        strategies = [layout.strategy(f) for f in plan.flows if layout.flow(f) not in broken]
        failed = apply.verify(root, query_type, strategies, layout.package if layout.packaged else None)
        if failed:
            err(f"error: the source does not import cleanly yet: {failed}")
            return BY_HAND
        registered = ([f"query type {source!r}"] if query_type else []) + strategies
        out(f"Imported cleanly; registered {', '.join(registered)}.")
        if apply.refresh_env_example(root):
            out("Updated .env.example: it lists the settings as they are declared now.")
    if plan.marked:
        report.next_steps(plan, out)
    return status


def refusals(layout: Layout, flows: list[str], out: Callable[[str], None]) -> list[str]:
    """Why the names cannot be used, each saying what to do; empty when they can."""
    refused = names.problems(layout.source, flows)
    if refused:
        return refused
    module = layout.dir.with_suffix(".py")
    if module.exists():
        return [f"{layout.rel(module)} exists: a source is a package ({layout.rel(layout.dir)}/), and that "
                f"module would stand in its way; rename or remove it"]
    if layout.dir.exists() and not layout.dir.is_dir():
        return [f"{layout.rel(layout.dir)} exists and is not a directory; rename or remove it"]
    found = owners.find(layout.root)
    failure = found.import_failure
    if failure and not (failure[0] and failure[0].is_relative_to(layout.dir.resolve())):
        # A broken source of our own is examined below; another one is worth a word.
        where = layout.rel(failure[0]) if failure[0] else "a source"
        out(f"note: {where} does not import ({failure[1]}); names were read from the files instead")
    planned = list(dict.fromkeys(layout.existing_flows() + flows)) or [names.DEFAULT_FLOW]
    return owners.clashes(layout, planned, found) + _prefix_clash(layout)


def _prefix_clash(layout: Layout) -> list[str]:
    """A new source's settings prefix (`ACME_`) must not be another source's (`LP_` is Launchpad's)."""
    if layout.dir.exists():
        return []
    try:
        from etl.core.source_settings import source_settings_classes

        taken = {cls.prefix: cls.__module__ for cls in source_settings_classes()}
    except Exception:  # noqa: BLE001 - a broken source was reported above; its prefix cannot be known
        return []
    if layout.prefix in taken:
        return [f"source name {layout.source!r} would read its settings as {layout.prefix}*, which "
                f"{taken[layout.prefix]} already declares; pick another source name"]
    return []
