"""The source archive's parts: what a request and an answer keep (nothing secret), the table (newest
answer, `as_of`, retention, size on /metrics), the launch options, and `scripts/archive.py`.
The flows themselves archive and replay in tests/sources/test_archive_replay.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from etl import metrics
from etl.core.archive import Answer, Request
from etl.core.errors import ConfigError, FlowFileError
from etl.core.settings import Settings, settings_from_env
from etl.kit.archive import MAX_TARGET, cleaned, request_of
from etl.launch.flow_file import FlowSpec, load_flow_file, plan_all
from etl.launch.plan import plan_flow
from etl.launch.schedules import draft_schedule
from etl.runtime.sweeper import sweep_archive
from etl.store.archive import Archive
from tests.test_cli import NOWHERE, run
from tests.workers import settings_env

SYNTHETIC = {"count": 10, "seed": 1}


# -- what is kept: nothing secret ------------------------------------------------------------------

def test_a_request_is_kept_without_its_host_and_with_secret_parameters_masked():
    request = request_of("get", "https://api.example:8443/v1/items?page=2&access_token=abc123&api_key=k&q=ok",
                         "application/json; charset=utf-8", secrets=["s3cr3t-value"])
    assert request == Request("GET", "/v1/items?page=2&access_token=***&api_key=***&q=ok", "application/json")
    assert request_of("GET", "http://h/p?x=s3cr3t-value", secrets=["s3cr3t-value"]).target == "/p?x=***"
    long = request_of("GET", "http://h/p?q=" + "a" * 5000)
    assert len(long.target) <= MAX_TARGET and "#sha256:" in long.target
    assert long != request_of("GET", "http://h/p?q=" + "a" * 4999 + "b"), "a long target is still told apart"


def test_an_answer_keeps_only_the_headers_a_client_reads_and_no_secret_in_its_body():
    answer = Answer(200, {"Content-Type": "application/json", "Set-Cookie": "session=abc", "Link": "<...>",
                          "X-RateLimit-Remaining": "0", "Authorization": "Bearer tok"},
                    b'{"echo": "token-1234567890", "ok": true}')
    kept = cleaned(answer, ["token-1234567890"])
    assert kept.headers == {"content-type": "application/json", "link": "<...>"}
    assert kept.body == b'{"echo": "***", "ok": true}'


# -- the table --------------------------------------------------------------------------------------

def test_a_replay_reads_the_newest_answer_or_the_newest_before_as_of(db):
    archive = Archive(db)
    request = Request("GET", "/repos/o/r/issues?page=1", "application/json")
    archive.keep("github", "github-issues", "flow-a", request, Answer(200, {}, b"[1]"))
    db.run(lambda cur: cur.execute(f'UPDATE "{db.tables.name}_archive" SET fetched_at = now() - interval \'3 days\''))
    archive.keep("github", "github-issues", "flow-b", request, Answer(200, {}, b"[1, 2]"))

    assert archive.answer("github", request).body == b"[1, 2]"
    two_days_ago = datetime.now(timezone.utc) - timedelta(days=2)
    assert archive.answer("github", request, as_of=two_days_ago).body == b"[1]"
    assert archive.answer("github", request, as_of=two_days_ago - timedelta(days=2)) is None
    assert archive.answer("launchpad", request) is None, "answers are the source's own"
    archive.keep("github", "github-issues", "flow-b", request, Answer(200, {}, b"[1, 2, 3]"))
    assert [s.answers for s in archive.shelves()] == [2], "a flow keeps one answer per request (its latest)"
    assert archive.answer("github", request).body == b"[1, 2, 3]"


async def test_the_sweep_removes_answers_past_retention_and_measures_the_archive(db):
    archive = Archive(db)
    for n in range(3):
        archive.keep("github", "github-issues", f"flow-{n}", Request("GET", f"/p{n}"), Answer(200, {}, b"x" * 1000))
    db.run(lambda cur: cur.execute(f'UPDATE "{db.tables.name}_archive" SET fetched_at = now() - interval \'40 days\' '
                                   "WHERE workflow_id <> 'flow-0'"))
    assert await sweep_archive(archive, 0) == 0, "0 keeps everything"
    assert await sweep_archive(archive, 30) == 2
    assert [e.workflow_id for e in archive.entries()] == ["flow-0"]
    assert metrics.ARCHIVE_BYTES._value.get() == archive.size_bytes() > 0  # noqa: SLF001
    assert "etl_archive_bytes" in metrics.render()


# -- launching: flags, flow files, schedules, settings ------------------------------------------------

def test_a_replay_is_a_flow_of_its_own_and_says_so():
    live = plan_flow(Settings(), "synthetic-events", SYNTHETIC)
    replay = plan_flow(Settings(), "synthetic-events", SYNTHETIC, replay=True, as_of="2024-06-01")
    assert "-replay-" in replay.workflow_id and replay.workflow_id != live.workflow_id
    assert replay.input.replay and replay.input.as_of == "2024-06-01T00:00:00+00:00"
    assert replay.memo()["replay"] == {"from": "source archive", "as_of": "2024-06-01T00:00:00+00:00"}
    assert "replay from the archive as of 2024-06-01" in replay.summary()
    archived = plan_flow(Settings(), "synthetic-events", SYNTHETIC, archive=True)
    assert archived.input.archive and archived.memo()["archive"] is True and "replay" not in archived.memo()


@pytest.mark.parametrize("options, message", [
    ({"archive": True, "replay": True}, "--archive=True is not valid: expected not with --replay"),
    ({"as_of": "2024-06-01"}, "--as-of='2024-06-01' is not valid: expected only with --replay"),
    ({"replay": True, "as_of": "last tuesday"}, "--as-of='last tuesday' is not valid: expected an ISO 8601 date"),
    ({"replay": "yes"}, "--replay='yes' is not valid: expected true or false"),
])
def test_bad_archive_options_are_refused_before_anything_starts(options, message):
    with pytest.raises(ConfigError) as refused:
        plan_flow(Settings(), "synthetic-events", SYNTHETIC, **options)
    assert message in str(refused.value)


@pytest.mark.parametrize("args, message", [
    (["--as-of", "2024-06-01"], "--as-of='2024-06-01' is not valid: expected only with --replay"),
    (["--archive", "--replay"], "expected not with --replay"),
])
def test_run_flow_refuses_bad_archive_flags(args, message):
    result = run(["scripts/run_flow.py", "synthetic-events", *args], NOWHERE, timeout=30)
    assert result.returncode == 2 and message in result.stderr


def test_flow_files_and_schedules_take_the_archive_options(tmp_path):
    path = tmp_path / "flows.yaml"
    path.write_text("- {strategy: synthetic-events, args: {count: 10}, archive: true}\n"
                    "- {strategy: synthetic-events, args: {count: 11}, replay: true, as_of: 2024-06-01}\n")
    plans = plan_all(Settings(), load_flow_file(path))
    assert [(p.input.archive, p.input.replay, p.input.as_of) for p in plans] == [
        (True, False, None), (False, True, "2024-06-01T00:00:00+00:00")]
    path.write_text("- {strategy: synthetic-events, args: {count: 10}, replay: sometimes}\n")
    with pytest.raises(FlowFileError, match=r"flow 1 \(synthetic-events\): --replay='sometimes' is not valid"):
        plan_all(Settings(), load_flow_file(path), source=str(path))
    draft = draft_schedule(Settings(), "daily", [FlowSpec("synthetic-events", {"count": 5})], interval="1h",
                           archive=True)
    assert [c.input.archive for c in draft.children] == [True]


def test_source_archive_and_retention_are_settings():
    settings = settings_from_env({"SOURCE_ARCHIVE": "on", "ARCHIVE_RETENTION_DAYS": "7"})
    assert settings.source_archive and settings.archive_retention_days == 7
    assert not settings_from_env({}).source_archive and settings_from_env({}).archive_retention_days == 90
    with pytest.raises(ConfigError, match="ARCHIVE_RETENTION_DAYS='a week' is not valid"):
        settings_from_env({"ARCHIVE_RETENTION_DAYS": "a week"})
    with pytest.raises(ConfigError, match="SOURCE_ARCHIVE='maybe' is not valid"):
        settings_from_env({"SOURCE_ARCHIVE": "maybe"})


# -- scripts/archive.py ---------------------------------------------------------------------------------

def test_the_archive_command_lists_shows_and_prunes(db, settings):
    archive = Archive(db)
    body = json.dumps([{"number": 7, "title": "a bug"}]).encode()
    archive.keep("github", "github-issues", "flow-1", Request("GET", "/repos/o/r/issues?page=1", "application/json"),
                 Answer(200, {"content-type": "application/json"}, body))
    archive.keep("launchpad", "launchpad-bugs", "flow-2", Request("GET", "/devel/~bob"), Answer(200, {}, b"{}"))
    env = settings_env(settings)

    listed = run(["scripts/archive.py", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    assert [(s["source"], s["strategy"], s["answers"], s["body_bytes"]) for s in json.loads(listed.stdout)] == [
        ("github", "github-issues", 1, len(body)), ("launchpad", "launchpad-bugs", 1, 2)]
    answers = json.loads(run(["scripts/archive.py", "list", "--answers", "--source", "github", "--json"], env).stdout)
    assert [a["request"] for a in answers] == ["GET /repos/o/r/issues?page=1 (application/json)"]

    shown = run(["scripts/archive.py", "show", str(answers[0]["id"])], env)
    assert shown.returncode == 0 and "status 200" in shown.stdout and '"title": "a bug"' in shown.stdout
    assert run(["scripts/archive.py", "show", str(answers[0]["id"]), "--raw"], env).stdout.encode() == body
    missing = run(["scripts/archive.py", "show", "999999"], env)
    assert missing.returncode == 2 and "no answer with id 999999" in missing.stderr

    assert "removed 0 archived answers" in run(["scripts/archive.py", "prune", "--older-than", "1"], env).stdout
    pruned = run(["scripts/archive.py", "prune", "--older-than", "0", "--source", "launchpad"], env)
    assert "removed 1 archived answers older than 0 days from launchpad" in pruned.stdout
    assert [s.source for s in archive.shelves()] == ["github"]
    bad = run(["scripts/archive.py", "prune", "--older-than", "-3"], env)
    assert bad.returncode == 2 and "--older-than=-3.0 is not valid" in bad.stderr
