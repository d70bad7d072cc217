"""The benchmark's replay row (scripts/bench.py --only replay): one StreamingETLFlow of the GitHub
source over a year of the fixture repository's activity, three times on the same worker processes'
settings: archiving from the fixture GitHub API on loopback, reading the fixture plainly, and
replaying from the archive with the fixture stopped (the medians of `ROUNDS` of the last two).
Records per second of each, each into an empty events table (the archive stays beside it). The
fixture answers on loopback in a millisecond or so; a real API's 100-500 ms a request is what
replay saves in practice, so this row is its worst case."""

from __future__ import annotations

import asyncio
import time

from etl.core.settings import Settings
from etl.store.db import Database

REPO = "octo-org/hello-world"
PER_PAGE = 10
"""Items per page of the fixture API: a year of the repository is then some 150 requests."""
ROUNDS = 3
"""Fixture reads and replays each, after one archiving read: the row shows each one's median."""
ARGS = {"owner": "octo-org", "repo": "hello-world", "since": "2024-01-01", "until": "2025-02-01"}


async def bench_replay(settings: Settings, env: dict, workers: int, flow_fleet) -> dict:
    """`flow_fleet`: bench.py's, which makes the flow's table, task queue and worker processes."""
    from etl.launch.plan import plan_flow, start_flow
    from etl.runtime.client import connect
    from sources.github.fixture.server import GitHubFixture

    fixture = GitHubFixture(seed=7, repos=(REPO,), max_per_page=PER_PAGE).start()
    flow_settings, queue, fleet = flow_fleet(settings, env, "replay", "streaming_worker", workers, 1,
                                             GITHUB_API_URL=fixture.url, GITHUB_TOKEN="bench-token-0000")
    db = Database.get(flow_settings)
    table = flow_settings.events_table
    runs: dict[str, list[dict]] = {"archive": [], "fixture": [], "replay": []}
    try:
        client = await connect(settings)
        await asyncio.sleep(2)  # let the workers connect and poll
        for n, (run, options) in enumerate([("archive", {"archive": True})] + [("fixture", {})] * ROUNDS
                                           + [("replay", {"replay": True})] * ROUNDS):
            if run == "replay":
                fixture.stop()  # any request would fail now
            db.run(lambda cur: cur.execute(f'DELETE FROM "{table}"'))
            plan = plan_flow(flow_settings, "github-issues", ARGS, streaming=True, task_queue=queue,
                             workflow_id=f"bench-{queue}-{n}", chunks_in_flight=workers, **options)
            start = time.perf_counter()
            handle, _ = await start_flow(client, plan)
            result = asyncio.ensure_future(handle.result())
            while not result.done():
                fleet.check()
                await asyncio.wait([result], timeout=0.05)
            seconds = time.perf_counter() - start
            summary = result.result()
            runs[run].append({"records": summary.extracted, "seconds": round(seconds, 3),
                              "records_per_s": round(summary.extracted / seconds),
                              "from_archive": summary.from_archive})
    finally:
        fleet.stop()
        fixture.stop()
    figures = {run: sorted(found, key=lambda f: f["records_per_s"])[len(found) // 2] for run, found in runs.items()}
    figures["ratio"] = round(figures["replay"]["records_per_s"] / figures["fixture"]["records_per_s"], 2)
    figures["rounds"] = ROUNDS
    return figures
