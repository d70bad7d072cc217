"""Archive and replay, end to end: each bundled source's flow archives its answers from the fixture,
then replays with the fixture stopped (so any network call would fail) through both workflows,
and the events table holds the same rows; a changed mapping re-derives every event from the
archive with no request to the source; no secret reaches the archive, the histories or the logs.

Replays of an unchanged mapping go into a fresh events table (the first run's rows removed, the
archive kept), so the rows they load are compared with the first run's; a changed mapping is
replayed in place with `load_mode="upsert"`, which updates every row it changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets

import pytest
from temporalio.client import WorkflowFailureError

from etl.runtime.history import histories
from etl.store.archive import Archive
from sources.github.fixture.server import GitHubFixture
from sources.launchpad import client as lp_client
from sources.launchpad.fixture import FixtureService, write_credentials
from tests.sources.test_github import REPO, args_for
from tests.sources.test_launchpad import expected as lp_expected
from tests.sources.test_launchpad import query as lp_query

TOKEN = "ghp_canary" + secrets.token_hex(12)
ROWS = ("event_id, source_kind_id, parent_item_id, event_type, relation_type, employee_id, event_time_utc, week, "
        "timezone, event_time, event_properties::text, relation_properties::text, metrics::text")


@pytest.fixture
def github():
    with GitHubFixture(seed=11, repos=(REPO,), max_per_page=5, require_token=TOKEN) as fixture:
        yield fixture


@pytest.fixture
def lp():
    with FixtureService(seed=0) as service:
        yield service


@pytest.fixture
def settings(stack, table_name, github, lp, tmp_path):
    """The suite's settings (see conftest), pointed at this test's fixtures, with a GitHub token."""
    return stack.settings.replace(events_table=table_name).with_env(
        GITHUB_API_URL=github.url, GITHUB_TOKEN=TOKEN, LP_WEB_ROOT=lp.root, LP_CACHE_DIR=str(tmp_path / "lp"))


def rows(db) -> list[tuple]:
    """Every event as it is stored (ids and provenance aside), in order."""
    return db.run(lambda cur: (cur.execute(f'SELECT {ROWS} FROM "{db.tables.name}" ORDER BY event_id'),
                               cur.fetchall())[1])


def empty_events(db) -> None:
    """A fresh events table for the replay; the archive beside it stays."""
    db.run(lambda cur: cur.execute(f'DELETE FROM "{db.tables.name}"'))


async def replay_everywhere(run_flow, db, strategy: str, args: dict, first: list[tuple]) -> list[dict]:
    """Replay the flow through ETLFlow and StreamingETLFlow, each into a fresh table: the rows are the first run's."""
    summaries = []
    for streaming in (False, True):
        empty_events(db)
        summary = await asyncio.wait_for(run_flow(strategy, args, streaming=streaming, replay=True,
                                                  **({"pages_per_call": 2} if streaming else {"batch_size": 7})),
                                         timeout=120)
        assert rows(db) == first, f"{'StreamingETLFlow' if streaming else 'ETLFlow'} replayed other rows"
        assert summary["loaded"] == len(first) and summary["from_archive"] > 0
        summaries.append(summary)
    return summaries


async def test_github_flow_replays_from_the_archive_with_the_fixture_stopped(run_flow, db, github):
    args = args_for(github)
    archived = await run_flow("github-issues", args, archive=True, batch_size=7)
    first = rows(db)
    assert archived["loaded"] == len(first) > 10 and archived["from_archive"] == 0
    shelves = Archive(db).shelves()
    assert [(s.source, s.strategy) for s in shelves] == [("github", "github-issues")]
    assert shelves[0].answers == len({r.path for r in github.requests}), "one answer kept per request"
    asked = len(github.requests)
    github.stop()

    batch, streaming = await replay_everywhere(run_flow, db, "github-issues", args, first)
    assert len(github.requests) == asked, "the stopped fixture was asked nothing"
    assert batch["from_archive"] == asked, "the same batches read the same answers, all from the archive"


async def test_launchpad_flow_replays_from_the_archive_with_the_fixture_stopped(run_flow, db, lp):
    args = lp_query("bob").to_dict()
    archived = await run_flow("launchpad-bugs", args, archive=True, batch_size=5)
    first = rows(db)
    assert {r[0] for r in first} == {e[0] for e in lp_expected(lp.world, "launchpad-bugs", "bob")}
    assert archived["loaded"] == len(first) > 5
    kept = Archive(db).entries("launchpad", limit=10_000)
    assert any(e.request.accept == "application/vnd.sun.wadl+xml" for e in kept), "the login's WADL is archived"
    asked = len(lp.paths)
    lp.stop()
    lp_client.IDLE.clear()  # as on a fresh worker: the replay logs in from the archive too

    await replay_everywhere(run_flow, db, "launchpad-bugs", args, first)
    assert len(lp.paths) == asked, "the stopped fixture was asked nothing"


async def test_a_changed_mapping_is_rederived_from_the_archive_without_asking_the_source(
        run_flow, db, github, monkeypatch):
    from sources.github.flows import issues

    args = args_for(github)
    await run_flow("github-issues", args, archive=True, streaming=True)
    before = rows(db)
    asked = len(github.requests)
    mapped = issues.record

    def with_a_new_property(*a, **kw):  # the mapping gains a property, as a source's next version would
        event = mapped(*a, **kw)
        event["event_properties"]["comment_count"] = a[1].get("comments", 0)
        return event

    monkeypatch.setattr(issues, "record", with_a_new_property)
    summary = await run_flow("github-issues", args, replay=True, streaming=True, load_mode="upsert")

    after = rows(db)
    assert len(github.requests) == asked, "the replay asked GitHub nothing"
    assert summary["updated"] == len(after) == len(before) > 10 and summary["loaded"] == 0
    assert all('"comment_count":' in r[10] for r in after), "every event carries the new property"
    assert not any('"comment_count":' in r[10] for r in before)
    assert [r[:10] + r[11:] for r in after] == [r[:10] + r[11:] for r in before], "the rest is as it was"


async def test_a_request_the_archive_cannot_answer_fails_the_replay_at_once(flow_runner, github):
    handle = await flow_runner.start("github-issues", args_for(github), replay=True)
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), timeout=60)
    cause = failed.value.cause.cause
    assert cause.type == "ArchiveMiss" and cause.non_retryable
    assert "the archive holds no answer from github to GET /repos/octo-org/hello-world/issues?" in cause.message
    assert "--archive" in cause.message and "run_flow.py github-issues --arg owner=octo-org" in cause.message
    assert github.requests == [], "a replay opens no connection"
    described = await handle.describe()
    assert (await described.memo())["replay"] == {"from": "source archive", "as_of": "newest"}, "the UI shows a replay"


async def test_no_secret_reaches_the_archive_the_histories_or_the_logs(client, settings, task_queue, db, github,
                                                                       lp, tmp_path, caplog):
    """A canary GitHub token and the Launchpad credentials file's OAuth token and secret are used by
    archiving flows of both sources and a replay; none of them is in any column of the archive,
    any decompressed body, any event of the flows' histories, or any log line."""
    from tests.flows import FlowRunner

    credentials = write_credentials(str(tmp_path / "lp-credentials.txt"))
    needles = {"GITHUB_TOKEN": TOKEN, "LP OAuth token": "fixture-token", "LP OAuth secret": "fixture-secret"}
    caplog.set_level(logging.DEBUG)
    lp_client.IDLE.clear()
    async with FlowRunner(client, settings.with_env(LP_CREDENTIALS_FILE=credentials), task_queue) as runner:
        gh = await runner.start("github-pull_requests", args_for(github), archive=True, batch_size=7)
        lp_flow = await runner.start("launchpad-questions", lp_query("alice").to_dict(), archive=True,
                                     streaming=True)
        await asyncio.wait_for(asyncio.gather(gh.result(), lp_flow.result()), timeout=180)
        replayed = await runner.start("github-pull_requests", args_for(github), replay=True, streaming=True)
        assert (await asyncio.wait_for(replayed.result(), timeout=120)).from_archive > 0

    archive = Archive(db)
    kept = [archive.entry(e.id) for e in archive.entries(limit=10_000)]
    assert {e.source for e in kept} == {"github", "launchpad"}
    table = db.run(lambda cur: (cur.execute(f'SELECT a::text FROM "{db.tables.name}_archive" AS a'),
                                cur.fetchall())[1])
    found = [f"{name} in the archive" for name, value in needles.items()
             if any(value.encode() in e.body or value in f"{e.request} {e.headers}" for e in kept)
             or any(value in row[0] for row in table)]
    for handle in (gh, lp_flow, replayed):
        for history in await histories(client, handle.id):
            found += [f"{name} in {handle.id}" for name, value in needles.items()
                      if any(value.encode() in event.SerializeToString() for event in history.events)]
    found += [f"{name} in the log" for name, value in needles.items() if value in caplog.text]
    assert found == []
    assert "HTTP Request: GET" in caplog.text, "the worker's logs were captured, the client's requests among them"


async def test_workers_with_source_archive_on_archive_every_flow(client, settings, task_queue, db, github):
    from etl import metrics
    from tests.flows import FlowRunner

    before = metrics.REGISTRY.get_sample_value("etl_archive_answers_total", {"use": "archived"}) or 0
    async with FlowRunner(client, settings.replace(source_archive=True), task_queue) as runner:
        summary = await runner.run("github-pull_requests", args_for(github), streaming=True)  # no --archive
    assert summary["loaded"] > 0
    shelves = Archive(db).shelves()
    assert [(s.source, s.strategy, s.answers) for s in shelves] == [
        ("github", "github-pull_requests", len({r.path for r in github.requests}))]
    after = metrics.REGISTRY.get_sample_value("etl_archive_answers_total", {"use": "archived"})
    assert after - before >= shelves[0].answers
