"""What a launch of many flows prints at the end: a table per flow, totals, and what was started."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from etl.workflows.fleet_io import ChildOutcome


def plural(n: int, noun: str) -> str:
    """`1 flow`, `2 flows`, `0 flows`."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def totals(outcomes: list[ChildOutcome], elapsed_s: float | None = None) -> dict[str, Any]:
    """Counts over every flow; `elapsed_s` is the launch's wall time (flows overlap, so the sum
    of their durations, `flow_seconds`, is larger)."""
    done = [o.summary for o in outcomes if o.summary is not None]
    flow_seconds = round(sum(o.duration_s for o in outcomes), 3)
    return {
        "flows": len(outcomes),
        "completed": len(done),
        "failed": len(outcomes) - len(done),
        "extracted": sum(s.extracted for s in done),
        "loaded": sum(s.loaded for s in done),
        "updated": sum(s.updated for s in done),
        "rejected": sum(s.rejected for s in done),
        "unchanged": sum(s.unchanged for s in done),
        "flow_seconds": flow_seconds,
        "elapsed_s": round(elapsed_s, 3) if elapsed_s is not None else None,
    }


def launch_note(outcomes: list[ChildOutcome]) -> str:
    """One line on what this launch started; says so plainly when it started nothing."""
    notes = Counter(o.note.split(" (")[0] for o in outcomes)
    reused, started = notes["already completed"], notes["started"] + notes["restarted"]
    if started == 0 and notes["attached"] == 0 and reused:
        if reused == 1:
            return "nothing new started: the 1 flow had already completed; its recorded result is shown"
        return (f"nothing new started: all {reused} flows had already completed; "
                "their recorded results are shown")
    parts = [f"started {started}"]
    if notes["restarted"]:
        parts.append(f"{notes['restarted']} of them after a failed or stopped run")
    parts.append(f"attached to {notes['attached']} already running")
    parts.append(f"reused {reused} completed")
    return ", ".join(parts)


#: Under the table when some events were already in the table, so `LOADED 0` on a re-run reads right.
UNCHANGED_NOTE = ("UNCHANGED: events already in the table as they are now (in insert mode, already in the "
                  "table at all); loads do not write them, so a re-run shows LOADED 0 and UNCHANGED = what it read")


def summary_table(outcomes: list[ChildOutcome], elapsed_s: float | None = None) -> str:
    """Per flow: status, events loaded, updated and unchanged, rejects, duration, how the launcher
    came by it; then totals."""
    rows = [("FLOW", "STATUS", "LOADED", "UPDATED", "UNCHANGED", "REJECTS", "DURATION", "NOTE")]
    for o in outcomes:
        s = o.summary
        counts = (f"{s.loaded:,}", f"{s.updated:,}", f"{s.unchanged:,}", f"{s.rejected:,}") if s else ("-",) * 4
        rows.append((o.workflow_id, o.status, *counts, f"{o.duration_s:.1f}s", o.note))
    t = totals(outcomes, elapsed_s)
    wall = f"{t['elapsed_s']:.1f}s" if t["elapsed_s"] is not None else "-"
    rows.append((f"TOTAL: {plural(t['flows'], 'flow')}", f"{t['completed']} ok, {t['failed']} failed",
                 f"{t['loaded']:,}", f"{t['updated']:,}", f"{t['unchanged']:,}", f"{t['rejected']:,}", wall,
                 "wall time" if t["elapsed_s"] is not None else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2, 3, 4, 5, 6}
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    if t["unchanged"]:
        lines.append(UNCHANGED_NOTE)
    return "\n".join(lines)


def failures(outcomes: list[ChildOutcome]) -> str:
    failed = [o for o in outcomes if o.status != "completed"]
    return "\n".join([f"{plural(len(failed), 'flow')} failed:"] + [f"  {o.workflow_id}: {o.error}" for o in failed])


def as_json(outcomes: list[ChildOutcome], elapsed_s: float | None = None) -> dict[str, Any]:
    return {"flows": [dataclasses.asdict(o) for o in outcomes], "totals": totals(outcomes, elapsed_s),
            "note": launch_note(outcomes)}
