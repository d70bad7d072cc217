"""The soak's results file (one entry per seed, the latest run of each) and the "Soak" section of
RELIABILITY.md made from it, between two markers: `scripts/soak.py --report` rewrites only that
block, and `scripts/reliability_report.py` carries it over when it regenerates the rest."""

from __future__ import annotations

import json
from pathlib import Path

BEGIN, END = "<!-- soak: begin (scripts/soak.py --report) -->", "<!-- soak: end -->"
BEFORE = "## Running the suite"

INTRO = """\
`python scripts/soak.py --minutes N --seed S` runs a simulated day on a private stack: batch and
streaming worker processes (kept at strength as a process manager would), a schedule firing every
minute over a GitHub fixture repository that grows while it runs, durable fan-outs over the
Launchpad fixture's team and over GitHub flows (again later, in load modes upsert and history, after
a bug and an issue changed), large synthetic flows in both workflows (bad records at 0.2 %, hostile
values at 0.05 %, some continuing as new every few hundred events, some launched twice at once, some
run again in upsert or history mode), flows whose query is bad, and source faults (5xx, 429, spent
rate limits up to 20 s, stalls). Meanwhile faults drawn from the seed land every 20-90 s: worker
SIGKILL, worker SIGTERM (drain), PostgreSQL stopped (fast or immediate) and started, the Temporal
dev server stopped (SIGTERM or SIGKILL) and started, a rollout of a new WORKER_BUILD_ID
(`scripts/deploy.py rollout`), the events database refusing new connections, and a streaming worker
starved of memory. After a drain deadline every check below is read from the database and Temporal,
never from the flows' summaries; the soak exits 0 only if all hold. *longest drain*: the most
seconds a worker took from SIGTERM to exit (the drain's grace is 60 s)."""


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"runs": {}}


def save(path: Path, result: dict) -> None:
    data = load(path)
    data.setdefault("runs", {})[str(result["seed"])] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def section(data: dict) -> str:
    runs = [data["runs"][k] for k in sorted(data.get("runs", {}), key=int)]
    out = [BEGIN, "## Soak", "", INTRO, ""]
    if not runs:
        return "\n".join(out + ["*No soak has run yet.*", END])
    names = [c["name"] for c in runs[0]["checks"]]
    out += ["| seed | minutes | faults injected | flows (runs) | events loaded | updated | rejects | longest drain "
            "| verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        f = r["figures"]
        faults = ", ".join(f"{k} {v}" for k, v in sorted(r["faults"].items())) or "none"
        out.append(f"| {r['seed']} | {r['minutes']:g} | {faults} | {f['flows']:,} ({f['flow_runs']:,}) | "
                   f"{f['events']:,} | {f['updated']:,} | {f['rejects']:,} | "
                   + (f"{f['longest_drain_s']:g} s | " if "longest_drain_s" in f else "- | ") +
                   f"{'**passed**' if r['passed'] else '**FAILED**'} |")
    out += ["", "Each check's figure, per seed:", "",
            "| check | " + " | ".join(f"seed {r['seed']}" for r in runs) + " |",
            "|---|" + "---|" * len(runs)]
    for i, name in enumerate(names):
        cells = [(c := r["checks"][i])["figure"] + ("" if c["ok"] else " **(fails)**") for r in runs]
        out.append(f"| {name} | " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    short = sorted({r["minutes"] for r in runs if r["minutes"] < 60})
    if short:
        out += ["", f"These runs lasted {', '.join(f'{m:g}' for m in short)} minutes, not the 60 the soak is meant to "
                "run for: the 60-minute runs of these seeds are still to be done (command below)."]
    dates = sorted({r["finished_at"][:10] for r in runs})
    out += ["", f"Runs of {', '.join(dates)} on {runs[0]['machine']}. Regenerate: run the soak for each seed "
            "(`python scripts/soak.py --minutes 60 --seed S`), then `python scripts/soak.py --report`.", END]
    return "\n".join(out)


def splice(document: str, block: str) -> str:
    """`document` with its soak block replaced by `block` (placed before "Running the suite" if absent)."""
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    if BEFORE in document:
        head, rest = document.split(BEFORE, 1)
        return head + block + "\n\n" + BEFORE + rest
    return document.rstrip() + "\n\n" + block + "\n"


def carried(old_document: str, new_document: str) -> str:
    """`new_document` keeping the soak block of `old_document`, if it had one."""
    if BEGIN in old_document and END in old_document:
        block = BEGIN + old_document.split(BEGIN, 1)[1].split(END, 1)[0] + END
        return splice(new_document, block)
    return new_document
