"""Flow files: a list of flows in JSON or YAML, read and validated before any flow starts.

A flow file is JSON or YAML: a list of flows, each `{strategy, args}` and optionally
`streaming: true`, `archive: true` (keep the source's answers in the archive) or `replay: true`
with an optional `as_of` (read the archive instead of the source):

    - strategy: launchpad-bugs
      args: {member: alice, data_date_start: 2024-01-01, data_date_end: 2024-02-01}
    - {strategy: synthetic-events, args: {count: 1000, seed: 7}, streaming: true}
    - {strategy: github-issues, args: {...}, replay: true, as_of: 2024-06-01}

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

from etl.core.errors import EtlError, FlowFileError, shown
from etl.core.settings import Settings
from etl.launch.plan import FlowPlan, plan_flow
from etl.workflows.flow_io import LOAD_MODES

_ITEM_KEYS = {"strategy", "args", "streaming", "load_mode", "archive", "replay", "as_of"}


class _YamlLoader(yaml.SafeLoader):
    """YAML as flow files need it: dates stay text, so the query checks them like any argument
    and a bad one (`2024-13-01`) is reported with its flow and key, among the other problems,
    rather than failing the whole file at the parser."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


@dataclass(frozen=True)
class FlowSpec:
    """One entry of a flow file, as written."""

    strategy: str
    args: dict[str, Any]
    streaming: bool | None = None
    load_mode: str | None = None
    """None: the launcher's (`--load-mode`, default insert)."""
    archive: bool = False
    replay: bool = False
    as_of: str | None = None
    """Checked when the flow is planned (`etl.launch.plan.archive_options`), with its position named."""


def all_at_once(path, problems: list[FlowFileError]) -> FlowFileError:
    """One error for every problem found: the problem itself when alone, else each on a line."""
    if len(problems) == 1:
        return problems[0]
    lines = "".join(f"\n  {problem}" for problem in problems)
    return FlowFileError(path, f"{len(problems)} problems; fix them all, then run again:{lines}", problems=problems)


def load_flow_file(path: str | Path) -> list[FlowSpec]:
    """Read a JSON (`.json`) or YAML (anything else) list of flows; `FlowFileError` says what is
    wrong where, every bad flow at once."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FlowFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.load(text, Loader=_YamlLoader)
    except (ValueError, yaml.YAMLError) as exc:
        raise FlowFileError(path, f"is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(data, list) or not data:
        raise FlowFileError(path, "must be a non-empty list of flows, each {strategy: NAME, args: {...}}")
    specs, problems = [], []
    for index, item in enumerate(data):
        try:
            specs.append(_spec(path, index, item))
        except FlowFileError as exc:
            problems.append(exc)
    if problems:
        raise all_at_once(path, problems)
    return specs


def _spec(path: Path, index: int, item: Any) -> FlowSpec:
    if not isinstance(item, dict):
        raise FlowFileError(path, f"{shown(item)} is not a mapping like {{strategy: NAME, args: {{...}}}}", index)
    strategy = item.get("strategy")
    named = strategy if isinstance(strategy, str) and strategy else None
    unknown = sorted(set(item) - _ITEM_KEYS, key=str)
    if unknown:
        raise FlowFileError(path, f"unknown key {shown(unknown[0])}; a flow takes {', '.join(sorted(_ITEM_KEYS))}",
                            index, strategy=named)
    args = item.get("args", {})
    if named is None:
        raise FlowFileError(path, "needs `strategy`, the name of an extract strategy (see run_flow.py --list)", index)
    if not isinstance(args, dict):
        raise FlowFileError(path, f"`args` must be a mapping of query arguments, got {shown(args)}", index,
                            strategy=named)
    streaming = item.get("streaming")
    if streaming is not None and not isinstance(streaming, bool):
        raise FlowFileError(path, f"`streaming` must be true or false, got {shown(streaming)}", index, strategy=named)
    load_mode = item.get("load_mode")
    if load_mode is not None and load_mode not in LOAD_MODES:
        raise FlowFileError(path, f"`load_mode` must be one of {', '.join(LOAD_MODES)}, got {shown(load_mode)}", index,
                            strategy=named)
    return FlowSpec(strategy, args, streaming, load_mode, item.get("archive", False), item.get("replay", False),
                    item.get("as_of"))


def plan_all(settings: Settings, specs: Iterable[FlowSpec], *, streaming: bool = False,
             task_queue: str | None = None, source: str = "flows", load_mode: str = "insert") -> list[FlowPlan]:
    """Plan every flow (validating its strategy and arguments) before anything starts; every
    flow that cannot be planned is named at once."""
    plans: list[FlowPlan] = []
    problems: list[FlowFileError] = []
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        try:
            plan = plan_flow(settings, spec.strategy, spec.args, task_queue=task_queue,
                             streaming=spec.streaming if spec.streaming is not None else streaming,
                             load_mode=spec.load_mode or load_mode,
                             archive=spec.archive, replay=spec.replay, as_of=spec.as_of)
        except EtlError as exc:
            problems.append(FlowFileError(source, str(exc), i, strategy=spec.strategy))
            continue
        if plan.workflow_id in seen:
            problems.append(FlowFileError(source, f"is the same flow as flow {seen[plan.workflow_id] + 1} "
                                                  f"(workflow id {plan.workflow_id}); remove one", i,
                                          strategy=spec.strategy))
            continue
        seen[plan.workflow_id] = i
        plans.append(plan)
    if problems:
        raise all_at_once(source, problems)
    return plans
