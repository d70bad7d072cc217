"""Fixtures of the reliability suite: the chaos seed, and the results file RELIABILITY.md is made from.

    RELIABILITY_SEED=1234 pytest tests/reliability    replay the random choices of a failed run
    RELIABILITY_RESULTS=path.json                     where cases write their figures
                                                      (default .etl/reliability-results.json)
    python scripts/reliability_report.py              renders RELIABILITY.md from that file

Each case calls `case(...)` once, records its figures with `.record(...)` before asserting,
and its outcome (passed or failed) is added when the test ends.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from etl.core.settings import PROJECT_ROOT


def results_path() -> Path:
    return Path(os.environ.get("RELIABILITY_RESULTS") or PROJECT_ROOT / ".etl" / "reliability-results.json")


def _merge(case_id: str, entry: dict) -> None:
    """Write one case into the results file, keeping the other cases' latest figures."""
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data.setdefault("cases", {})[case_id] = entry
    data["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.system()}
    data["updated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    tmp.replace(path)


@dataclass
class Case:
    """One row of RELIABILITY.md."""

    id: str
    title: str
    flow: str
    injected: str
    size: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def record(self, figures: dict[str, Any], **extra: Any) -> None:
        self.figures.update(figures, **extra)
        self._write("recorded")

    def _write(self, outcome: str) -> None:
        _merge(self.id, {
            "title": self.title, "flow": self.flow, "injected": self.injected, "size": self.size,
            "figures": self.figures, "outcome": outcome,
            "seconds": round(time.monotonic() - self.started, 1),
            "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def case(request):
    """`case(id, title, flow, injected, **size)` -> Case; its outcome is written when the test ends."""
    made: list[Case] = []

    def make(case_id: str, title: str, flow: str, injected: str, **size: Any) -> Case:
        made.append(Case(case_id, title, flow, injected, size))
        return made[-1]

    yield make
    call = getattr(request.node, "rep_call", None)
    outcome = "passed" if call is not None and call.passed else "failed"
    for c in made:
        c._write(outcome)


@pytest.fixture
def chaos_seed(request) -> int:
    """The seed of this test's random choices: RELIABILITY_SEED, else a fresh one, printed either way."""
    raw = os.environ.get("RELIABILITY_SEED")
    seed = int(raw) if raw else random.SystemRandom().randrange(1, 1_000_000)
    print(f"chaos seed {seed}: replay with RELIABILITY_SEED={seed} pytest '{request.node.nodeid}'")
    request.node.user_properties.append(("chaos_seed", seed))
    return seed
