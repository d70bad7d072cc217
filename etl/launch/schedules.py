"""Temporal Schedules for recurring flows: building one from flow specs, and reading them back.

A schedule starts a `ScheduledFlow` on every tick (cron or interval). Each run extracts the
window from the previous successful run's end to its own scheduled time (see
`etl.workflows.scheduled`), applied to the window fields each flow's query type declares
(`Query.window_fields`), or to those named with `window_args`. Flows with no window arguments run with their fixed arguments every time.

Overlap policy (what happens when a tick comes while the previous run still runs): SKIP by
default: the tick is dropped and the next run's window simply starts where the last
successful one ended, so nothing is lost. BUFFER_ONE / BUFFER_ALL queue ticks to run after,
CANCEL_OTHER / TERMINATE_OTHER stop the running one (its window is covered again next time).
ALLOW_ALL is refused: concurrent runs get no last result, so windows would not chain.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from etl.core.errors import ConfigError, EtlError, FlowFileError, QueryError, shown
from etl.core.extract import ExtractStrategy
from etl.core.query import QueryFactory
from etl.core.settings import Settings
from etl.core.times import parse_time
from etl.launch.fanout import child_of
from etl.launch.flow_file import all_at_once
from etl.launch.plan import plan_flow
from etl.workflows import search_attributes as sa
from etl.workflows.fleet_io import ChildFlow, ScheduledFlowInput
from etl.workflows.windows import detect_window_args, field_granularity

OVERLAPS = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "terminate_other": ScheduleOverlapPolicy.TERMINATE_OTHER,
}

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_interval(text: str) -> timedelta:
    """`90s`, `5m`, `1h30m`, `1d` as a timedelta of at least one second."""
    match = _DURATION.match(text.strip().lower()) if text else None
    if not match or not any(match.groups()):
        raise ConfigError("--interval", text, "a duration such as 30s, 5m, 1h30m or 1d")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    every = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if every < timedelta(seconds=1):
        raise ConfigError("--interval", text, "at least 1s")
    return every


def parse_overlap(name: str) -> ScheduleOverlapPolicy:
    if name.lower() == "allow_all":
        raise ConfigError("--overlap", name, "one of " + ", ".join(OVERLAPS) + " (allow_all would run windows "
                          "at once with no previous result, so they could not chain)")
    try:
        return OVERLAPS[name.lower()]
    except KeyError:
        raise ConfigError("--overlap", name, "one of " + ", ".join(OVERLAPS)) from None


def _window_of(strategy: str, override: tuple[str, str] | None) -> tuple[str, str, str] | None:
    qcls = QueryFactory.get(ExtractStrategy.create(strategy).query_type)
    if not override:
        return detect_window_args(qcls)
    hints = typing.get_type_hints(qcls)
    granularity = None
    for name in override:
        granularity = field_granularity(hints.get(name)) if name in hints else None
        if granularity is None:
            raise ConfigError("--window-args", ",".join(override),
                              f"two date or time fields of the {qcls.name!r} query; {name!r} is not one")
    return override[0], override[1], granularity  # type: ignore[return-value]


def scheduled_child(settings: Settings, strategy: str, args: dict, *, since: datetime, streaming: bool,
                    task_queue: str | None, window_args: tuple[str, str] | None = None,
                    load_mode: str = "insert", **archive: typing.Any) -> ChildFlow:
    """Validate one flow (its window filled with a sample window from `since`) as a scheduled child,
    stored without that sample window. `archive`: `archive`, `replay`, `as_of` (see `plan_flow`)."""
    window = _window_of(strategy, window_args)
    sample = dict(args)
    if window:
        start_arg, end_arg, granularity = window
        taken = [a for a in (start_arg, end_arg) if a in args]
        if taken:
            raise QueryError(ExtractStrategy.create(strategy).query_type, taken[0],
                             f"leave it out (it is {shown(str(args[taken[0]]))}): the schedule sets "
                             f"{start_arg} and {end_arg} to each run's window")
        end = since + timedelta(days=1)
        sample[start_arg] = since.date().isoformat() if granularity == "date" else since.isoformat()
        sample[end_arg] = end.date().isoformat() if granularity == "date" else end.isoformat()
    plan = plan_flow(settings, strategy, sample, streaming=streaming, task_queue=task_queue, load_mode=load_mode,
                     **archive)
    child = child_of(plan)
    if window:
        child = without_window(child, window[0], window[1])
        child = replace(child, window_start_arg=window[0], window_end_arg=window[1], window_granularity=window[2])
    return child


def without_window(child: ChildFlow, start_arg: str, end_arg: str) -> ChildFlow:
    """The child as the schedule stores it: the sample window it was validated with taken out of
    its arguments, memo and `EtlQuery`, so no placeholder date is stored or shown; each run puts
    its real window in (`etl.workflows.scheduled.in_window`)."""
    drop = {start_arg, end_arg}
    args = {k: v for k, v in child.input.args.items() if k not in drop}
    memo = dict(child.memo)
    attrs = dict(child.search_attributes)
    if isinstance(memo.get("query"), dict):
        memo["query"] = {k: v for k, v in memo["query"].items() if k not in drop}
        attrs["EtlQuery"] = ", ".join(f"{k}={v}" for k, v in memo["query"].items())[:2000]
    return replace(child, input=replace(child.input, args=args), memo=memo, search_attributes=attrs)


def build_schedule(schedule_id: str, children: list[ChildFlow], *, since: datetime, task_queue: str,
                   cron: str | None = None, interval: timedelta | None = None, concurrency: int = 8,
                   overlap: ScheduleOverlapPolicy = ScheduleOverlapPolicy.SKIP, paused: bool = False,
                   note: str | None = None) -> Schedule:
    """A schedule that starts `ScheduledFlow` over `children` on `cron` or every `interval`."""
    if bool(cron) == bool(interval):
        raise ConfigError("--cron/--interval", cron or interval, "exactly one of them")
    spec = ScheduleSpec(cron_expressions=[cron]) if cron else ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)])
    strategies = sorted({c.input.extract_strategy for c in children})
    action = ScheduleActionStartWorkflow(
        "ScheduledFlow",
        ScheduledFlowInput(children, since=since.astimezone(timezone.utc).isoformat(), concurrency=concurrency),
        id=schedule_id,
        task_queue=task_queue,
        memo={"schedule": schedule_id, "flows": len(children), "strategies": strategies},
        typed_search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.ETL_FLOW_KIND, "scheduled"),
            SearchAttributePair(sa.ETL_QUERY, f"schedule {schedule_id}: {', '.join(strategies)}"[:2000]),
        ]),
        static_summary=f"scheduled run of {schedule_id}: {len(children)} flows",
    )
    return Schedule(action=action, spec=spec, policy=SchedulePolicy(overlap=overlap),
                    state=ScheduleState(paused=paused, note=note))


def describe_when(cron: str | None, interval: timedelta | None) -> str:
    return f"cron {cron!r}" if cron else f"every {interval}"


@dataclass
class ScheduleDraft:
    """A validated schedule, ready for `client.create_schedule`, and how to describe it."""

    schedule_id: str
    schedule: Schedule
    memo: dict
    children: list[ChildFlow]
    since: datetime
    when: str

    def search_attributes(self) -> TypedSearchAttributes:
        return TypedSearchAttributes([SearchAttributePair(sa.ETL_FLOW_KIND, "scheduled")])

    def describe(self) -> str:
        windowed = sum(1 for c in self.children if c.window_start_arg)
        state = self.schedule.state
        return (f"created schedule {self.schedule_id}: {len(self.children)} flows {self.when}, overlap "
                f"{self.schedule.policy.overlap.name.lower()}{', paused' if state.paused else ''}; first window "
                f"from {self.since.isoformat()} ({windowed} of {len(self.children)} flows take the window)")


def draft_schedule(settings: Settings, schedule_id: str, specs: list, *, cron: str | None = None,
                   interval: str | None = None, since: str | None = None, window_args: str | None = None,
                   overlap: str = "skip", streaming: bool = False, concurrency: int = 8,
                   task_queue: str | None = None, paused: bool = False, note: str | None = None,
                   source: str | None = None, load_mode: str = "insert", archive: bool = False) -> ScheduleDraft:
    """Validate everything a schedule needs (each flow planned with a sample window) before any call
    to Temporal; `ConfigError`, `QueryError` or `UnknownNameError` name the bad value. With `source`
    (the flow file `specs` came from), every bad flow is named at once in a `FlowFileError`. `archive`:
    every run of every flow keeps its source's answers in the archive (as a flow's `archive: true` does)."""
    if not schedule_id or any(ch.isspace() for ch in schedule_id):
        raise ConfigError("ID", schedule_id, "a schedule name without spaces, e.g. lp-team-daily")
    if concurrency < 1:
        raise ConfigError("--concurrency", concurrency, "1 or more")
    every = parse_interval(interval) if interval else None
    policy = parse_overlap(overlap)
    try:
        start = parse_time(since) if since else datetime.now(timezone.utc).replace(microsecond=0)
    except ValueError:
        raise ConfigError("--since", since, "an ISO date or time, e.g. 2024-01-01 or 2024-01-01T00:00:00Z") from None
    pair = None
    if window_args:
        parts = [p.strip() for p in window_args.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ConfigError("--window-args", window_args, "two argument names, START,END")
        pair = (parts[0], parts[1])
    children, problems = [], []
    for i, s in enumerate(specs):
        try:
            children.append(scheduled_child(settings, s.strategy, s.args, since=start, task_queue=task_queue,
                                            streaming=s.streaming if s.streaming is not None else streaming,
                                            window_args=pair, load_mode=s.load_mode or load_mode,
                                            archive=archive or s.archive, replay=s.replay, as_of=s.as_of))
        except EtlError as exc:
            if source is None:  # one flow from the command line: its error names the argument
                raise
            problems.append(FlowFileError(source, str(exc), i, strategy=s.strategy))
    if problems:
        raise all_at_once(source, problems)
    schedule = build_schedule(schedule_id, children, since=start, task_queue=task_queue or settings.task_queue,
                              cron=cron, interval=every, concurrency=concurrency, overlap=policy,
                              paused=paused, note=note)
    when = describe_when(cron, every)
    memo = {"when": when, "flows": len(children), "since": start.isoformat(),
            "strategies": sorted({c.input.extract_strategy for c in children})}
    if note:
        memo["note"] = note  # pause and unpause replace the schedule's note; `schedule.py` keeps this one in it
    return ScheduleDraft(schedule_id, schedule, memo, children, start, when)
