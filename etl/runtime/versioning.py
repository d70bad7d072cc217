"""Worker Versioning: every worker process runs as one version of a named Worker Deployment.

A version is `WORKER_DEPLOYMENT_NAME` (default `etl`) plus a build id: `WORKER_BUILD_ID`, or by
default one derived from the code (`code_build_id`: the package version and a hash of the code
that runs inside workflows and activities, the installed source packages' included: each one's
distribution name, version and files), so two workers with the same code share a version and any
change to that code, in this tree or in a source package, makes a new one.

What each workflow type does when the current version changes is declared on its
`@workflow.defn` (`versioning_behavior=`), with the reason beside it:

    ETLFlow, StreamingETLFlow   PINNED: finish on the version they started on; new flows go
                                to the current version (or the ramp).
    FanOutFlow, ScheduledFlow   AUTO_UPGRADE: move to the current version at their next task.

Because a pinned flow's activities go to workers of its own version (same task queue, same
version), old and new code never mix on one flow: staging rows, cursors and heartbeat
details are read only by the code that wrote them. See the README, "Deploying new code".

The operator's side (make a version current, ramp it, watch the old one drain) is
`Deployment`, driven by `scripts/deploy.py`; the worker's side is `DrainWatch`, which tells a
running worker when its version has drained and it may stop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionProto
from temporalio.api.enums.v1 import VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    DescribeWorkerDeploymentRequest,
    DescribeWorkerDeploymentVersionRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from etl.core.discovery import SourcePackage, source_packages
from etl.core.errors import DeployError, shown
from etl.core.settings import BUILD_ID_PATTERN, PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

#: The code a build id covers: everything that runs inside a workflow or an activity. Launchers,
#: the scaffolder and the dev stack do not change what a worker does with a task.
CODE_DIRS = ("etl/core", "etl/kit", "etl/store", "etl/workflows", "etl/activities", "etl/metrics.py", "sources")

def code_build_id(root: Path = PROJECT_ROOT, packages: list[SourcePackage] | None = None) -> str:
    """`<package version>-<12 hex digits>`: the same for the same workflow and activity code, that of
    the installed source `packages` (default: every one the `etl.sources` entry points name) included."""
    digest = hashlib.sha256()
    for name in CODE_DIRS:
        path = root / name
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            if "__pycache__" in file.parts or "fixture" in file.parts:
                continue
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    for package in source_packages() if packages is None else packages:
        digest.update(f"{package.distribution}=={package.version}\0".encode() + package_digest(package).encode())
    try:
        package = metadata.version("temporal-etl-fleet")
    except metadata.PackageNotFoundError:
        package = "0"
    return f"{package}-{digest.hexdigest()[:12]}"


def package_digest(package: SourcePackage) -> str:
    """12 hex digits of a source package's files (names relative to its package, so where it is
    installed does not matter); `missing` when its files cannot be found."""
    files = package.files()
    if not files:
        return "missing"
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def package_lines() -> list[str]:
    """What a worker prints at start under its version: each source package its build id covers."""
    return [f"source package {p.distribution} {p.version} ({p.module}, code {package_digest(p)})"
            for p in source_packages()]


def check_build_id(build_id: str) -> str:
    """`build_id` if it is a valid build id (as WORKER_BUILD_ID must be), else `DeployError`."""
    if not BUILD_ID_PATTERN.fullmatch(build_id or ""):
        raise DeployError(f"build id {shown(build_id)}: give letters, digits, '.', '-', '_' or '+', "
                          "starting with a letter or digit, at most 64 characters")
    return build_id


def worker_version(settings: Settings) -> WorkerDeploymentVersion:
    """This process's version: the deployment from settings, the build id from settings or the code."""
    return WorkerDeploymentVersion(settings.worker_deployment_name, settings.worker_build_id or code_build_id())


def worker_env(settings: Settings) -> dict[str, str]:
    """The variables that make a worker process this settings' version (for launchers of workers)."""
    version = worker_version(settings)
    return {"WORKER_DEPLOYMENT_NAME": version.deployment_name, "WORKER_BUILD_ID": version.build_id}


def deployment_config(version: WorkerDeploymentVersion) -> WorkerDeploymentConfig:
    # No default behaviour: the SDK then refuses to register a workflow that does not declare
    # its own, so a new workflow type cannot slip in without someone deciding.
    return WorkerDeploymentConfig(version=version, use_worker_versioning=True,
                                  default_versioning_behavior=VersioningBehavior.UNSPECIFIED)


def show(version: WorkerDeploymentVersion | None) -> str:
    return f"{version.deployment_name}:{version.build_id}" if version else "unversioned"


def _proto(version: WorkerDeploymentVersion) -> VersionProto:
    return VersionProto(deployment_name=version.deployment_name, build_id=version.build_id)


@dataclass
class VersionState:
    """What the server says about one version."""

    build_id: str
    status: str
    """inactive, current, ramping, draining, drained (lower case)."""
    ramp_percentage: float = 0.0
    task_queues: list[str] = field(default_factory=list)
    drainage: str = ""
    """unspecified, draining, drained: the server's view, refreshed every few minutes by default."""
    running_pinned: int = 0
    """Open workflow executions on this version (what still holds it), from visibility."""

    @property
    def drained(self) -> bool:
        return self.status == "drained" or (self.status in ("draining", "inactive") and self.running_pinned == 0
                                            and self.drainage == "drained")


@dataclass
class Deployment:
    """Operations on one Worker Deployment, as `scripts/deploy.py` and the tests use them."""

    client: Client
    name: str
    identity: str = "etl-deploy"

    async def _rpc(self, method, request, patience_s: float = 30.0):
        """`method(request)`, again after a pause while the server says the deployment is busy (it
        limits the requests per deployment: several workers starting at once reach it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience_s
        while True:
            try:
                return await method(request)
            except RPCError as exc:
                if exc.status != RPCStatusCode.RESOURCE_EXHAUSTED or loop.time() > deadline:
                    raise
            await asyncio.sleep(0.5)

    def version(self, build_id: str) -> WorkerDeploymentVersion:
        return WorkerDeploymentVersion(self.name, check_build_id(build_id))

    async def _deployment_info(self):
        """The server's WorkerDeploymentInfo, None before the deployment's first version."""
        try:
            return (await self._rpc(self.client.workflow_service.describe_worker_deployment,
                                    DescribeWorkerDeploymentRequest(namespace=self.client.namespace,
                                                                    deployment_name=self.name))
                    ).worker_deployment_info
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def routing(self) -> tuple[str | None, str | None, float]:
        """(current build id, ramping build id, ramp percentage); Nones before the first version."""
        info = await self._deployment_info()
        if info is None:
            return None, None, 0.0
        routing = info.routing_config
        current = routing.current_deployment_version.build_id or None
        ramping = routing.ramping_deployment_version.build_id or None
        return current, ramping, routing.ramping_version_percentage if ramping else 0.0

    async def build_ids(self) -> list[str]:
        info = await self._deployment_info()
        return [s.deployment_version.build_id for s in info.version_summaries] if info else []

    async def describe(self, build_id: str) -> VersionState:
        try:
            info = (await self._rpc(self.client.workflow_service.describe_worker_deployment_version,
                DescribeWorkerDeploymentVersionRequest(namespace=self.client.namespace,
                                                       deployment_version=_proto(self.version(build_id))))
                    ).worker_deployment_version_info
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise DeployError(f"no version {build_id!r} in deployment {self.name!r}: start its workers "
                                      "first (a version exists once one of its workers polls)") from None
            raise
        status = WorkerDeploymentVersionStatus.Name(info.status).removeprefix(
            "WORKER_DEPLOYMENT_VERSION_STATUS_").lower()
        drainage = VersionDrainageStatus.Name(info.drainage_info.status).removeprefix(
            "VERSION_DRAINAGE_STATUS_").lower()
        queues = sorted({tq.name for tq in info.task_queue_infos})
        return VersionState(build_id, status, info.ramp_percentage, queues, drainage,
                            await self.running_on(build_id))

    async def running_on(self, build_id: str) -> int:
        """Open executions whose version is `build_id` (pinned flows holding it, and auto-upgrade ones
        that have not moved yet)."""
        query = (f'TemporalWorkerDeploymentVersion="{self.name}:{build_id}" '
                 'AND ExecutionStatus="Running"')
        response = await self._rpc(self.client.workflow_service.count_workflow_executions,
            CountWorkflowExecutionsRequest(namespace=self.client.namespace, query=query))
        return response.count

    async def wait_for_pollers(self, build_id: str, task_queues: list[str], poll_s: float = 0.5,
                               timeout_s: float = 60.0) -> VersionState:
        """Wait until workers of `build_id` poll every one of `task_queues` (the server refuses to make
        a version current while a task queue of the current one would be left without pollers)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                state = await self.describe(build_id)
                missing = sorted(set(task_queues) - set(state.task_queues))
            except DeployError:
                state, missing = None, sorted(task_queues) or ["any task queue"]
            if state is not None and not missing:
                return state
            if loop.time() > deadline:
                raise DeployError(f"version {build_id!r} has no workers polling {', '.join(missing)} after "
                                      f"{timeout_s:.0f}s: start its workers (batch and streaming) and check their logs")
            await asyncio.sleep(poll_s)

    async def set_current(self, build_id: str) -> None:
        """Make `build_id` current: every new flow starts on it, auto-upgrade flows move to it."""
        await self._routing_call(build_id, lambda: self.client.workflow_service.set_worker_deployment_current_version(
            SetWorkerDeploymentCurrentVersionRequest(namespace=self.client.namespace, deployment_name=self.name,
                                                     build_id=build_id, identity=self.identity)))

    async def set_ramp(self, build_id: str, percentage: float) -> None:
        """Send `percentage` of new flows (by workflow id) to `build_id`; the rest stay on current.
        0 ends the ramp (`end_ramp`): the server would otherwise keep `build_id` "ramping at 0%",
        a version that never drains."""
        if not 0 <= percentage <= 100:
            raise DeployError(f"ramp {percentage:g}%: give a percentage from 0 to 100")
        if percentage == 0:
            await self.end_ramp()
            return
        await self._routing_call(build_id, lambda: self.client.workflow_service.set_worker_deployment_ramping_version(
            SetWorkerDeploymentRampingVersionRequest(namespace=self.client.namespace, deployment_name=self.name,
                                                     build_id=build_id, percentage=percentage,
                                                     identity=self.identity)))

    async def end_ramp(self) -> str | None:
        """No version ramps any more: every new flow starts on the current version, and the version
        that ramped drains. Returns that version's build id (None when none ramped)."""
        _, ramping, _ = await self.routing()
        if ramping is None:
            return None
        # An empty build id at 0% is how the API clears the ramping version.
        await self._routing_call(ramping, lambda: self.client.workflow_service.set_worker_deployment_ramping_version(
            SetWorkerDeploymentRampingVersionRequest(namespace=self.client.namespace, deployment_name=self.name,
                                                     build_id="", percentage=0, identity=self.identity)))
        return ramping

    async def previous_current(self) -> str | None:
        """The version that was current before the current one (None when there was none)."""
        info = await self._deployment_info()
        if info is None:
            return None
        current = info.routing_config.current_deployment_version.build_id
        earlier = [s for s in info.version_summaries
                   if s.deployment_version.build_id != current and s.HasField("last_current_time")]
        if not earlier:
            return None
        return max(earlier, key=lambda s: s.last_current_time.ToNanoseconds()).deployment_version.build_id

    async def rollback(self, to: str | None = None) -> tuple[str, list[str]]:
        """Make `to` (default: the current version if a ramp is on, else the previous current one)
        current with no ramp. Returns (`to`, the build ids that took new flows until now and now drain)."""
        current, ramping, _ = await self.routing()
        if to is None:
            to = current if ramping else await self.previous_current()
            if to is None:
                raise DeployError(f"deployment {self.name!r} has no ramp to end and no earlier current version: "
                                  "give the build id to roll back to (`python scripts/deploy.py status` lists them)")
        check_build_id(to)
        left = [b for b in (current, ramping) if b and b != to]
        if to != current:
            state = await self.describe(to)
            if not state.task_queues:
                raise DeployError(f"version {to!r} has no workers polling: start them first, then roll back")
            await self.set_current(to)  # a ramp of `to` itself ends with it
        if (await self.routing())[1]:
            await self.end_ramp()
        return to, left

    async def _routing_call(self, build_id: str, call, settle_s: float = 30.0) -> None:
        check_build_id(build_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settle_s
        while True:
            try:
                await call()
                return
            except RPCError as exc:
                # A version's new pollers reach the server's routing checks a little after they show
                # in `describe`: give them a moment before calling the task queues missing.
                if (("missing active task queues" in exc.message or exc.status == RPCStatusCode.RESOURCE_EXHAUSTED)
                        and loop.time() < deadline):
                    await asyncio.sleep(1)
                    continue
                raise DeployError(f"deployment {self.name!r}, version {build_id!r}: the server refused: "
                                  f"{exc.message}") from None

    async def wait_drained(self, build_id: str, poll_s: float = 1.0, report=None) -> VersionState:
        """Wait until no open flow is on `build_id` and the server calls it drained; `report(state)`
        is called whenever the count of running flows or the status changes."""
        shown = None
        while True:
            state = await self.describe(build_id)
            if state.status in ("current", "ramping"):
                what = ("end its ramp first (`python scripts/deploy.py rollback`)" if state.status == "ramping" else
                        "make another version current first (`python scripts/deploy.py rollback OTHER_BUILD_ID`)")
                raise DeployError(f"version {build_id!r} is {state.status}: it takes new flows and will never "
                                  f"drain; {what}")
            if report and (state.status, state.drainage, state.running_pinned) != shown:
                shown = (state.status, state.drainage, state.running_pinned)
                report(state)
            if state.drained:
                return state
            await asyncio.sleep(poll_s)


async def bootstrap_current(client: Client, version: WorkerDeploymentVersion, timeout_s: float = 60.0) -> bool:
    """Make `version` current when its deployment has no current version yet (the very first
    start of a fleet); otherwise leave routing alone: changing it is a deploy. True if it did."""
    deployment = Deployment(client, version.deployment_name, identity=f"first worker of {show(version)}")
    current, _, _ = await deployment.routing()
    if current:
        return False
    await deployment.wait_for_pollers(version.build_id, [], timeout_s=timeout_s)
    current, _, _ = await deployment.routing()
    if current:  # another worker got there first
        return False
    try:
        await deployment.set_current(version.build_id)
    except DeployError:
        if (await deployment.routing())[0]:  # a race with another first worker: fine either way
            return False
        raise
    log.info("deployment %r had no current version: made %s current", version.deployment_name, show(version))
    return True


class DrainWatch:
    """A worker's view of its own version, for the log and `/healthz`: current, ramping, draining
    with N flows still on it, or drained (this worker may stop)."""

    def __init__(self, client: Client, version: WorkerDeploymentVersion, poll_s: float = 15.0):
        self.deployment = Deployment(client, version.deployment_name)
        self.version = version
        self.poll_s = poll_s
        self.state: VersionState | None = None
        self.may_stop = asyncio.Event()

    def lines(self) -> list[str]:
        """What `/healthz` shows under its status line."""
        text = f"version: {show(self.version)}"
        if self.state is not None:
            text += f" ({self.describe_state(self.state)})"
        return [text]

    @staticmethod
    def describe_state(state: VersionState) -> str:
        if state.drained:
            return "drained: no flow needs this version, its workers may stop"
        if state.status == "draining":
            return f"draining: {state.running_pinned} flows still running on it"
        if state.status == "ramping":
            return f"ramping: {state.ramp_percentage:g}% of new flows"
        return state.status

    async def run(self) -> None:
        """Poll until the version is drained, logging each change; never raises (a check that
        fails is retried at the next poll)."""
        shown = None
        while not self.may_stop.is_set():
            try:
                self.state = await self.deployment.describe(self.version.build_id)
            except Exception as exc:  # noqa: BLE001 - the version may not be registered yet, or Temporal is away
                log.debug("version check failed: %s", exc)
            else:
                text = self.describe_state(self.state)
                if text != shown:
                    shown = text
                    log.info("worker version %s: %s", show(self.version), text)
                if self.state.drained:
                    self.may_stop.set()
                    return
            await asyncio.sleep(self.poll_s)
