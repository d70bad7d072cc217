"""Starting flows: planning and validating them, flow files, teams, fan-outs, schedules and reports.

    plan.py           one flow: validated, with a deterministic id, search attributes and memo
    flow_file.py      flow files (JSON or YAML) read and validated before anything starts
    runner.py         many flows from the launcher, reusing what already ran
    teams.py          one flow per member of a team, in the source's own terms
    fanout.py         many flows as one durable `FanOutFlow`
    schedules.py      Temporal Schedules of `ScheduledFlow` with incremental windows
    schedule_view.py  schedules read back for `schedule.py list/describe`
    report.py         what a launch prints at the end
    cli.py            what the launcher commands share on their command lines
"""
