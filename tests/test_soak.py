"""The soak (issue 27): `scripts/soak.py` runs a simulated day on a private stack of its own and
exits 0 only if every check holds; its figures go to a results file and RELIABILITY.md's Soak
section is rendered from them (and kept when the rest of the document is regenerated).

The fixed seed 3 draws four faults into a 3-minute soak: a rollout of a new build, PostgreSQL
stopped, the Temporal server stopped and a worker SIGKILLed, while the workload runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from etl.core.settings import PROJECT_ROOT
from scripts.soaking import report
from scripts.soaking.faults import fault_plan

SEED = 3
CHECKS = ("lost", "doubled", "unexpected", "rejects", "running", "failed", "windows", "staging", "rss", "histories",
          "task failures")


def soak(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/soak.py", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)))


def test_a_three_minute_soak_passes_every_check(tmp_path: Path):
    results = tmp_path / "soak.json"
    done = soak("--minutes", "3", "--seed", str(SEED), "--results", str(results), "--json")
    assert done.returncode == 0, f"the soak failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    verdict = json.loads(done.stdout.strip().splitlines()[-1])
    planned = {f.kind for f in fault_plan(SEED, 126)}
    assert set(verdict["faults"]) == planned, f"faults injected {verdict['faults']}, planned {planned}"
    figures = verdict["figures"]
    assert figures["events"] > 50_000 and figures["flows"] >= 20 and figures["rejects"] > 0, figures
    assert figures["windows"] >= 2 and figures["bad_queries"] >= 1 and figures["fanouts"] >= 2, figures
    assert figures["updated"] > 0, f"no upsert or history load replaced a changed row: {figures}"
    stored = json.loads(results.read_text())["runs"][str(SEED)]
    assert [c["name"] for c in stored["checks"]] == list(CHECKS)
    assert all(c["ok"] for c in stored["checks"]), stored["checks"]
    assert any("rollout of soak-2" in line for line in stored["timeline"]), "no deploy in the timeline"


def _run(seed: int, ok: bool) -> dict:
    checks = [{"name": name, "figure": f"{name} figure", "ok": ok or name != "lost", "detail": ""} for name in CHECKS]
    return {"seed": seed, "minutes": 10, "passed": ok, "faults": {"deploy": 1, "worker_kill": 2},
            "figures": {"flows": 40, "flow_runs": 44, "events": 123_456, "updated": 7, "rejects": 9,
                        "longest_drain_s": 2.5},
            "checks": checks, "finished_at": "2026-12-08T01:00:00+00:00", "machine": "2 CPUs"}


def test_the_soak_section_shows_each_seed_and_marks_a_failed_check(tmp_path: Path):
    results = tmp_path / "soak.json"
    report.save(results, _run(11, True))
    report.save(results, _run(12, False))
    document = tmp_path / "RELIABILITY.md"
    document.write_text("# Reliability\n\ntext\n\n## Running the suite\n\nend\n")
    done = soak("--report", "--results", str(results), "--output", str(document), timeout=60)
    assert done.returncode == 0, done.stderr
    text = document.read_text()
    assert text.index("## Soak") < text.index("## Running the suite")
    rows = [line for line in text.splitlines() if line.startswith("| 1")]
    assert rows[0].startswith("| 11 | 10 | deploy 1, worker_kill 2 | 40 (44) | 123,456 | 7 | 9 | 2.5 s | **passed** |")
    assert rows[1].endswith("| **FAILED** |")
    assert "| lost | lost figure | lost figure **(fails)** |" in text
    # Regenerating the rest of the document keeps the section.
    again = report.carried(text, "# Reliability\n\nnew text\n\n## Running the suite\n\nend\n")
    assert "new text" in again and "| lost | lost figure | lost figure **(fails)** |" in again
    assert again.count("## Soak") == 1


def test_bad_arguments_say_what_to_give(tmp_path: Path):
    assert "usage:" in soak("--help", timeout=60).stdout
    short = soak("--minutes", "1", "--seed", "1", timeout=60)
    assert short.returncode == 2 and "--minutes 1: give 2 to 1440" in short.stderr
    missing = soak("--minutes", "3", timeout=60)
    assert missing.returncode == 2 and "give --minutes N and --seed S" in missing.stderr
    empty = soak("--report", "--results", str(tmp_path / "none.json"), timeout=60)
    assert empty.returncode == 2 and "holds no soak runs" in empty.stderr


def test_hostile_records_of_the_synthetic_source_each_become_one_reject():
    from etl.core.models import transform
    from sources.synthetic.flows.events import HOSTILE_KINDS, expected_event_ids, hostile_kind, is_hostile, record
    from sources.synthetic.query import SyntheticQuery

    query = SyntheticQuery(count=30_000, seed=5, hostile_rate=0.001)
    hostile = [i for i in range(query.count) if is_hostile(5, 0.001, i)]
    assert {hostile_kind(5, i) for i in hostile} == set(HOSTILE_KINDS)
    events, rejects = transform([record(5, 0.0, i, 0.001) for i in range(query.count)])
    assert len(rejects) == len(hostile) and 10 < len(hostile) < 60
    assert {e.event_id for e in events} == expected_event_ids(query)
