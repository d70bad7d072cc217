"""Reading schedules back for `schedule.py list` and `describe`: plain dicts ready to print or dump."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import (
    Client,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError

from etl.workflows.failure_text import root_message
from etl.workflows.fleet_io import ScheduledRun


def _when(spec: ScheduleSpec, memo: dict[str, Any]) -> str:
    if memo.get("when"):
        return memo["when"]  # as the user wrote it: the server turns cron strings into calendars
    if spec.intervals:
        return ", ".join(f"every {i.every}" for i in spec.intervals if isinstance(i, ScheduleIntervalSpec))
    return "calendar" if spec.calendars else "-"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def list_schedules(client: Client) -> list[dict[str, Any]]:
    rows = []
    async for entry in await client.list_schedules():
        memo = await entry.memo()
        sched, info = entry.schedule, entry.info
        rows.append({
            "id": entry.id,
            "workflow": getattr(sched.action, "workflow", "?") if sched else "?",
            "when": _when(sched.spec, memo) if sched else "?",
            "paused": bool(sched and sched.state.paused),
            "next_run": _iso(info.next_action_times[0]) if info and info.next_action_times else None,
            "flows": memo.get("flows"),
        })
    return sorted(rows, key=lambda r: r["id"])


async def describe_schedule(client: Client, schedule_id: str) -> dict[str, Any]:
    """The schedule, its policy, its next times, and every recent run with its window and outcome."""
    desc = await client.get_schedule_handle(schedule_id).describe()
    memo = await desc.memo()
    sched, info = desc.schedule, desc.info
    runs = []
    for action in info.recent_actions:
        workflow_id = getattr(action.action, "workflow_id", "")
        runs.append({"scheduled_at": _iso(action.scheduled_at), "workflow_id": workflow_id,
                     **await _run_outcome(client, workflow_id)})
    return {
        "id": schedule_id,
        "workflow": getattr(sched.action, "workflow", "?"),
        "when": _when(sched.spec, memo),
        "overlap": sched.policy.overlap.name.lower(),
        "paused": sched.state.paused,
        **_notes(sched.state.note, memo.get("note")),
        "flows": memo.get("flows"),
        "strategies": memo.get("strategies"),
        "created_at": _iso(info.created_at),
        "actions": info.num_actions,
        "skipped_for_overlap": info.num_actions_skipped_overlap,
        "running": [getattr(r, "workflow_id", "") for r in info.running_actions],
        "next_runs": [_iso(t) for t in info.next_action_times[:5]],
        "recent_runs": runs,
    }


def _notes(state_note: str | None, created_note: str | None) -> dict[str, Any]:
    """The note given at creation (kept in the memo: pausing replaces the schedule's own note), and
    the schedule's current note when it says more (e.g. why it was paused)."""
    notes: dict[str, Any] = {"note": created_note or state_note or ""}
    if created_note and state_note and state_note != created_note:
        notes["state_note"] = state_note
    return notes


def pause_note(created_note: str | None, action: str, why: str | None) -> str | None:
    """The note `pause`/`unpause` set: the creation note first, then `paused: why`; None lets
    Temporal write its default when there is neither."""
    parts = [created_note] if created_note else []
    if why:
        parts.append(f"{action}: {why}")
    return "; ".join(parts) or None


async def _run_outcome(client: Client, workflow_id: str) -> dict[str, Any]:
    handle = client.get_workflow_handle(workflow_id, result_type=ScheduledRun)
    try:
        description = await handle.describe()
    except RPCError as exc:
        return {"status": "unknown", "error": str(exc)}
    status = description.status
    if status == WorkflowExecutionStatus.COMPLETED:
        run: ScheduledRun = await handle.result()
        # No fan-out means every flow's window was empty (e.g. a date window inside one day): nothing ran.
        return {"status": "completed" if run.fanout else "skipped", "window": [run.window_start, run.window_end],
                "loaded": run.fanout.loaded if run.fanout else 0, "skipped_flows": len(run.skipped)}
    # A run that has no result yet, or never will, keeps its window in its memo ("start..end").
    window = (await description.memo()).get("window")
    shown = {"window": window.split("..", 1)} if isinstance(window, str) and ".." in window else {}
    if status == WorkflowExecutionStatus.RUNNING:
        return {"status": "running", **shown}
    try:
        await handle.result()
    except Exception as exc:  # noqa: BLE001 - the failure is what we came to show
        return {"status": status.name.lower() if status else "failed", **shown, "error": root_message(exc)}
    return {"status": status.name.lower() if status else "unknown", **shown}
