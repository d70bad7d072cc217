"""What the soak checks at the end, from the database and Temporal alone (never the flows' own
summaries), each as a figure and whether it holds:

    lost, doubled, unexpected   the events table against the exact set of event ids the soak's flows
                                should have loaded (synthetic ids computed; fixture ids read again
                                from the fixtures by a plain extract loop); doubled also by the
                                ledger: rows counted as inserted over every run and attempt = rows
    rejects                     the rejects table holds exactly the expected bad records' keys, once
    running                     no flow still running after the drain deadline
    failed                      no flow failed, timed out or was terminated but those meant to;
                                those failed, each within `BAD_FAIL_S` of its start
    windows                     the schedule's completed runs' windows chain from its start: no gap,
                                no overlap
    staging                     staging holds nothing after one sweep
    rss                         no worker's peak RSS passed its MEMORY_LIMIT_MIB (the starved
                                workers' peaks are shown, not checked: starving them is the point)
    histories                   no run's history past its continue-as-new budget (a margin of
                                `BUDGET_SLACK` events: the budget is checked between steps)
    task failures               no WorkflowTaskFailed event in any history (nondeterminism and
                                every other workflow code error)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg2 import sql
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from etl.core.extract import ExtractStrategy
from etl.core.models import transform
from etl.core.query import QueryFactory
from etl.core.times import parse_time
from etl.store.db import Database
from etl.store.rejects import reject_key
from etl.store.staging import Staging
from scripts.soaking.stack import WORKER_MEMORY_MIB, Fleet
from scripts.soaking.workload import BAD_FAIL_S, SCHEDULE_ID, GITHUB_REPO, Launched
from sources.synthetic.flows.events import is_bad, is_hostile, record

BUDGET_SLACK = 200
FLOW_TYPES = ("ETLFlow", "StreamingETLFlow")


@dataclass
class Check:
    name: str
    figure: str
    ok: bool
    detail: str = ""


@dataclass
class Run:
    workflow_id: str
    run_id: str
    type: str
    status: str
    started: datetime
    closed: datetime | None
    window: str | None


def expected_synthetic(launched: Launched) -> tuple[set[str], set[str]]:
    """(event ids, reject keys) of every synthetic query the soak ran: a bad or hostile record is
    what `transform` makes of it here; every other record is its event."""
    ids, keys = set(), set()
    for args in launched.synthetic.values():
        seed, rate, hostile_rate = args["seed"], args["bad_rate"], args.get("hostile_rate", 0.0)
        for i in range(args["count"]):
            if is_bad(seed, rate, i) or is_hostile(seed, hostile_rate, i):
                raw = record(seed, rate, i, hostile_rate)
                events, rejects = transform([raw])
                ids.update(e.event_id for e in events)
                keys.update(reject_key("synthetic-events", r) for r, _ in rejects)
            else:
                ids.add(f"syn-{seed}-{i}")
    return ids, keys


def read_again(settings, flows: list[tuple[str, dict]]) -> tuple[set[str], set[str]]:
    """(event ids, reject keys) of `flows` read again from the fixtures by a plain loop, no Temporal."""
    ids, keys = set(), set()
    seen = set()
    for strategy_name, args in flows:
        marker = (strategy_name, tuple(sorted((k, str(v)) for k, v in args.items())))
        if marker in seen:
            continue
        seen.add(marker)
        strategy = ExtractStrategy.create(strategy_name)
        query = QueryFactory.create(strategy.query_type, args)
        for page in strategy.pages(query, None, settings):
            events, rejects = transform(page.records)
            ids.update(e.event_id for e in events)
            keys.update(reject_key(strategy_name, raw) for raw, _ in rejects)
    return ids, keys


async def list_runs(client: Client) -> list[Run]:
    runs = []
    async for wf in client.list_workflows():
        window = await wf.memo_value("window", None) if wf.workflow_type == "ScheduledFlow" else None
        runs.append(Run(wf.id, wf.run_id, wf.workflow_type, wf.status.name if wf.status else "?", wf.start_time,
                        wf.close_time, window))
    return runs


async def history_figures(client: Client, runs: list[Run]) -> dict:
    """Over every run's history: the longest against its budget, and every workflow task failure."""
    failures, worst, over = [], (0, 0, ""), []
    for run in runs:
        history = await client.get_workflow_handle(run.workflow_id, run_id=run.run_id).fetch_history()
        events = history.events
        budget = 4000
        if events and events[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = events[0].workflow_execution_started_event_attributes.input.payloads
            try:
                decoded = await client.data_converter.decode(payloads)
                if decoded and isinstance(decoded[0], dict):
                    budget = int(decoded[0].get("history_budget") or budget)
            except Exception:  # noqa: BLE001 - an input of another shape: the default budget
                pass
        if len(events) > budget + BUDGET_SLACK:
            over.append(f"{run.workflow_id} ({len(events)} events, budget {budget})")
        if len(events) / budget > worst[0] / max(worst[1], 1):
            worst = (len(events), budget, run.workflow_id)
        for event in events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                attrs = event.workflow_task_failed_event_attributes
                failures.append(f"{run.type} {run.workflow_id}: {attrs.failure.message[:200]}")
    return {"task_failures": failures, "longest": worst, "over_budget": over, "histories": len(runs)}


def window_figures(runs: list[Run], since: datetime | None) -> dict:
    """The completed scheduled runs' windows, in order: gaps and overlaps between neighbours."""
    spans = sorted((parse_time(a), parse_time(b)) for a, b in
                   (r.window.split("..") for r in runs if r.type == "ScheduledFlow" and r.window
                    and r.status == "COMPLETED"))
    gaps = overlaps = 0
    edge = since
    for start, end in spans:
        if edge is not None and start > edge:
            gaps += 1
        elif edge is not None and start < edge:
            overlaps += 1
        edge = end
    return {"windows": len(spans), "gaps": gaps, "overlaps": overlaps, "end": edge if spans else None}


def table_figures(db: Database) -> dict:
    t = db.tables

    def read(cur):
        cur.execute(sql.SQL("SELECT event_id FROM {}").format(t.events))
        ids = [r[0] for r in cur.fetchall()]
        cur.execute(sql.SQL("SELECT reject_key FROM {}").format(t.rejects))
        keys = [r[0] for r in cur.fetchall()]
        cur.execute(sql.SQL("SELECT coalesce(sum(inserted), 0), coalesce(sum(updated), 0) FROM {}").format(t.ledger))
        inserted, updated = cur.fetchone()
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(t.history))
        return ids, keys, int(inserted), int(updated), cur.fetchone()[0]

    ids, keys, inserted, updated, history_rows = db.run(read)
    return {"ids": ids, "keys": keys, "ledger_inserted": inserted, "ledger_updated": updated,
            "history_rows": history_rows}


async def run_checks(client: Client, db: Database, settings, launched: Launched,
                     fleet: Fleet) -> tuple[list[Check], dict]:
    from etl.runtime.sweeper import sweep_once

    await sweep_once(client, Staging(db), settings.staging_retention_s, grace_s=0)
    runs = await list_runs(client)
    windows = window_figures(runs, launched.schedule_since)
    syn_ids, syn_keys = expected_synthetic(launched)
    fixture_flows = list(launched.fixture_flows)
    if windows["end"] is not None:
        owner, repo = GITHUB_REPO
        fixture_flows.append(("github-issues", {"owner": owner, "repo": repo, "since": launched.schedule_since,
                                                "until": windows["end"]}))
    fix_ids, fix_keys = read_again(settings, fixture_flows)
    expected, expected_keys = syn_ids | fix_ids, syn_keys | fix_keys
    table = table_figures(db)
    present = set(table["ids"])
    doubled = max(len(table["ids"]) - len(present), table["ledger_inserted"] - len(table["ids"]))
    histories = await history_figures(client, runs)
    bad = set(launched.bad)
    by_status = lambda *s: [r for r in runs if r.status in s]  # noqa: E731
    running = by_status("RUNNING")
    failed = [r for r in by_status("FAILED", "TIMED_OUT", "TERMINATED", "CANCELED") if r.workflow_id not in bad]
    bad_runs = [r for r in runs if r.workflow_id in bad]
    slow_or_not_failed = [r.workflow_id for r in bad_runs if r.status != "FAILED" or r.closed is None
                          or (r.closed - r.started).total_seconds() > BAD_FAIL_S]
    staging_rows = Staging(db).rows()
    normal = [p for p in fleet.peaks.values() if p.limit_mib >= WORKER_MEMORY_MIB]
    starved = [p for p in fleet.peaks.values() if p.limit_mib < WORKER_MEMORY_MIB]
    peak = max((p.rss_mib for p in normal), default=0.0)
    keys = set(table["keys"])
    flows = [r for r in runs if r.type in FLOW_TYPES]
    longest, budget, longest_id = histories["longest"]
    checks = [
        Check("lost", f"{len(expected - present):,} of {len(expected):,} expected events", not expected - present,
              ", ".join(sorted(expected - present)[:5])),
        Check("doubled", f"{doubled:,} (ledger inserted {table['ledger_inserted']:,}, rows {len(table['ids']):,})",
              doubled == 0),
        Check("unexpected", f"{len(present - expected):,} events never expected", not present - expected,
              ", ".join(sorted(present - expected)[:5])),
        Check("rejects", f"{len(keys & expected_keys):,} of {len(expected_keys):,} expected rejects, "
                         f"{len(expected_keys - keys)} missing, {len(keys - expected_keys)} unexpected",
              keys == expected_keys and len(table["keys"]) == len(keys)),
        Check("running", f"{len(running)} flows still running after the drain deadline", not running,
              ", ".join(f"{r.type} {r.workflow_id}" for r in running[:5])),
        Check("failed", f"{len(failed)} flows failed unexpectedly; {len(bad_runs) - len(slow_or_not_failed)} of "
                        f"{len(bad)} bad queries failed within {BAD_FAIL_S:g} s",
              not failed and not slow_or_not_failed and len(bad_runs) >= len(bad),
              ", ".join([f"{r.type} {r.workflow_id} {r.status}" for r in failed[:5]] + slow_or_not_failed[:5])),
        Check("windows", f"{windows['windows']} windows of {SCHEDULE_ID}, {windows['gaps']} gaps, "
                         f"{windows['overlaps']} overlaps", windows["gaps"] == 0 and windows["overlaps"] == 0
              and windows["windows"] > 0),
        Check("staging", f"{staging_rows} staging rows after the sweep", staging_rows == 0),
        Check("rss", f"peak worker RSS {peak:.0f} MiB (limit {WORKER_MEMORY_MIB}); starved workers "
                     + (", ".join(f"{p.rss_mib:.0f}/{p.limit_mib}" for p in starved) or "none"),
              0 < peak <= WORKER_MEMORY_MIB),
        Check("histories", f"longest history {longest} events of budget {budget} ({longest_id}); "
                           f"{len(histories['over_budget'])} over budget + {BUDGET_SLACK}",
              not histories["over_budget"], ", ".join(histories["over_budget"][:5])),
        Check("task failures", f"{len(histories['task_failures'])} WorkflowTaskFailed events in "
                               f"{histories['histories']} histories", not histories["task_failures"],
              " | ".join(histories["task_failures"][:3])),
    ]
    figures = {"flows": len({r.workflow_id for r in flows}), "flow_runs": len(flows), "workflows": len(runs),
               "events": len(table["ids"]), "updated": table["ledger_updated"], "history_rows": table["history_rows"],
               "rejects": len(table["keys"]), "windows": windows["windows"], "peak_rss_mib": round(peak),
               "bad_queries": len(bad)}
    return checks, figures
