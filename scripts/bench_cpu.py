"""CPU seconds of groups of processes, for the benchmark (`scripts/bench.py`)."""

from __future__ import annotations

import psutil


class CpuMeter:
    """CPU seconds used by groups of process trees between two snapshots.

    A live process counts its own time plus that of the children it has reaped (psutil's
    `children_user`/`children_system`): a PostgreSQL backend that exits between snapshots is
    still counted, through the postmaster that reaps it. A pid is counted once, in the first
    group that reaches it."""

    def __init__(self, groups: dict[str, list[int]], recursive: dict[str, bool] | None = None):
        self.groups = groups
        self.recursive = recursive or {}

    def snapshot(self) -> dict[str, float]:
        seen: set[int] = set()
        out: dict[str, float] = {}
        for name, pids in self.groups.items():
            total = 0.0
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    procs = [root] + (root.children(recursive=True) if self.recursive.get(name, True) else [])
                except psutil.NoSuchProcess:
                    continue
                for proc in procs:
                    if proc.pid in seen:
                        continue
                    seen.add(proc.pid)
                    try:
                        t = proc.cpu_times()
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    total += t.user + t.system + t.children_user + t.children_system
            out[name] = total
        machine = psutil.cpu_times()
        out["_machine_busy"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return out

    @staticmethod
    def figures(before: dict[str, float], after: dict[str, float], n: int) -> dict:
        used = {name: after[name] - before.get(name, 0.0) for name in after}
        busy = used.pop("_machine_busy")
        total = sum(used.values())
        # What else ran on the machine meanwhile (other people's tests): context for the wall-clock figures.
        return {"cpu_s": round(total, 2), "cpu_s_per_million": round(total / n * 1e6, 1),
                "cpu_s_by_process": {name: round(v, 2) for name, v in used.items()},
                "other_cpu_s": round(max(0.0, busy - total), 2)}
