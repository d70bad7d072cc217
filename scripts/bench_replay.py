"""The benchmark's replay row (scripts/bench.py --only replay): one StreamingETLFlow of the GitHub
source over a year of the fixture repository's activity, three times on the same worker processes'
settings: archiving from the fixture GitHub API on loopback, reading the fixture plainly, and
replaying from the archive with the fixture stopped. Records per second of each, each into an
empty events table (the archive stays beside it)."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from etl.core.settings import Settings
from etl.store.db import Database

REPO = "octo-org/hello-world"
ARGS = {"owner": "octo-org", "repo": "hello-world", "since": "2024-01-01", "until": "2025-02-01"}


async def bench_replay(settings: Settings, env: dict, workers: int, fleet_class) -> dict:
    from etl.launch.plan import plan_flow, start_flow
    from etl.runtime.client import connect
    from sources.github.fixture.server import GitHubFixture

    table = f"bench_replay_{uuid.uuid4().hex[:8]}"
    flow_settings = settings.replace(events_table=table)
    db = Database.get(flow_settings)
    db.ensure_schema()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    log_dir = Path(env["ETL_STATE_DIR"]).parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    fixture = GitHubFixture(seed=7, repos=(REPO,), max_per_page=20).start()
    fleet = fleet_class(dict(env, EVENTS_TABLE=table, GITHUB_API_URL=fixture.url, GITHUB_TOKEN="bench-token-0000"),
                        "streaming_worker", queue, workers, 1, log_dir)
    figures = {}
    try:
        client = await connect(settings)
        await asyncio.sleep(2)  # let the workers connect and poll
        for run, options in (("archive", {"archive": True}), ("fixture", {}), ("replay", {"replay": True})):
            if run == "replay":
                fixture.stop()  # any request would fail now
            db.run(lambda cur: cur.execute(f'DELETE FROM "{table}"'))
            plan = plan_flow(flow_settings, "github-issues", ARGS, streaming=True, task_queue=queue,
                             workflow_id=f"bench-{queue}-{run}", chunks_in_flight=workers, **options)
            start = time.perf_counter()
            handle, _ = await start_flow(client, plan)
            result = asyncio.ensure_future(handle.result())
            while not result.done():
                fleet.check()
                await asyncio.wait([result], timeout=0.1)
            seconds = time.perf_counter() - start
            summary = result.result()
            figures[run] = {"records": summary.extracted, "seconds": round(seconds, 2),
                            "records_per_s": round(summary.extracted / seconds), "from_archive": summary.from_archive}
    finally:
        fleet.stop()
        fixture.stop()
    figures["ratio"] = round(figures["replay"]["records_per_s"] / figures["fixture"]["records_per_s"], 2)
    return figures
