"""The dev stack's workers by version, for `scripts/deploy.py`: start a version's workers beside
the ones running, find which version each running worker is, stop one version's.

A worker's version is in its environment (`WORKER_DEPLOYMENT_NAME`, `WORKER_BUILD_ID`), set when
`dev.py up` or a deploy started it; its pid and log files are the stack's own (`DevStack`), so
`dev.py status` and `down` see every version's workers.
"""

from __future__ import annotations

from collections import defaultdict

import psutil

from etl.devstack.local import DevStack, terminate


def version_env(deployment: str, build_id: str) -> dict[str, str]:
    """What makes a worker process version `build_id` of `deployment`."""
    return {"WORKER_DEPLOYMENT_NAME": deployment, "WORKER_BUILD_ID": build_id}


def running_by_version(stack: DevStack) -> dict[str, list[int]]:
    """Build id -> pids of the stack's live workers ("" for a worker started without one: it
    derived its build id from the code it started with)."""
    found: dict[str, list[int]] = defaultdict(list)
    if not stack.workers_dir.exists():
        return {}
    for pid in stack.worker_pids():
        try:
            found[psutil.Process(pid).environ().get("WORKER_BUILD_ID", "")].append(pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return dict(found)


def start_version(stack: DevStack, count: int, deployment: str, build_id: str) -> None:
    """Start `count` batch and `count` streaming workers of `build_id`, beside every live worker."""
    per_kind = len(stack.worker_pids()) // 2
    stack.start_workers(per_kind + count, version_env(deployment, build_id))


def stop(stack: DevStack, pids: list[int], timeout: float = 75) -> None:
    """SIGTERM `pids` (each finishes or hands back what it runs) and wait for them to exit."""
    terminate(pids, timeout)
    stack.worker_pids()  # drops the pid files of the workers that stopped
