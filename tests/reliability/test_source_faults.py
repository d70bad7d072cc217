"""Source faults: 20% of the requests to the fixture GitHub and Launchpad services fail (5xx, 429
with Retry-After, stalls past the client's timeout, connections dropped before or during the
answer), and the flows still load exactly the events the fixtures' ground truth implies.

The clients' timeouts are shortened for these tests (0.5 s instead of 30-60 s: LP_TIMEOUT for
Launchpad, GITHUB_TIMEOUT for GitHub) so a stall costs half a
second, not a minute; a normal answer from a loopback fixture takes milliseconds. Flows run on
an in-process worker, which shares the patched module.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timezone

import pytest

from etl.core.extract import Page
from sources.github.fixture.server import GitHubFixture
from tests.flows import FlowRunner
from tests.reliability.chaos_http import ChaosPlan, make_chaotic
from tests.reliability.checks import assert_exact, reconcile, replay, within

RATE = 0.2
TIMEOUT_S = 0.5
STALL_S = 0.8
TOKEN = "reliability-token-9d0c"
#: A run takes under a minute here; past this, the test says where each flow stands.
FLOWS_TIMEOUT_S = 400

GH_REPOS = ("octo-org/hello-world", "octo-org/chaos-monkey")
GH_FLOWS = ("github-issues", "github-pull_requests")
GH_SINCE, GH_UNTIL = datetime(2024, 2, 1, tzinfo=timezone.utc), datetime(2024, 11, 1, tzinfo=timezone.utc)


def github_expected(fixture: GitHubFixture) -> set[str]:
    """Every act in the window, as the event ids the README documents (from the fixture's ground truth)."""
    from tests.sources.test_github import SUFFIX

    return {f"gh-{name}-" + SUFFIX[a.kind].format(n=a.number, ref=a.ref)
            for name, repo in fixture.data.items() for a in repo.acts if GH_SINCE <= a.at < GH_UNTIL}


async def run_all(runner: FlowRunner, flows: list[tuple[str, dict]], streaming: bool,
                  **fields) -> tuple[list[dict], list[str]]:
    handles = [await runner.start(strategy, args, streaming=streaming, heartbeat_timeout_s=10, **fields)
               for strategy, args in flows]
    summaries = await within(asyncio.gather(*(h.result() for h in handles)), FLOWS_TIMEOUT_S, runner.client,
                             [h.id for h in handles])
    return [dataclasses.asdict(s) for s in summaries], [h.id for h in handles]


async def check_and_record(record, db, client, plan: ChaosPlan, expected: set[str], summaries: list[dict],
                           workflow_ids: list[str], seed: int) -> None:
    faults = plan.summary()
    figures = reconcile(db, expected, summaries, expected_rejects=0)
    replayed = sum([await replay(client, wid) for wid in workflow_ids])
    record.record(figures, requests=faults.get("requests", 0), faults=faults, replayed_runs=replayed, seed=seed)
    assert_exact(figures, f"chaos seed {seed}, faults {faults}")
    assert faults.get("faults", 0) >= 0.1 * faults["requests"] > 10, f"too few faults were injected: {faults}"


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_github_flows_survive_20pct_faults(client, stack, table_name, task_queue, db, streaming, case,
                                                 chaos_seed, monkeypatch):
    plan = ChaosPlan(RATE, chaos_seed, STALL_S)
    with GitHubFixture(seed=chaos_seed % 97, repos=GH_REPOS, max_per_page=5, require_token=TOKEN) as gh:
        make_chaotic(gh._httpd, plan)  # noqa: SLF001 - the fixture keeps its server private
        settings = stack.settings.replace(events_table=table_name).with_env(GITHUB_API_URL=gh.url, GITHUB_TOKEN=TOKEN,
                                                                            GITHUB_TIMEOUT=str(TIMEOUT_S))
        flows = [(strategy, {"owner": name.split("/")[0], "repo": name.split("/")[1],
                             "since": GH_SINCE.isoformat(), "until": GH_UNTIL.isoformat()})
                 for name in GH_REPOS for strategy in GH_FLOWS]
        fields = {"chunks_in_flight": 2} if streaming else {"batch_size": 20}
        record = case(f"source-faults-github-{'streaming' if streaming else 'batch'}", "GitHub API: 20% faults",
                      "StreamingETLFlow" if streaming else "ETLFlow",
                      f"{RATE:.0%} of requests to the fixture GitHub API fail: 500/502/503, 429 with Retry-After, "
                      f"stalls past the {TIMEOUT_S} s client timeout, connections dropped before or during the "
                      f"answer (seed {chaos_seed})",
                      flows=len(flows), repos=len(GH_REPOS), per_page=5, **fields)
        async with FlowRunner(client, settings, task_queue) as runner:
            summaries, ids = await run_all(runner, flows, streaming, **fields)
        expected = github_expected(gh)
    await check_and_record(record, db, client, plan, expected, summaries, ids, chaos_seed)


LP_MEMBERS = ("alice",)
@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_launchpad_flows_survive_20pct_faults(client, stack, table_name, task_queue, db, tmp_path, streaming,
                                                    case, chaos_seed):
    from sources.launchpad.fixture import FixtureService
    from tests.sources.test_launchpad import END, FLOWS, START
    from tests.sources.test_launchpad import expected as lp_expected

    plan = ChaosPlan(RATE, chaos_seed, STALL_S)
    with FixtureService(seed=0) as lp:
        make_chaotic(lp._httpd, plan)  # noqa: SLF001 - the fixture keeps its server private
        settings = stack.settings.replace(events_table=table_name).with_env(
            LP_WEB_ROOT=lp.root, LP_TIMEOUT=str(TIMEOUT_S), LP_CACHE_DIR=str(tmp_path / "lp"))
        flows = [(strategy, {"member": member, "data_date_start": START.date().isoformat(),
                             "data_date_end": END.date().isoformat()})
                 for member in LP_MEMBERS for strategy in FLOWS]
        # One page per chunk call: the Launchpad client leaves most failures to Temporal's retry, whose
        # backoff grows with each attempt of a call, so a failure should cost one page, not five.
        fields = {"chunks_in_flight": 2, "pages_per_call": 1} if streaming else {"batch_size": 10}
        record = case(f"source-faults-launchpad-{'streaming' if streaming else 'batch'}",
                      "Launchpad API: 20% faults", "StreamingETLFlow" if streaming else "ETLFlow",
                      f"{RATE:.0%} of requests to the fixture Launchpad (through launchpadlib) fail: 500/502/503, "
                      f"429 with Retry-After, stalls past the {TIMEOUT_S} s client timeout, connections dropped "
                      f"before or during the answer (seed {chaos_seed})",
                      flows=len(flows), members=len(LP_MEMBERS), page_size=lp.page_size, **fields)
        async with FlowRunner(client, settings, task_queue) as runner:
            summaries, ids = await run_all(runner, flows, streaming, **fields)
        expected = {event_id for strategy, args in flows
                    for event_id, *_ in lp_expected(lp.world, strategy, args["member"])}
    await check_and_record(record, db, client, plan, expected, summaries, ids, chaos_seed)


@pytest.mark.parametrize("streaming", [False, True], ids=["batch", "streaming"])
async def test_a_last_page_without_cursor_ends_the_flow(flow_runner, db, streaming):
    """GitHub's last page carries no cursor (None, as etl.core.extract allows). A batch or a chunk call
    that ends exactly on it must finish the flow, not resume from None, the very start."""
    from etl.core import extract
    from sources.synthetic.flows.events import record

    def extract_five_pages(query, cursor, settings):
        for page in range(int(cursor or 0), 5):
            yield Page([record(98, 0.0, i) for i in range(page * 10, page * 10 + 10)],
                       cursor=str(page + 1) if page < 4 else None)

    extract.extract_method("synthetic-fivepages", query_type="synthetic")(extract_five_pages)
    try:
        fields = {"pages_per_call": 5, "chunk_count": 1} if streaming else {"batch_size": 50}
        summary = await asyncio.wait_for(flow_runner.run("synthetic-fivepages", {"count": 50}, streaming=streaming,
                                                         **fields), timeout=120)
    finally:
        extract._STRATEGIES.pop("synthetic-fivepages", None)  # noqa: SLF001
    assert summary["extracted"] == summary["loaded"] == db.count_events() == 50
