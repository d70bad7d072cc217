"""Workflow code, and everything it imports: deterministic and sandbox-safe (no I/O, no settings).

    batch.py, streaming.py      `ETLFlow` and `StreamingETLFlow`
    fanout.py, scheduled.py     `FanOutFlow` (many flows as children) and `ScheduledFlow`
    activity_contracts.py       the activities the workflows call: names, inputs, results
    flow_io.py, fleet_io.py     the dataclasses crossing the flows' and the fleet workflows' boundaries
    common.py                   retry policy, history budget, summaries
    windows.py, search_attributes.py, failure_text.py   pure helpers the launchers share too

An import-linter contract (pyproject.toml) keeps the store, the settings, the activities and
every driver out of this package, directly or through another module.
"""
