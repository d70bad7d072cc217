"""A fleet shares its sources' limits: 4 worker processes at concurrency 4 run three launches
against a fixture GitHub API that allows RATE requests per WINDOW_S seconds and answers 429
beyond, as GitHub does per hour (the window is scaled down from 120 a minute so the test
takes seconds, the semantics unchanged).

Each launch is a fan-out over four repositories: a GitHub flow reads one repository page by
page, so three plain flows would be three clients at a time, too few for the storm that forty
clients of a real fleet make.

With the shared budget, every flow completes, the fixture counts at most one 429 per window of
its own, and no window gets more requests than the limit. With SHARED_BUDGETS=false the same
run shows the storm: each client finds the limit by hitting it.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone

import pytest

from etl.kit.fixture_quota import Quota
from etl.launch.fanout import plan_fanout, submit_fanout
from etl.launch.plan import plan_flow
from etl.workflows.fleet_io import FanOutSummary, child_workflow_id
from sources.github.fixture.server import GitHubFixture
from tests.sources.test_github import SUFFIX
from tests.workers import WorkerProcess

RATE, WINDOW_S = 30, 5.0
WORKERS, CONCURRENCY = 4, 4
SINCE, UNTIL = datetime(2024, 12, 1, tzinfo=timezone.utc), datetime(2025, 1, 1, tzinfo=timezone.utc)
LAUNCHES = [tuple(f"octo-org/repo-{launch}{n}" for n in range(4)) for launch in "abc"]
TOKEN = "fleet-budget-token-52c7"
WAITING = re.compile(r"waiting on GitHub's budget, shared by the fleet")


def expected_ids(fixture: GitHubFixture) -> set[str]:
    return {f"gh-{name}-" + SUFFIX[a.kind].format(n=a.number, ref=a.ref)
            for name, repo in fixture.data.items() for a in repo.acts
            if a.kind.startswith("issue_") and SINCE <= a.at < UNTIL}


async def waiting_notes(client, workflow_ids: list[str], stop: asyncio.Event) -> list[str]:
    """What the running flows' activities say in their heartbeat details about the budget (the UI shows them)."""
    seen: list[str] = []
    while not stop.is_set():
        for wid in workflow_ids:
            try:
                described = await client.get_workflow_handle(wid).describe()
            except Exception:  # noqa: BLE001 - not started yet
                continue
            for pending in described.raw_description.pending_activities:
                for payload in pending.heartbeat_details.payloads:
                    text = payload.data.decode("utf-8", "replace")
                    if WAITING.search(text):
                        seen.append(text)
        await asyncio.sleep(0.3)
    return seen


@pytest.mark.parametrize("shared", [True, False], ids=["shared-budget", "each-client-on-its-own"])
async def test_a_fleet_draws_from_one_budget_one_429_per_reset(client, stack, settings, db, task_queue, tmp_path,
                                                               shared):
    repos = tuple(name for launch in LAUNCHES for name in launch)
    with GitHubFixture(seed=5, repos=repos, require_token=TOKEN) as gh:
        gh.quota = Quota(RATE, WINDOW_S)
        fleet_settings = settings.with_env(GITHUB_API_URL=gh.url, GITHUB_TOKEN=TOKEN, GITHUB_TIMEOUT="10",
                                           GITHUB_RATE_LIMIT=f"{RATE}/{WINDOW_S:g}s", GITHUB_MAX_CONCURRENT="8")
        env = {"SHARED_BUDGETS": "true" if shared else "false"}
        workers = [WorkerProcess(fleet_settings, task_queue, concurrency=CONCURRENCY, extra_env=env,
                                 log_path=tmp_path / f"worker-{i}.log") for i in range(WORKERS)]
        try:
            fanouts = []
            for launch in LAUNCHES:
                plans = [plan_flow(fleet_settings, "github-issues",
                                   {"owner": name.split("/")[0], "repo": name.split("/")[1],
                                    "since": SINCE.isoformat(), "until": UNTIL.isoformat()},
                                   task_queue=task_queue, batch_size=10) for name in launch]
                fanouts.append((plan_fanout(client, plans, concurrency=len(plans), task_queue=task_queue), plans))
            handles = [(await submit_fanout(client, plan))[0] for plan, _ in fanouts]
            children = [child_workflow_id(plan.workflow_id, p.workflow_id) for plan, plans in fanouts for p in plans]
            stop = asyncio.Event()
            watcher = asyncio.create_task(waiting_notes(client, children, stop))
            try:
                summaries: list[FanOutSummary] = await asyncio.wait_for(
                    asyncio.gather(*(h.result() for h in handles)), 400)
            finally:
                stop.set()
                notes = await watcher
        finally:
            for worker in workers:
                worker.terminate()
        windows, expected = gh.quota.windows, expected_ids(gh)

    refused = [w.refused for w in windows]
    sent = [w.requests for w in windows]
    figures = (f"{'shared' if shared else 'unshared'}: {sum(w.answered for w in windows)} answered, "
               f"{sum(refused)} refused (429) in {len(windows)} windows of {WINDOW_S:g} s; "
               f"requests per window {sent}; busiest {WINDOW_S:g} s: {gh.quota.busiest()}; "
               f"waiting notes seen: {len(notes)}")
    print(figures)
    assert all(s.failed == 0 and s.completed == 4 for s in summaries), [s.children for s in summaries]
    assert sum(s.loaded for s in summaries) == db.count_events() == len(expected) > 0
    if shared:
        assert max(refused) <= 1, figures  # one 429 per reset, not one per worker
        assert max(sent) <= RATE, figures  # requests per window at or under the limit
        assert notes, "no activity said it was waiting on the budget"
    else:
        assert sum(refused) > len(windows), figures  # the storm: most windows collect several 429s
