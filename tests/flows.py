"""Running flows from tests: `etl.testing.flows`, the supported module (kept importable here)."""

from etl.testing.flows import FlowRunner, Table, run_both_ways  # noqa: F401
