"""The GitHub source against the fixture GitHub API on loopback, with real httpx over real HTTP.

The expected events come from the fixture's ground truth (`RepoData.acts`: who did what
when), never from the flows' own reading of GitHub JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
from psycopg2 import sql

from etl.core.errors import QueryError, SourceError, SourceUnavailable
from etl.core.extract import ExtractStrategy, Page
from etl.core.query import QueryFactory
from etl.core.settings import PROJECT_ROOT, settings_from_env
from etl.testing.history import history_text
from sources.github.fixture.data import Act
from sources.github.fixture.server import GitHubFixture

REPO = "octo-org/hello-world"
TOKEN = "test-token-4f1b9c2e"
FLOWS = ("github-issues", "github-pull_requests")
KINDS = {"github-issues": "issue_", "github-pull_requests": "pull_request_"}
SUFFIX = {
    "issue_opened": "i{n}-opened",
    "issue_closed": "i{n}-closed-{ref}",
    "issue_comment": "i{n}-c{ref}",
    "pull_request_opened": "p{n}-opened",
    "pull_request_reviewed": "p{n}-r{ref}",
    "pull_request_merged": "p{n}-merged",
    "pull_request_comment": "p{n}-c{ref}",
    "pull_request_review_comment": "p{n}-rc{ref}",
}


@pytest.fixture
def github():
    # Five items a page makes every list, and the busiest sub-collections, span several pages.
    with GitHubFixture(seed=7, repos=(REPO,), max_per_page=5) as fixture:
        yield fixture


@pytest.fixture
def gh_settings(github):
    return settings_from_env({"GITHUB_API_URL": github.url, "GITHUB_TOKEN": TOKEN})


def acts(github: GitHubFixture) -> list[Act]:
    return github.data[REPO].acts


def window(github: GitHubFixture) -> tuple[datetime, datetime]:
    """Since and until at the times of real acts, so both edges of [since, until) are tested."""
    times = sorted(a.at for a in acts(github))
    return times[len(times) // 4], times[3 * len(times) // 4]


def args_for(github: GitHubFixture, owner: str = "octo-org", repo: str = "hello-world") -> dict:
    since, until = window(github)
    return {"owner": owner, "repo": repo, "since": since.isoformat(), "until": until.isoformat()}


def expected(github: GitHubFixture, flow: str) -> set[tuple]:
    since, until = window(github)
    return {(f"gh-{REPO}-" + SUFFIX[a.kind].format(n=a.number, ref=a.ref), a.kind, a.actor, a.at)
            for a in acts(github) if a.kind.startswith(KINDS[flow]) and since <= a.at < until}


def extract(flow: str, args: dict, settings, cursor: str | None = None) -> list[Page]:
    query = QueryFactory.create("github", args)
    return list(ExtractStrategy.create(flow).pages(query, cursor, settings))


def records(pages: list[Page]) -> list[dict]:
    return [r for page in pages for r in page.records]


def emitted(pages: list[Page]) -> set[tuple]:
    return {(r["event_id"], r["relation_type"], r["employee_id"], datetime.fromisoformat(r["event_time_utc"]))
            for r in records(pages)}


@pytest.mark.parametrize("flow", FLOWS)
def test_flow_emits_exactly_the_acts_in_the_window(github, gh_settings, flow):
    pages = extract(flow, args_for(github), gh_settings)

    want = expected(github, flow)
    assert emitted(pages) == want
    assert len(records(pages)) == len(want), "no event is emitted twice"
    since, until = window(github)
    ours = [a for a in acts(github) if a.kind.startswith(KINDS[flow])]
    assert any(a.at < since for a in ours) and any(a.at >= until for a in ours), "out-of-range acts exist"
    assert all(r["timezone"] is None and r["source_kind_id"] == "github" for r in records(pages))
    assert any(r["employee_id"] != r["event_properties"]["author"] for r in records(pages)), \
        "other people's acts on an item are theirs"
    assert len(pages) > 2
    listing = [r.path for r in github.requests if "/issues?" in r.path and "since=" in r.path]
    assert len(set(listing)) >= 3, "the list is read in several requests, each from the last key read"
    assert any(("/comments?" in r.path or "/reviews?" in r.path) and "page=2" in r.path for r in github.requests)


def test_owner_and_repo_are_case_insensitive(github, gh_settings):
    pages = extract("github-issues", args_for(github, "Octo-Org", "Hello-World"), gh_settings)
    assert emitted(pages) == expected(github, "github-issues")


@pytest.mark.parametrize("per_page", [5, 25])
@pytest.mark.parametrize("flow", FLOWS)
def test_resuming_from_a_cursor_yields_the_rest(github, gh_settings, flow, per_page):
    github.max_per_page = per_page  # 25 items a page, 10 a chunk: cursors point inside list pages
    full = extract(flow, args_for(github), gh_settings)
    assert len(full) >= 2
    if per_page == 25:
        assert "#" in full[0].cursor, "the first cursor points inside the first list page"
    for k in sorted({0, (len(full) - 1) // 2, len(full) - 2}):  # the last cursor means "done"
        rest = extract(flow, args_for(github), gh_settings, cursor=full[k].cursor)
        assert records(rest) == records(full[k + 1:])


def test_429_with_retry_after_is_waited_out(github, gh_settings):
    github.inject("429", count=2, after=3, seconds=1)
    started = time.monotonic()
    pages = extract("github-pull_requests", args_for(github), gh_settings)
    assert emitted(pages) == expected(github, "github-pull_requests")
    assert [r.status for r in github.requests].count(429) == 2
    assert time.monotonic() - started >= 2, "each Retry-After: 1 was honoured"


@pytest.mark.parametrize("announce", [True, False], ids=["remaining-0", "403-first"])
def test_spent_rate_limit_is_waited_out_until_the_reset(github, gh_settings, announce):
    github.inject("rate_limit", after=4, seconds=1.5, announce=announce)
    started = time.monotonic()
    pages = extract("github-issues", args_for(github), gh_settings)
    assert emitted(pages) == expected(github, "github-issues")
    assert time.monotonic() - started >= 1
    # Told that the quota is spent, the client waits instead of collecting a 403 first.
    assert [r.status for r in github.requests].count(403) == (0 if announce else 1)


def test_a_rate_limit_reset_too_far_off_is_left_to_temporal(github, gh_settings):
    github.inject("rate_limit", after=2, seconds=3600, announce=False)
    with pytest.raises(SourceUnavailable, match="rate limited") as caught:
        extract("github-issues", args_for(github), gh_settings)
    assert caught.value.retryable and not isinstance(caught.value, SourceError)
    assert 3500 < caught.value.retry_after_s <= 3602, "Temporal is told to wait until the reset"


def test_5xx_is_retried_then_left_to_temporal(github, gh_settings):
    github.inject("5xx", count=2, after=2)
    assert emitted(extract("github-issues", args_for(github), gh_settings)) == expected(github, "github-issues")

    github.inject("5xx", count=1000)
    with pytest.raises(SourceUnavailable, match="502") as caught:
        extract("github-issues", args_for(github), gh_settings)
    assert caught.value.retryable


@pytest.mark.parametrize("token", ["wrong-token", None])
def test_bad_or_missing_token_is_a_source_error(github, token):
    github.require_token = TOKEN
    env = {"GITHUB_API_URL": github.url, **({"GITHUB_TOKEN": token} if token else {})}
    with pytest.raises(SourceError, match="401.*set GITHUB_TOKEN") as caught:
        extract("github-issues", args_for(github), settings_from_env(env))
    assert caught.value.status == 401
    assert len(github.requests) == 1, "a 401 is not retried"


def test_unknown_repository_is_a_source_error(github, gh_settings):
    with pytest.raises(SourceError, match="404.*check the query's owner and repo") as caught:
        extract("github-pull_requests", args_for(github, repo="no-such-repo"), gh_settings)
    assert caught.value.status == 404


@pytest.mark.parametrize("flow", FLOWS)
def test_the_token_travels_only_in_the_authorization_header(github, gh_settings, flow):
    github.require_token = TOKEN
    pages = extract(flow, args_for(github), gh_settings)
    assert records(pages)
    assert TOKEN not in json.dumps(records(pages)) + json.dumps([p.cursor for p in pages])
    assert {r.authorization for r in github.requests} == {f"Bearer {TOKEN}"}
    assert not any(TOKEN in r.path for r in github.requests)


def test_a_cursor_cannot_send_the_token_elsewhere(github, gh_settings):
    with pytest.raises(SourceError, match="not a GitHub cursor"):
        extract("github-issues", args_for(github), gh_settings, cursor="//evil.example/repos/x/y/issues")
    assert github.requests == []


@pytest.mark.parametrize("args, field, message", [
    ({"owner": "octo-org/hello-world"}, "owner", "give the owner and the repository separately"),
    ({"owner": "-octo"}, "owner", "not a GitHub user or organisation name"),
    ({"repo": "a b"}, "repo", "not a GitHub repository name"),
    ({"since": "2024-05-01", "until": "2024-05-01"}, "until", "not after since"),
])
def test_bad_queries_name_the_field(args, field, message):
    base = {"owner": "octo-org", "repo": "hello-world", "since": "2024-01-01", "until": "2024-12-31"}
    with pytest.raises(QueryError, match=message) as caught:
        QueryFactory.create("github", {**base, **args})
    assert caught.value.field == field


def test_query_dates_mean_midnight_utc():
    query = QueryFactory.create("github", {"owner": "o", "repo": "r", "since": "2024-03-01", "until": "2024-04-01"})
    assert query.since == datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert query.to_summary_base() == {"owner": "o", "repo": "r", "since": "2024-03-01T00:00:00+00:00",
                                       "until": "2024-04-01T00:00:00+00:00"}


def test_discovery_registers_the_flows_but_not_the_fixture():
    code = ("import sys; from etl.core.extract import ExtractStrategy; "
            "names = [s.name for s in ExtractStrategy.all()]; "
            "print('github-issues' in names, 'github-pull_requests' in names, "
            "any(m.startswith('sources.github.fixture.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"]


def test_the_fixture_runs_standalone_on_loopback():
    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "sources.github.fixture", "--max-per-page", "3"],
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        response = httpx.get(f"{url}/repos/{REPO}/issues?state=all")
        assert response.status_code == 200 and len(response.json()) == 3
        assert 'rel="next"' in response.headers["Link"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- end to end: real workers, real Temporal, real PostgreSQL ---------------------------------

@pytest.fixture
def settings(stack, table_name, github):
    """The suite's settings (see conftest), pointed at this test's fixture GitHub, with a token."""
    return stack.settings.replace(events_table=table_name).with_env(GITHUB_API_URL=github.url, GITHUB_TOKEN=TOKEN)


def loaded(db) -> set[tuple]:
    query = f'SELECT event_id, relation_type, employee_id, event_time_utc, timezone FROM "{db.tables.name}"'
    rows = db.run(lambda cur: (cur.execute(query), cur.fetchall())[1])
    assert {row[4] for row in rows} <= {"UTC"}, "GitHub knows no zones: events are filed under UTC"
    return {row[:4] for row in rows}


@pytest.mark.parametrize("streaming", [False, True], ids=["ETLFlow", "StreamingETLFlow"])
@pytest.mark.parametrize("flow", FLOWS)
async def test_the_flow_loads_exactly_the_expected_events(run_flow, db, client, github, flow, streaming):
    github.require_token = TOKEN
    github.inject("429", after=5, seconds=1)

    # Small batches put the source's cursors into the batch flow's history.
    summary = await run_flow(flow, args_for(github), streaming=streaming, **({} if streaming else {"batch_size": 20}))

    want = {(event_id, kind, actor, at.replace(tzinfo=None)) for event_id, kind, actor, at in expected(github, flow)}
    assert loaded(db) == want
    assert summary["loaded"] == len(want) and summary["rejected"] == 0
    assert 429 in [r.status for r in github.requests], "the 429 was met and waited out"
    history = history_text(await client.get_workflow_handle(summary["workflow_id"]).fetch_history())
    assert TOKEN not in history
    if not streaming:
        assert "Z#" in history, "the check above reads the cursors (the last key read: updated time#ids)"


# -- the two bugs of issue 13: a far rate-limit reset, and items updated during the walk -------

HOURS = 3


async def pending_retry(handle) -> "object":
    """The flow's first pending activity that has failed and waits to retry."""
    for _ in range(600):
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if pending.HasField("last_failure"):
                return pending
        await asyncio.sleep(0.1)
    raise AssertionError("no activity of the flow failed: the rate limit was never met")


@pytest.mark.parametrize("streaming", [False, True], ids=["ETLFlow", "StreamingETLFlow"])
async def test_a_rate_limit_reset_hours_away_is_waited_out_and_the_flow_completes(
        flow_runner, client, db, github, streaming):
    """GitHub says the quota resets in three hours. The client cannot sleep that long, and a
    retry every minute would spend the activity's 50 attempts in about 44 minutes and fail the
    flow; so the wait goes to Temporal as the activity's next retry delay: one attempt, however
    long. The test does not wait three hours: it checks the retry Temporal scheduled, then
    plays the reset (the quota comes back, and Temporal's ResetActivity runs the waiting retry
    now, as the timer firing would) and checks that the flow completes with every event."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import ResetActivityRequest

    github.inject("rate_limit", after=3, seconds=HOURS * 3600, announce=False)
    handle = await flow_runner.start("github-issues", args_for(github), streaming=streaming, batch_size=20)

    pending = await pending_retry(handle)
    waits = pending.next_attempt_schedule_time.ToDatetime(timezone.utc) - datetime.now(timezone.utc)
    assert HOURS * 3600 - 120 < waits.total_seconds() <= HOURS * 3600 + 2, \
        f"Temporal waits until the reset, not a minute: {pending.last_failure.message}"
    assert pending.attempt <= 2, "the wait costs one attempt of the retry policy"
    # (The server keeps a failure only up to a size; a longer one, with its stack traces, is shown
    # as "Failure exceeds size limit." but was retried with its own delay, as checked above.)

    github.faults.clear()  # three hours later: the quota is back, and the fleet's record of the reset is past
    db.run(lambda cur: cur.execute(sql.SQL("UPDATE {} SET spent_until = NULL").format(db.tables.budgets)))
    await client.workflow_service.reset_activity(ResetActivityRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=handle.id),
        id=pending.activity_id, identity="test: the reset time has come"))
    summary = dataclasses.asdict(await asyncio.wait_for(handle.result(), timeout=120))

    want = {(event_id, kind, actor, at.replace(tzinfo=None)) for event_id, kind, actor, at in
            expected(github, "github-issues")}
    assert loaded(db) == want and summary["loaded"] == len(want)
    assert 403 in [r.status for r in github.requests]


def touch_first_listed(github: GitHubFixture, since: datetime, count: int) -> list[int]:
    """Move the `count` least recently updated items (updated since `since`) to the end of the
    list, as people commenting on them during the walk would. Returns their numbers."""
    repo = github.data[REPO]
    listed = sorted((i for i in repo.issues if datetime.fromisoformat(i["updated_at"]) >= since),
                    key=lambda i: (i["updated_at"], i["number"]))
    touched = [item["number"] for item in listed[:count]]
    for k, item in enumerate(listed[:count]):
        item["updated_at"] = f"2025-01-01T00:00:{k:02d}Z"
        if item["number"] in repo.pulls:
            repo.pulls[item["number"]]["updated_at"] = item["updated_at"]
    return touched


@pytest.mark.parametrize("flow", FLOWS)
async def test_items_updated_during_the_walk_are_all_loaded_exactly_once(run_flow, db, github, flow):
    """After the first list page is read, the items on it are updated (moved to the end of the
    list sorted by update time). Paging by page number then skips as many items at the next
    page boundary (issues), or never reaches the moved ones (pull requests newest first); the
    walk by key reads every item, and the ones read twice are loaded once."""
    since, _ = window(github)
    per_page = github.max_per_page
    repo = github.data[REPO]
    listed = sorted((i for i in repo.issues if datetime.fromisoformat(i["updated_at"]) >= since),
                    key=lambda i: (i["updated_at"], i["number"]))
    at_risk = {i["number"] for i in listed[:2 * per_page]}
    kind = KINDS[flow]
    assert any(a.number in at_risk and a.kind.startswith(kind) and since <= a.at < window(github)[1]
               for a in acts(github)), "the items a page-number walk would skip hold events of this flow"
    fired = []

    def touch_once(seen) -> None:
        if not fired and ("/issues?" in seen.path or "/pulls?" in seen.path):
            fired.append(touch_first_listed(github, since, per_page))

    github.hooks.append(touch_once)
    summary = await run_flow(flow, args_for(github), batch_size=20)

    assert fired, "the list was read, and changed under the walk"
    want = {(event_id, k, actor, at.replace(tzinfo=None)) for event_id, k, actor, at in expected(github, flow)}
    assert loaded(db) == want, f"missing: {sorted(e[0] for e in want - loaded(db))[:5]}"
    assert summary["loaded"] == len(want) and summary["rejected"] == 0
