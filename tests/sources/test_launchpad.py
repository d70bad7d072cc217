"""The Launchpad source against the offline fixture, through launchpadlib's real HTTP stack.

What each flow must emit is computed here from the fixture's own data by SPEC's rules,
without the extractor's code, and compared as sets of
(event_id, relation_type, employee_id, event_time_utc).
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from etl.core.errors import QueryError, SourceError, SourceUnavailable
from etl.core.extract import ExtractStrategy
from etl.core.models import transform
from etl.core.query import QueryFactory
from etl.core.settings import PROJECT_ROOT, settings_from_env
from sources.launchpad.fixture import Faults, FixtureService, write_credentials
from sources.launchpad.fixture.world import MEMBERS, WINDOW
from tests.import_graph import imports_reached

FLOWS = ("launchpad-bugs", "launchpad-merge_proposals", "launchpad-questions")
START, END = WINDOW


# --- what the fixture's data implies, by SPEC's rules -------------------------------------------

def _acts(world, flow: str, authenticated: bool):
    """Every act in the data: (event_id, relation_type, actor, time)."""
    if flow == "launchpad-bugs":
        for bug in world.bugs.values():
            if bug.private and not authenticated:
                continue
            yield from ((f"b-{bug.id}-m{m.index}", "bug_message", m.owner, m.date) for m in bug.messages)
            yield from ((f"b-{bug.id}-a{a.index}", "bug_activity", a.person, a.date) for a in bug.activity)
    elif flow == "launchpad-merge_proposals":
        for mp in world.proposals.values():
            p = f"mp-{mp.id}"
            yield f"{p}-c", "merge_proposal_created", mp.registrant, mp.date_created
            yield f"{p}-rq", "merge_proposal_review_requested", mp.registrant, mp.date_review_requested
            yield f"{p}-r", "merge_proposal_reviewed", mp.reviewer, mp.date_reviewed
            yield f"{p}-m", "merge_proposal_merged", mp.merge_reporter, mp.date_merged
            for c in mp.comments:
                yield f"{p}-c{c.id}", "merge_proposal_comment", c.author, c.date
                if c.vote:
                    yield f"{p}-v{c.id}", "merge_proposal_vote", c.author, c.date
    else:
        for q in world.questions.values():
            yield f"q-{q.id}-c", "question_created", q.owner, q.date_created
            status = "Open"
            for m in q.messages:
                yield f"q-{q.id}-m{m.index}", "question_message", m.owner, m.date
                if m.action == "Answer":
                    yield f"q-{q.id}-a{m.index}", "question_answered", m.owner, m.date
                if m.new_status == "Solved" and status != "Solved":
                    yield f"q-{q.id}-s{m.index}", "question_solved", m.owner, m.date
                status = m.new_status


def expected(world, flow: str, member: str, authenticated: bool = False) -> set[tuple]:
    return {(eid, rel, who, at) for eid, rel, who, at in _acts(world, flow, authenticated)
            if who == member and at is not None and START <= at < END}


def got(records) -> set[tuple]:
    return {(r["event_id"], r["relation_type"], r["employee_id"], datetime.fromisoformat(r["event_time_utc"]))
            for r in records}


# --- fixtures and helpers ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lp():
    with FixtureService(seed=0) as service:
        yield service


@pytest.fixture
def lp_faulty():
    with FixtureService(seed=0, faults=Faults(rate=0.2, retry_after=1, slow_rate=0.05, slow_seconds=0.05)) as s:
        yield s


def lp_settings(service, tmp_path, **env):
    return settings_from_env({"LP_WEB_ROOT": service.root, "LP_CACHE_DIR": str(tmp_path / "lp"), **env})


def query(member: str, **more):
    return QueryFactory.create("launchpad", {"member": member, "data_date_start": START.date().isoformat(),
                                             "data_date_end": END.date().isoformat(), **more})


def pages(flow, member, settings, cursor=None, **more):
    return list(ExtractStrategy.create(flow).pages(query(member, **more), cursor, settings))


def records_of(page_list):
    return [r for p in page_list for r in p.records]


def extract_with_retries(flow, member, settings):
    """Run a flow as the activity retry policy does: after a transient failure, resume from the last cursor."""
    cursor, records, failures = None, [], 0
    while True:
        try:
            for page in ExtractStrategy.create(flow).pages(query(member), cursor, settings):
                records += page.records
                cursor = page.cursor
            return records, failures
        except SourceUnavailable as exc:  # 5xx, 429, timeouts: what the policy retries
            failures += 1
            assert failures < 500, f"no progress: {exc}"
            if exc.status in (429, 503):
                assert exc.retry_after_s == 1
            time.sleep(min(exc.retry_after_s or 0, 0.2))


# --- tests -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("member", MEMBERS)
@pytest.mark.parametrize("flow", FLOWS)
def test_each_flow_emits_exactly_the_members_acts_in_range(lp, tmp_path, flow, member):
    records = records_of(pages(flow, member, lp_settings(lp, tmp_path)))
    assert got(records) == expected(lp.world, flow, member)
    assert len(records) == len(got(records)), "an event was emitted twice"


def test_the_data_covers_every_event_kind(lp):
    kinds = {rel for flow in FLOWS for m in MEMBERS for _, rel, _, _ in expected(lp.world, flow, m)}
    assert kinds == {"bug_message", "bug_activity", "merge_proposal_created", "merge_proposal_review_requested",
                     "merge_proposal_reviewed", "merge_proposal_merged", "merge_proposal_comment",
                     "merge_proposal_vote", "question_created", "question_answered", "question_solved",
                     "question_message"}


def _on_later_pages(world, size: int) -> set[str]:
    """Event ids of acts that sit on the second or a later page of their item's collection."""
    ids = {f"b-{b.id}-{kind}{x.index}" for b in world.bugs.values()
           for kind, xs in (("m", b.messages), ("a", b.activity)) for x in xs if x.index >= size}
    ids |= {f"mp-{p.id}-{kind}{c.id}" for p in world.proposals.values()
            for k, c in enumerate(p.comments) if k >= size for kind in "cv"}
    return ids | {f"q-{q.id}-{kind}{m.index}" for q in world.questions.values()
                  for m in q.messages if m.index > size for kind in "mas"}


def test_later_pages_are_read(lp, tmp_path):
    lp.paths.clear()
    settings, deep = lp_settings(lp, tmp_path), _on_later_pages(lp.world, lp.page_size)
    for flow in FLOWS:
        ids = {r["event_id"] for m in MEMBERS for r in records_of(pages(flow, m, settings))}
        assert ids & deep, f"{flow}: no event from a second page of messages, activity or comments"
    for op in ("searchTasks", "getMergeProposals", "getRequestedReviews", "searchQuestions", "/all_comments",
               "/messages", "/activity"):
        assert any(op in p and "ws.start=" in p for p in lp.paths), f"no second page of {op} was read"


def test_acts_out_of_range_and_by_other_people_are_absent(lp, tmp_path):
    settings = lp_settings(lp, tmp_path)
    for flow in FLOWS:
        everything = {(eid, who, at) for eid, _, who, at in _acts(lp.world, flow, False) if at}
        for member in MEMBERS:
            ids = {r["event_id"] for r in records_of(pages(flow, member, settings))}
            outside = {eid for eid, who, at in everything if who == member and not START <= at < END}
            others = {eid for eid, who, at in everything if who != member and START <= at < END}
            assert outside and others and not ids & (outside | others)


@pytest.mark.parametrize("flow", FLOWS)
def test_every_cursor_resumes_with_exactly_the_rest(lp, tmp_path, flow):
    settings = lp_settings(lp, tmp_path)
    member = max(MEMBERS, key=lambda m: len(expected(lp.world, flow, m)))
    full = pages(flow, member, settings)
    assert len(full) >= 4
    for k, page in enumerate(full[:-1]):
        rest = records_of(pages(flow, member, settings, cursor=page.cursor))
        assert rest == records_of(full[k + 1:])
    assert records_of(pages(flow, member, settings, cursor=full[-1].cursor)) == []
    assert set(json.loads(full[0].cursor)) == {"listing", "page", "entry", "collection", "collection_page",
                                               "last_key"}, "the kit's walk, with named cursor fields"


@pytest.mark.parametrize("flow", FLOWS)
def test_injected_failures_change_nothing(lp_faulty, tmp_path, flow):
    settings = lp_settings(lp_faulty, tmp_path)
    failures = 0
    # Bugs cost the most requests: two members suffice there to meet every kind of fault.
    for member in ("alice", "bob") if flow == "launchpad-bugs" else MEMBERS:
        records, failed = extract_with_retries(flow, member, settings)
        failures += failed
        assert got(records) == expected(lp_faulty.world, flow, member)
    stats = lp_faulty.stats
    # The client retries most transient failures itself; those that outlast its retries reach
    # `extract_with_retries` (the activity retry's stand-in). Either way the events are unchanged,
    # though faults of every kind were served.
    assert stats["fault_429"] > 0 and stats["fault_500"] + stats["fault_502"] + stats["fault_503"] > 0


def test_a_missing_member_fails_at_once_naming_it(lp, tmp_path):
    before = lp.stats["requests"]
    with pytest.raises(SourceError, match="no person or team named 'nobody-here'") as caught:
        pages("launchpad-bugs", "nobody-here", lp_settings(lp, tmp_path))
    assert caught.value.status == 404 and lp.stats["requests"] - before <= 3


def test_a_team_is_not_a_member(lp, tmp_path):
    with pytest.raises(QueryError, match="'fixture-team' is a team"):
        pages("launchpad-questions", "fixture-team", lp_settings(lp, tmp_path))


def test_questions_need_the_devel_api(lp, tmp_path):
    with pytest.raises(QueryError, match="api_version"):
        pages("launchpad-questions", "alice", lp_settings(lp, tmp_path), api_version="1.0")
    assert records_of(pages("launchpad-bugs", "alice", lp_settings(lp, tmp_path), api_version="1.0"))


def test_private_bugs_need_the_credentials_file(lp, tmp_path):
    member = next(m for m in MEMBERS if expected(lp.world, "launchpad-bugs", m, authenticated=True)
                  != expected(lp.world, "launchpad-bugs", m))
    creds = write_credentials(str(tmp_path / "lp-credentials"))
    authed = records_of(pages("launchpad-bugs", member, lp_settings(lp, tmp_path, LP_CREDENTIALS_FILE=creds)))
    assert got(authed) == expected(lp.world, "launchpad-bugs", member, authenticated=True)


def test_refused_credentials_fail_at_once(lp, tmp_path):
    good = tmp_path / "good"
    write_credentials(str(good))
    revoked = tmp_path / "revoked"
    revoked.write_text(good.read_text().replace("fixture-token", "revoked-token"))
    with pytest.raises(SourceError, match="HTTP 401") as caught:
        pages("launchpad-bugs", "alice", lp_settings(lp, tmp_path, LP_CREDENTIALS_FILE=str(revoked)))
    assert caught.value.status == 401


def test_calls_time_out(lp_faulty, tmp_path):
    lp_faulty.faults = Faults(slow_rate=1.0, slow_seconds=1.0)
    with pytest.raises(SourceUnavailable, match="did not answer") as caught:
        pages("launchpad-bugs", "alice", lp_settings(lp_faulty, tmp_path, LP_TIMEOUT="0.3"))
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_answers_cut_short_are_asked_again(tmp_path):
    """A connection closed halfway through an answer (`http.client.IncompleteRead`) is transient,
    like a timeout: the client asks again and the flow's events are unchanged. Were it an error
    of any other kind, each cut would cost the activity attempt and a retry's backoff."""
    from tests.reliability.chaos_http import ChaosPlan, make_chaotic

    with FixtureService(seed=0) as service:
        server = service._httpd  # noqa: SLF001 - the loopback server keeps its HTTP server private
        honest = server.RequestHandlerClass
        make_chaotic(server, ChaosPlan(rate=1.0, seed=0, stall_s=0, kinds=("cut",)))
        with pytest.raises(SourceUnavailable, match="did not answer") as caught:
            pages("launchpad-bugs", "alice", lp_settings(service, tmp_path))
        assert isinstance(caught.value.__cause__, http.client.HTTPException)

        server.RequestHandlerClass = honest
        plan = ChaosPlan(rate=0.3, seed=3, stall_s=0, kinds=("cut",))
        make_chaotic(server, plan)
        records, _ = extract_with_retries("launchpad-bugs", "alice", lp_settings(service, tmp_path / "2"))
        assert got(records) == expected(service.world, "launchpad-bugs", "alice")
        assert plan.summary().get("cut", 0) > 5, plan.summary()


def test_a_garbled_answer_is_transient_and_quoted(tmp_path):
    """A status line of escape codes, a NUL and `\\N` is asked again like any broken answer, and the
    error quotes it: an ESC from the wire must not reach a terminal or a log raw."""
    with FixtureService(seed=0) as service:
        server = service._httpd  # noqa: SLF001 - the loopback server keeps its HTTP server private

        class Garbled(server.RequestHandlerClass):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                self.close_connection = True
                self.wfile.write(b"HTTP/1.1 9\x1b[31m99 \\N\x00\r\n\r\n")

        server.RequestHandlerClass = Garbled
        with pytest.raises(SourceUnavailable, match="did not answer") as caught:
            pages("launchpad-bugs", "alice", lp_settings(service, tmp_path))
    assert isinstance(caught.value.__cause__, http.client.HTTPException)
    assert "\x1b" not in str(caught.value) and "\x00" not in str(caught.value)
    assert "\\x1b[31m" in str(caught.value)


def test_time_zone_sets_event_time_and_week(lp, tmp_path):
    settings = lp_settings(lp, tmp_path)
    shifted = 0
    for member in ("alice", "carol", "dave"):
        zone = lp.world.people[member].time_zone
        events, rejects = transform(records_of(pages("launchpad-questions", member, settings))
                                    + records_of(pages("launchpad-bugs", member, settings)))
        assert events and not rejects
        for e in events:
            local = e.event_time_utc.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(zone or "UTC"))
            assert (e.timezone, e.event_time) == (zone or "UTC", local.replace(tzinfo=None))
            assert e.week == local.date() - timedelta(days=local.weekday()) and e.week.weekday() == 0
            shifted += local.date() != e.event_time_utc.date()
    assert shifted, "no event whose local day differs from its UTC day: the zone went untested"
    assert date(2024, 3, 31) < END.date()  # the window spans Berlin's DST change


def test_a_team_expands_through_the_client_and_the_query_type_makes_no_calls(lp, tmp_path):
    """The launcher's `--team` asks the query type (`expand_group`); the client answers, by its
    registered group expander. The query module reaches no client, even inside a function."""
    members = QueryFactory.get("launchpad").expand_group("fixture-team", lp_settings(lp, tmp_path))
    assert members == sorted(lp.world.people["fixture-team"].members) and len(members) >= 2
    with pytest.raises(SourceError, match="'alice' is a person, not a team"):
        QueryFactory.get("launchpad").expand_group("alice", lp_settings(lp, tmp_path))
    assert "sources.launchpad.client" not in imports_reached("sources.launchpad.query")


def test_the_fixture_is_served_by_the_kits_loopback_server(lp):
    from etl.kit.loopback import LoopbackServer

    assert isinstance(lp, LoopbackServer) and lp.root == lp.url + "/"


def test_discovery_registers_the_flows_but_not_the_fixture():
    code = ("import sys; from etl.core.extract import ExtractStrategy; names = {s.name for s in ExtractStrategy.all()}; "
            f"print(names >= set({FLOWS!r}), any('launchpad.fixture' in m for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_the_fixture_runs_standalone_on_loopback():
    proc = subprocess.Popen([sys.executable, "-m", "sources.launchpad.fixture", "--port", "0"], cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        root = re.search(r"http://127\.0\.0\.1:\d+/", proc.stdout.readline())[0]
        request = urllib.request.Request(root + "devel/", headers={"Accept": "application/vnd.sun.wadl+xml"})
        with urllib.request.urlopen(request, timeout=10) as response:
            wadl = response.read().decode()
        assert f'<wadl:resources base="{root}devel/">' in wadl and "person-searchQuestions" in wadl
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- end to end: through Temporal (a real worker) into the events table -------------------------

@pytest.fixture
def settings(stack, table_name, lp, tmp_path):
    """The suite's settings, with the worker pointed at the fixture (conftest's `run_flow` uses these)."""
    return stack.settings.replace(events_table=table_name).with_env(LP_WEB_ROOT=lp.root, LP_CACHE_DIR=str(tmp_path / "lp"))


def table(db) -> set[tuple]:
    rows = db.run(lambda cur: (cur.execute(f'SELECT event_id, relation_type, employee_id, event_time_utc '
                                           f'FROM "{db.tables.name}"'), cur.fetchall())[1])
    return {(eid, rel, who, at.replace(tzinfo=timezone.utc)) for eid, rel, who, at in rows}


@pytest.mark.parametrize("flow", FLOWS)
async def test_both_workflows_load_each_event_once(run_flow, db, lp, flow):
    member = "bob"
    args = query(member).to_dict()
    want = expected(lp.world, flow, member)
    # Small batches and short chunk calls: the flows resume the walk from its cursors many times.
    batch = await run_flow(flow, args, batch_size=5)
    assert table(db) == want
    assert batch["loaded"] == len(want) and batch["rejected"] == 0 and batch["batches"] > 1
    streaming = await run_flow(flow, args, streaming=True, pages_per_call=2)
    assert streaming["loaded"] == 0 and streaming["unchanged"] == len(want)
    again = await run_flow(flow, args)
    assert again["loaded"] == 0 and table(db) == want
