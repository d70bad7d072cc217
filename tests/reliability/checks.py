"""What every reliability case checks after its flows finish, and the figures it reports.

`reconcile` compares the events table with the exact set of event ids the flows should have
loaded (sets, not counts), counts duplicates, and checks each summary's books:
extracted = loaded + rejected + duplicates skipped. It returns the figures RELIABILITY.md
shows, so a case records them before asserting: a failing case still reports what it saw.
`ledger_figures` measures what the table's UNIQUE constraint hides: every committed page and load
appends a row to the ledger (`etl.store.checkpoints`), so rows counted as inserted by every run
and attempt, added up, must equal the rows in the table (more means the same rows were loaded
twice, fewer that rows arrived without a ledger entry), and a page committed twice is rework.
`staging_left` is what the staging tables still hold after a case.
`replay` runs every run of a flow's history through the current workflow code;
`retried_activities` counts the activity attempts after the first, over every run.
`within` awaits flows and, past its timeout, fails with `stuck`: where each stands (progress,
versioning, workflow task, last events, pending activities) and this process's thread stacks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import faulthandler
import tempfile
from typing import Any, Iterable

from psycopg2 import sql
from temporalio.api.enums.v1 import EventType, PendingActivityState, PendingWorkflowTaskState
from temporalio.client import Client
from temporalio.worker import Replayer

from etl.runtime.history import histories
from etl.store.db import Database


def table_ids(db: Database) -> list[str]:
    """Every event_id in the events table, duplicates included (the table forbids them; we check)."""
    query = sql.SQL("SELECT event_id FROM {}").format(db.tables.events)
    return db.run(lambda cur: (cur.execute(query), [r[0] for r in cur.fetchall()])[1])


def reject_reasons(db: Database) -> list[str]:
    query = sql.SQL("SELECT reason FROM {}").format(db.tables.rejects)
    return db.run(lambda cur: (cur.execute(query), [r[0] for r in cur.fetchall()])[1])


def ledger_figures(db: Database) -> dict:
    """Rows the ledger says were inserted (every run and attempt, added up) against the table, and
    the records committed more than once (the same page of the same unit committed again)."""
    t = db.tables

    def read(cur):
        cur.execute(sql.SQL("SELECT coalesce(sum(inserted), 0) FROM {}").format(t.ledger))
        inserted = cur.fetchone()[0]
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(t.events))
        rows = cur.fetchone()[0]
        cur.execute(sql.SQL(
            "SELECT coalesce(sum(records) - sum(first), 0), coalesce(sum(commits - 1), 0) FROM ("
            "SELECT unit_key, page_no, sum(records) AS records, max(records) AS first, count(*) AS commits "
            "FROM {} WHERE kind = 'page' GROUP BY unit_key, page_no) AS pages").format(t.ledger))
        rework, pages_again = cur.fetchone()
        return {"ledger_inserted": int(inserted), "ledger_rows_vs_table": int(inserted) - rows,
                "rework_records": int(rework), "rework_pages": int(pages_again)}

    return db.run(read)


def staging_left(db: Database) -> dict:
    """Rows and bytes the staging tables (pages, staged events, resume points, batch ledger) still hold."""
    from etl.store.staging import Staging

    staging = Staging(db)
    return {"staging_rows": staging.rows(), "staging_bytes": staging.size_bytes()}


def _as_dict(summary: Any) -> dict:
    return summary if isinstance(summary, dict) else dataclasses.asdict(summary)


def reconcile(db: Database, expected: set[str], summaries: Iterable[Any],
              expected_rejects: int | None = None) -> dict:
    """The figures of one case: lost, doubled and unexpected events, and whether the books balance."""
    ids = table_ids(db)
    present = set(ids)
    sums = [_as_dict(s) for s in summaries]
    total = {k: sum(s[k] for s in sums) for k in ("extracted", "loaded", "updated", "rejected", "unchanged")}
    balanced = all(s["extracted"] == s["loaded"] + s["updated"] + s["rejected"] + s["unchanged"] for s in sums)
    rejects_in_table = db.count_rejects()
    ledger = ledger_figures(db)
    figures = {
        "expected_events": len(expected),
        "rows": len(ids),
        "lost": len(expected - present),
        # Rows loaded twice however they hide: more than one row per id (the UNIQUE constraint makes
        # this 0 unless it is dropped), or more rows counted as inserted, over every run and attempt,
        # than the table holds.
        "doubled": max(len(ids) - len(present), ledger["ledger_rows_vs_table"]),
        **ledger,
        "unexpected": len(present - expected),
        # Every row was counted as loaded exactly once, or (streaming, after a crash between a
        # page's commit and its heartbeat) counted as a duplicate skipped on the retry.
        "reconciled": (balanced and total["loaded"] <= len(ids) <= total["loaded"] + total["updated"] + total["unchanged"]
                       and ledger["ledger_rows_vs_table"] == 0
                       and (expected_rejects is None or rejects_in_table == expected_rejects)),
        "rejects_in_table": rejects_in_table,
        "expected_rejects": expected_rejects,
        "runs": sum(s.get("runs", 1) for s in sums),
        **total,
    }
    return figures


def assert_exact(figures: dict, context: str = "") -> None:
    """The assertions every case ends with, each saying what it saw."""
    where = f" ({context})" if context else ""
    assert figures["lost"] == 0, f"{figures['lost']} expected events are missing from the table{where}"
    assert figures["doubled"] == 0, f"{figures['doubled']} events are in the table more than once{where}"
    assert figures["unexpected"] == 0, f"{figures['unexpected']} events in the table were never expected{where}"
    assert figures["reconciled"], (
        f"the books do not balance{where}: extracted {figures['extracted']}, loaded {figures['loaded']}, "
        f"rejected {figures['rejected']}, duplicates skipped {figures['unchanged']}; "
        f"rejects table {figures['rejects_in_table']} (expected {figures['expected_rejects']})")


def all_workflows() -> list:
    """Every workflow type a worker registers, so any recorded history finds its code."""
    from tests.test_replay import all_workflows as every

    return every()


async def replay(client: Client, workflow_id: str) -> int:
    """Replay every run of `workflow_id` against today's workflow code; returns how many runs."""
    runs = await histories(client, workflow_id)
    replayer = Replayer(workflows=all_workflows(), data_converter=client.data_converter)
    for history in runs:
        await replayer.replay_workflow(history)
    return len(runs)


async def progress_of(client: Client, workflow_id: str) -> dict | None:
    """The latest run's progress, or None while no worker can answer."""
    try:
        return await client.get_workflow_handle(workflow_id).query("progress")
    except Exception:  # noqa: BLE001 - no live worker yet, or a run is being replaced
        return None


async def wait_for_extracted(client: Client, workflow_id: str, at_least: int, result: asyncio.Future | None,
                             why: str, timeout: float = 240) -> dict:
    """The progress once the flow has extracted `at_least` records (and is not done): the moment to
    inject `why`. Fails if the flow finishes first, or `timeout` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        progress = await progress_of(client, workflow_id)
        if progress and progress["extracted"] >= at_least and not progress["done"]:
            return progress
        if (result is not None and result.done()) or (progress and progress["done"]):
            raise AssertionError(f"the flow finished before {why} (extracted {at_least:,}); {result!r}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"the flow did not reach {at_least:,} extracted records within {timeout}s ({why})")


async def retried_activities(client: Client, workflow_id: str) -> int:
    """Activities that needed more than one attempt, over every run of the flow."""
    retried = 0
    for history in await histories(client, workflow_id):
        for event in history.events:
            if (event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                    and event.activity_task_started_event_attributes.attempt > 1):
                retried += 1
    return retried


async def stuck(client: Client, workflow_ids: Iterable[str]) -> str:
    """Where each flow stands, for the message of a test whose flows did not finish in time: its
    status and progress, versioning, pending workflow task, last history events and each pending
    activity (attempt, state, last heartbeat, last failure); then the stacks of this process's
    threads (an in-process worker's activities among them)."""
    lines = []
    for workflow_id in workflow_ids:
        handle = client.get_workflow_handle(workflow_id)
        try:
            description = await handle.describe()
        except Exception as exc:  # noqa: BLE001 - a report, not a check
            lines.append(f"{workflow_id}: describe failed: {exc!r}")
            continue
        raw = description.raw_description
        info = raw.workflow_execution_info
        lines.append(f"{workflow_id}: {description.status.name if description.status else '?'}, "
                     f"progress {await progress_of(client, workflow_id)}")
        lines.append(f"  deployment {info.worker_deployment_name!r}, versioning "
                     f"{' '.join(str(info.versioning_info).split()) or '-'}")
        if raw.HasField("pending_workflow_task"):
            task = raw.pending_workflow_task
            lines.append(f"  workflow task: {PendingWorkflowTaskState.Name(task.state)}, attempt {task.attempt}")
        try:
            events = (await handle.fetch_history()).events
            lines.append("  last events: " + ", ".join(
                f"{EventType.Name(e.event_type).removeprefix('EVENT_TYPE_')} {e.event_time.ToDatetime():%H:%M:%S}"
                for e in events[-8:]))
        except Exception as exc:  # noqa: BLE001 - a report, not a check
            lines.append(f"  history: {exc!r}")
        for pending in raw.pending_activities:
            beat = pending.last_heartbeat_time.ToDatetime().isoformat() if pending.HasField(
                "last_heartbeat_time") else None
            lines.append(f"  {pending.activity_type.name} #{pending.activity_id}: attempt {pending.attempt}, "
                         f"{PendingActivityState.Name(pending.state)}, last heartbeat {beat}, "
                         f"last failure {pending.last_failure.message[:300]!r}")
    with tempfile.TemporaryFile("w+") as out:
        faulthandler.dump_traceback(out, all_threads=True)
        out.seek(0)
        lines.append(out.read())
    return "\n".join(lines)


async def within(awaitable, timeout: float, client: Client, workflow_ids: Iterable[str]):
    """`await awaitable`; past `timeout` seconds, fail saying where each flow stands (`stuck`)."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"the flows did not finish within {timeout:g} s:\n"
                             + await stuck(client, workflow_ids)) from None
