"""Flow files: a list of flows in JSON or YAML, read and validated before any flow starts.

A flow file is JSON or YAML: a list of flows, each `{strategy, args}` and optionally
`streaming: true`:

    - strategy: launchpad-bugs
      args: {member: alice, data_date_start: 2024-01-01, data_date_end: 2024-02-01}
    - {strategy: synthetic-events, args: {count: 1000, seed: 7}, streaming: true}

Every flow is planned (`etl.launch.plan_flow`) before any starts, so one bad entry stops the
launch with an error naming its position. Ids are deterministic, and `run_flows` asks Temporal
about each id first (`describe`): a completed flow is not started again, its recorded result is
reused; a running one is attached to; a failed, cancelled or terminated one is started afresh.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from etl.core.errors import EtlError, FlowFileError  # noqa: F401 - FlowFileError is part of this module's API
from etl.core.settings import Settings
from etl.launch.plan import FlowPlan, plan_flow

_ITEM_KEYS = {"strategy", "args", "streaming"}


@dataclass(frozen=True)
class FlowSpec:
    """One entry of a flow file, as written."""

    strategy: str
    args: dict[str, Any]
    streaming: bool | None = None


def load_flow_file(path: str | Path) -> list[FlowSpec]:
    """Read a JSON (`.json`) or YAML (anything else) list of flows; `FlowFileError` says what is wrong where."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FlowFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise FlowFileError(path, f"is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(data, list) or not data:
        raise FlowFileError(path, "must be a non-empty list of flows, each {strategy: NAME, args: {...}}")
    return [_spec(path, i, item) for i, item in enumerate(data)]


def _spec(path: Path, index: int, item: Any) -> FlowSpec:
    if not isinstance(item, dict):
        raise FlowFileError(path, f"{item!r} is not a mapping like {{strategy: NAME, args: {{...}}}}", index)
    unknown = sorted(set(item) - _ITEM_KEYS)
    if unknown:
        raise FlowFileError(path, f"unknown key {unknown[0]!r}; a flow takes {', '.join(sorted(_ITEM_KEYS))}", index)
    strategy, args = item.get("strategy"), item.get("args", {})
    if not isinstance(strategy, str) or not strategy:
        raise FlowFileError(path, "needs `strategy`, the name of an extract strategy (see run_flow.py --list)", index)
    if not isinstance(args, dict):
        raise FlowFileError(path, f"`args` must be a mapping of query arguments, got {args!r}", index)
    streaming = item.get("streaming")
    if streaming is not None and not isinstance(streaming, bool):
        raise FlowFileError(path, f"`streaming` must be true or false, got {streaming!r}", index)
    return FlowSpec(strategy, args, streaming)


def plan_all(settings: Settings, specs: Iterable[FlowSpec], *, streaming: bool = False,
             task_queue: str | None = None, source: str = "flows") -> list[FlowPlan]:
    """Plan every flow (validating its strategy and arguments) before anything starts."""
    plans: list[FlowPlan] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        try:
            plan = plan_flow(settings, spec.strategy, spec.args, task_queue=task_queue,
                             streaming=spec.streaming if spec.streaming is not None else streaming)
        except EtlError as exc:
            raise FlowFileError(source, str(exc), i) from None
        if plan.workflow_id in seen:
            raise FlowFileError(source, f"is the same flow as flow {seen[plan.workflow_id] + 1} "
                                        f"(workflow id {plan.workflow_id}); remove one", i)
        seen[plan.workflow_id] = i
        plans.append(plan)
    return plans
