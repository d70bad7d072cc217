"""What `new.py` tells the user: each finding and what was done about it, then the next steps."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from etl.scaffold.plan import Plan

Out = Callable[[str], None]
_PAST = {"create": "created", "repair": "repaired", "update": "updated"}


def findings(plan: Plan, dry_run: bool, backups: dict[Path, Path], out: Out) -> None:
    layout = plan.layout
    would = "would " if dry_run else ""
    out(f"{'New' if plan.new_source else 'Checking'} source {layout.source!r} in {layout.rel(layout.dir)}/")
    for f in plan.findings:
        rel = layout.rel(f.path)
        if f.action and f.action.verb == "create":
            out(f"  {would}create {rel}" + (" (it was missing)" if f.problems else ""))
            continue
        if not f.problems:
            continue
        out(f"  problem {rel}")
        for problem in f.problems:
            out(f"          - {problem}")
        if f.action:
            backup = backups.get(f.path)
            kept = f"a backup {layout.rel(backup)}" if backup else "a timestamped backup FILE.bak.YYYYmmdd-HHMMSS"
            what = f.action.why or ("it is still the generated sample, so it is written again"
                                    if f.action.verb == "repair" else "it is still as generated, so the missing "
                                                                      "parts are added")
            out(f"          {would}{f.action.verb}: {what}, keeping {kept}")
        else:
            out(f"          {f.by_hand}")


def summary(plan: Plan, dry_run: bool, out: Out) -> None:
    layout = plan.layout
    counts = {}
    for action in plan.actions:
        counts[action.verb] = counts.get(action.verb, 0) + 1
    hand = len({f.path for f in plan.by_hand})
    if not counts and not hand:
        left = todos(layout)
        if not left:
            out(f"{layout.rel(layout.dir)} is healthy: nothing to change.")
            return
        out(f"{layout.rel(layout.dir)} works and needs no repair, but is not finished: {len(left)} TODO or SAMPLE "
            f"marker{'s' * (len(left) != 1)} left to fill in:")
        for line in left[:MAX_TODOS]:
            out(f"  todo {line}")
        if len(left) > MAX_TODOS:
            out(f"  ... and {len(left) - MAX_TODOS} more: grep -rn 'SAMPLE:\\|TODO' {layout.rel(layout.dir)}")
        return
    done = ", ".join(f"{'would ' + verb if dry_run else _PAST[verb]} {n} file{'s' * (n != 1)}"
                     for verb, n in counts.items())
    parts = [done] if done else []
    if hand:
        parts.append(f"{hand} file{'s' * (hand != 1)} to fix by hand (see above)")
    line = "; ".join(parts)
    out(line[0].upper() + line[1:] + ".")
    if dry_run:
        out("Dry run: nothing was changed.")


MAX_TODOS = 12
_MARKERS = ("TODO", "SAMPLE:")


def todos(layout) -> list[str]:
    """`file:line: text` of every TODO and SAMPLE marker left in the source's files and its test."""
    files = sorted(p for p in layout.dir.rglob("*") if p.suffix in (".py", ".md") and "__pycache__" not in p.parts)
    found = []
    for path in files + ([layout.test] if layout.test.exists() else []):
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if any(marker in line for marker in _MARKERS):
                found.append(f"{layout.rel(path)}:{number}: {line.strip()[:90]}")
    return found


def next_steps(plan: Plan, out: Out) -> None:
    """What is left to fill in (the query, the extract methods), and how to run the flows and the tests."""
    layout, rel = plan.layout, plan.layout.rel
    todo = [f for f in plan.flows if f in plan.marked]
    readme = layout.readme.read_text(encoding="utf-8") if layout.readme.exists() else "TODO"
    out("")
    out("Next steps: make the fixture, the query and the flows the real API's." if plan.query_marked
        else "Next steps:")
    step = 1
    server = layout.fixture_dir / "server.py"
    if server.exists() and "TODO" in server.read_text(encoding="utf-8", errors="replace"):
        out(f"  {step}. The fixture API in {rel(server)}: the real API's paths, fields and paging, with data "
            "the flows must get right (paging, token checks and faults are the kit's).")
        step += 1
    if plan.query_marked:
        out(f"  {step}. The query: {plan.query_class} in {rel(layout.query)}: its fields, and validate().")
        step += 1
    out(f"  {step}. {'Each flow' if len(todo) > 1 else 'The flow'}'s extract method, replacing its SAMPLE:")
    for flow in todo:
        out(f"       {plan.functions[flow]} in {rel(layout.flow(flow))}")
    out(f"  Then put the events your test data implies in {rel(layout.test)}"
        + (f", and replace the TODOs in {rel(layout.readme)}." if "TODO" in readme else "."))
    if layout.packaged:
        out("  Install it into the fleet's environment (workers, launchers and schedules then load it):")
        out(f"       pip install -e {layout.root}")
    out("  Run a flow (workers load the sources when they start: start or restart them after this):")
    out("       python scripts/dev.py up --workers 1")
    for flow in todo:
        out(f"       python scripts/run_flow.py {layout.strategy(flow)} --wait")
    out("  Run the test:")
    out(f"       cd {layout.root} && pytest {rel(layout.test)}" if layout.packaged
        else f"       .venv/bin/pytest {rel(layout.test)}")
    out(f"  What is left to fill in: grep -rn 'SAMPLE:\\|TODO' {rel(layout.dir)} {rel(layout.test)}")
