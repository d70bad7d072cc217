"""The dev stack's workers by version, for `scripts/deploy.py`: start a version's workers beside
the ones running, find which version each running worker is, stop one version's.

A worker's version is in its environment (`WORKER_DEPLOYMENT_NAME`, `WORKER_BUILD_ID`), set when
`dev.py up` or a deploy started it; its pid and log files are the stack's own (`DevStack`), so
`dev.py status` and `down` see every version's workers.
"""

from __future__ import annotations

from collections import defaultdict

from etl.devstack.local import WORKER_KINDS, DevStack, terminate, worker_build_id


def version_env(deployment: str, build_id: str) -> dict[str, str]:
    """What makes a worker process version `build_id` of `deployment`."""
    return {"WORKER_DEPLOYMENT_NAME": deployment, "WORKER_BUILD_ID": build_id}


def running_by_version(stack: DevStack) -> dict[str, list[int]]:
    """Build id -> pids of the stack's live workers ("" for a worker started without one: it
    derived its build id from the code it started with)."""
    return {build_id: [pid for pids in kinds.values() for pid in pids]
            for build_id, kinds in fleet_by_version(stack).items()}


def fleet_by_version(stack: DevStack) -> dict[str, dict[str, list[int]]]:
    """Build id -> kind (`etl_worker`, `streaming_worker`) -> pids of the stack's live workers."""
    if not stack.workers_dir.exists():
        return {}
    found: dict[str, dict[str, list[int]]] = defaultdict(lambda: {kind: [] for kind in WORKER_KINDS})
    for kind, workers in stack.live_workers().items():
        for pid in sorted(workers.values()):
            build_id = worker_build_id(pid)
            if build_id is not None:
                found[build_id][kind].append(pid)
    return dict(found)


def start_version(stack: DevStack, count: int, deployment: str, build_id: str) -> dict[str, int]:
    """Make `count` batch and `count` streaming workers of `build_id` run, beside every live worker
    (each kind counted apart, only `build_id`'s own); returns how many of each kind were started."""
    started = stack.start_workers(count, version_env(deployment, build_id))
    return {kind: sum(1 for w in started if w.kind == kind) for kind in WORKER_KINDS}


def stop(stack: DevStack, pids: list[int], timeout: float = 75) -> None:
    """SIGTERM `pids` (each finishes or hands back what it runs) and wait for them to exit."""
    terminate(pids, timeout)
    stack.worker_pids()  # drops the pid files of the workers that stopped
