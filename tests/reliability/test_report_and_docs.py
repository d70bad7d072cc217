"""RELIABILITY.md shows what a fault costs, and the docs say what the code does.

The report renders, per case, the records re-done, the time from a fault to progress and the
staging left, and a case that left staging behind is not "passed". The README and the Launchpad
source's docs state the retry budgets the code has (the client's own tries, `DB_RETRY_S`), and
every framework setting is documented in `.env.example`.
"""

from __future__ import annotations

import importlib.util

from etl.core.settings import FRAMEWORK_VARIABLES, PROJECT_ROOT


def _report():
    spec = importlib.util.spec_from_file_location("reliability_report", PROJECT_ROOT / "scripts" / "reliability_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _case(**figures) -> dict:
    base = {"lost": 0, "doubled": 0, "unexpected": 0, "reconciled": True, "runs": 1, "expected_events": 10}
    return {"title": "t", "flow": "ETLFlow", "injected": "SIGKILL", "size": {}, "outcome": "passed",
            "figures": {**base, **figures}}


def test_the_report_shows_rework_time_to_progress_and_staging_left():
    report = _report()
    text = report.render({"cases": {
        "crash-batch": _case(rework_records=0, to_progress_s=9.4, staging_bytes=0, staging_rows=0,
                             kills=[{"after_extracted": 10, "delay_s": 0.1, "stage": "x", "to_progress_s": 9.4}]),
        "crash-streaming": _case(rework_records=500, to_progress_s=11.0, staging_bytes=812, staging_rows=3),
    }})
    header = next(line for line in text.splitlines() if line.startswith("| case |"))
    assert "re-done" in header and "to progress" in header and "staging left" in header
    batch = next(line for line in text.splitlines() if line.startswith("| `crash-batch`"))
    assert "| 0 | 9.4 s | 0 B |" in batch and batch.endswith("| passed |")
    streaming = next(line for line in text.splitlines() if line.startswith("| `crash-streaming`"))
    assert "812 B" in streaming and "**FAILED**" in streaming, "staging left behind must not pass"
    assert "progress again 9.4 s later" in text


def test_the_launchpad_docs_state_the_clients_own_retries():
    from sources.launchpad import client

    readme = (PROJECT_ROOT / "sources" / "launchpad" / "README.md").read_text()
    errors = readme.split("## Errors", 1)[1].split("\n## ", 1)[0]
    assert f"up to {client.RETRIES} times" in errors and "member lookup" in errors
    assert "RETRIES" in client.__doc__ and "member lookup" in client.__doc__


def test_the_readme_says_how_the_retry_layers_combine_and_documents_every_setting():
    readme = (PROJECT_ROOT / "README.md").read_text()
    example = (PROJECT_ROOT / ".env.example").read_text()
    for name in ("DB_RETRY_S", "DB_STATEMENT_TIMEOUT_S", "ACTIVITY_STALL_S", "STAGING_RETENTION_S"):
        assert name in FRAMEWORK_VARIABLES and name in readme and f"{name}=" in example, name
    for metric in ("etl_staging_bytes", "etl_staging_rows_swept_total"):
        assert metric in readme
    assert "loaded_by" in readme and "loaded_at" in readme
