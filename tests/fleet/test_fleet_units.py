"""Pure logic of the fleet tools: flow files, windows, intervals, team expansion, the report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from etl.core.errors import ConfigError
from etl.core.settings import Settings
from etl.launch.fanout import FanOutPlan, child_of
from etl.launch.flow_file import FlowFileError, load_flow_file, plan_all
from etl.launch.plan import plan_flow
from etl.launch.report import as_json, failures, launch_note, summary_table
from etl.launch.schedules import draft_schedule, parse_interval, parse_overlap
from etl.launch.teams import team_flow_specs
from etl.workflows.fleet_io import ChildOutcome, FanOutInput
from etl.workflows.flow_io import FlowSummary
from etl.workflows.windows import detect_window_args, windowed_args
from sources.launchpad.query import LaunchpadQuery
from sources.launchpad.teams import _name

UTC = timezone.utc


@pytest.mark.parametrize("text, message", [
    ("[]", "must be a non-empty list of flows"),
    ('[{"strategy": "synthetic-events", "argz": {}}]', "flow 1 \\(synthetic-events\\): unknown key 'argz'"),
    ('[{"args": {}}]', "flow 1: needs `strategy`"),
    ('[{"strategy": "synthetic-events", "args": [1]}]', "flow 1 \\(synthetic-events\\): `args` must be a mapping"),
    ('[{"strategy": "synthetic-events", "streaming": "yes"}]', "flow 1 \\(synthetic-events\\): `streaming` must be true or false"),
    ("{not json", "is not valid JSON"),
])
def test_flow_file_errors_say_what_and_where(tmp_path, text, message):
    path = tmp_path / "flows.json"
    path.write_text(text)
    with pytest.raises(FlowFileError, match=message):
        load_flow_file(path)


def test_flow_file_yaml_and_planning_errors_name_the_flow(tmp_path):
    path = tmp_path / "flows.yaml"
    path.write_text("- {strategy: synthetic-events, args: {count: 5}}\n"
                    "- {strategy: synthetic-events, args: {count: 5, seed: 0}}\n")
    specs = load_flow_file(path)
    with pytest.raises(FlowFileError, match=r"flow 2 \(synthetic-events\): is the same flow as flow 1 \(workflow id synthetic-events-"):
        plan_all(Settings(), specs, source=str(path))
    path.write_text("- {strategy: synthetic-events, args: {bad_rate: 2}}\n")
    with pytest.raises(FlowFileError, match=r"flow 1 \(synthetic-events\): synthetic.bad_rate: 2.0 is outside 0..1"):
        plan_all(Settings(), load_flow_file(path), source=str(path))


def test_every_bad_flow_of_a_file_is_named_at_once_with_its_key(tmp_path):
    """A bad date is the query's to report (with the flow and key), not the YAML parser's (with neither)."""
    path = tmp_path / "flows.yaml"
    path.write_text("- {strategy: launchpad-bugs, args: {member: alice, data_date_start: 2024-13-01, "
                    "data_date_end: 2024-02-01}}\n"
                    "- {strategy: synthetic-events, args: {count: 5}}\n"
                    "- {strategy: synthetic-events, args: {count: many}}\n")
    with pytest.raises(FlowFileError) as caught:
        plan_all(Settings(), load_flow_file(path), source=str(path))
    assert str(caught.value).splitlines() == [
        f"{path}: 2 problems; fix them all, then run again:",
        f"  {path}, flow 1 (launchpad-bugs): launchpad.data_date_start: '2024-13-01' is not a date as YYYY-MM-DD",
        f"  {path}, flow 3 (synthetic-events): synthetic.count: 'many' is not a whole number"]
    assert [p.index for p in caught.value.problems] == [0, 2]

    path.write_text('[{"strategy": "synthetic-events", "argz": {}}, {"args": {}}]')
    with pytest.raises(FlowFileError, match=r"2 problems.*\n.*flow 1 \(synthetic-events\): unknown key 'argz'.*\n"
                                            r".*flow 2: needs `strategy`"):
        load_flow_file(path)


def test_a_schedule_flow_file_with_window_arguments_names_the_file_flow_and_key(tmp_path):
    path = tmp_path / "team.yaml"
    path.write_text("- {strategy: synthetic-events, args: {count: 5}}\n"
                    "- {strategy: launchpad-bugs, args: {member: alice, data_date_start: 2024-01-01}}\n")
    with pytest.raises(FlowFileError) as caught:
        draft_schedule(Settings(), "lp-daily", load_flow_file(path), interval="1h", source=str(path))
    assert str(caught.value) == (f"{path}, flow 2 (launchpad-bugs): launchpad.data_date_start: leave it out (it is "
                                 "'2024-01-01'): the schedule sets data_date_start and data_date_end to each run's "
                                 "window")


def test_a_fanout_carries_the_source_and_strategy_its_flows_share():
    settings = Settings()
    bugs, questions = (plan_flow(settings, f"launchpad-{flow}", {"member": "alice", "data_date_start": "2024-01-01",
                                                                 "data_date_end": "2024-02-01"})
                       for flow in ("bugs", "questions"))
    synthetic = plan_flow(settings, "synthetic-events", {"count": 5})

    def attributes(*plans) -> dict:
        plan = FanOutPlan("fanout-x", "etl", FanOutInput([child_of(p) for p in plans]))
        return {pair.key.name: pair.value for pair in plan.search_attributes()
                if pair.key.name in ("EtlSource", "EtlStrategy")}

    assert attributes(bugs) == {"EtlSource": "launchpad", "EtlStrategy": "launchpad-bugs"}
    assert attributes(bugs, questions) == {"EtlSource": "launchpad"}  # a keyword holds one strategy
    assert attributes(bugs, synthetic) == {}


def test_date_windows_floor_to_days_so_each_day_is_fetched_once():
    hours = [datetime(2024, 3, 1, 22, tzinfo=UTC) + timedelta(hours=h) for h in range(5)]
    windows = [windowed_args({"member": "a"}, "data_date_start", "data_date_end", "date", a, b)
               for a, b in zip(hours, hours[1:])]
    assert windows == [None, {"member": "a", "data_date_start": "2024-03-01", "data_date_end": "2024-03-02"},
                       None, None]
    exact = windowed_args({}, "since", "until", "datetime", hours[0], hours[1])
    assert exact == {"since": hours[0].isoformat(), "until": hours[1].isoformat()}
    assert windowed_args({"count": 3}, "", "", "datetime", hours[0], hours[1]) == {"count": 3}


def test_window_arguments_are_what_the_query_type_declares():
    @dataclass
    class Dates:
        member: str
        data_date_start: date
        data_date_end: date
        window_fields = ("data_date_start", "data_date_end")

    @dataclass
    class Times:
        since: datetime | None
        until: datetime | None
        window_fields = ("since", "until")

    @dataclass
    class Undeclared:  # fields named like a window are not one unless the query says so
        since: datetime
        until: datetime

    @dataclass
    class Mixed:
        since: date
        until: int
        window_fields = ("since", "until")

    assert detect_window_args(Dates) == ("data_date_start", "data_date_end", "date")
    assert detect_window_args(Times) == ("since", "until", "datetime")
    assert detect_window_args(Undeclared) is None
    with pytest.raises(TypeError, match="two date or two datetime fields"):
        detect_window_args(Mixed)


def test_intervals_and_overlaps():
    assert parse_interval("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_interval("45s") == timedelta(seconds=45)
    for bad in ("", "1w", "0s", "soon"):
        with pytest.raises(ConfigError, match="--interval"):
            parse_interval(bad)
    assert parse_overlap("BUFFER_ONE").name == "BUFFER_ONE"
    with pytest.raises(ConfigError, match="could not chain"):
        parse_overlap("allow_all")


def test_team_members_from_people_or_membership_records():
    person = SimpleNamespace(name="alice")
    membership = SimpleNamespace(member=SimpleNamespace(name="bob"))  # no `name` of its own
    assert [_name(person), _name(membership)] == ["alice", "bob"]
    specs = team_flow_specs(LaunchpadQuery, ["alice", "bob"], ["launchpad-bugs", "launchpad-questions"],
                            "2024-01-01", "2024-02-01", {"service_root": "staging"})
    assert [(s.strategy, s.args["member"]) for s in specs] == [
        ("launchpad-bugs", "alice"), ("launchpad-questions", "alice"),
        ("launchpad-bugs", "bob"), ("launchpad-questions", "bob")]
    assert specs[0].args == {"member": "alice", "data_date_start": "2024-01-01", "data_date_end": "2024-02-01",
                             "service_root": "staging"}


def test_report_says_when_nothing_was_started():
    summary = FlowSummary(workflow_id="f1", strategy="synthetic-events", extracted=10, rejected=1, loaded=9,
                          batches=1, duration_s=0.5)
    reused = [ChildOutcome("f1", "synthetic-events", "completed", summary, 0.5, note="already completed")]
    assert launch_note(reused) == ("nothing new started: the 1 flow had already completed; "
                                   "its recorded result is shown")
    assert launch_note(reused * 2).startswith("nothing new started: all 2 flows had already completed")
    failed = ChildOutcome("f2", "synthetic-events", "failed", error="SourceError: no", note="restarted (was failed)")
    assert launch_note(reused + [failed]).startswith("started 1, 1 of them after a failed or stopped run")
    table = summary_table(reused + [failed], elapsed_s=2.0)
    assert "TOTAL: 2 flows  1 ok, 1 failed" in table and "2.0s  wall time" in table
    assert failures([failed]) == "1 flow failed:\n  f2: SourceError: no"
    assert "TOTAL: 1 flow " in summary_table([failed])


def test_report_shows_duplicates_so_a_rerun_loading_nothing_is_explained():
    rerun = FlowSummary(workflow_id="f1", strategy="synthetic-events", extracted=10, rejected=1, loaded=0,
                        unchanged=9,
                        batches=1, duration_s=0.5)
    table = summary_table([ChildOutcome("f1", "synthetic-events", "completed", rerun, 0.5, note="restarted")])
    header, _, row, _, total, note = table.splitlines()
    assert header.split() == ["FLOW", "STATUS", "LOADED", "UPDATED", "UNCHANGED", "REJECTS", "DURATION", "NOTE"]
    assert row.split()[:6] == ["f1", "completed", "0", "0", "9", "1"]
    assert total.split()[:10] == ["TOTAL:", "1", "flow", "1", "ok,", "0", "failed", "0", "0", "9"]
    assert note.startswith("UNCHANGED: events already in the table")
    assert as_json([ChildOutcome("f1", "synthetic-events", "completed", rerun)])["totals"]["unchanged"] == 9
