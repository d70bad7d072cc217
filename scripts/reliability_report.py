#!/usr/bin/env python3
"""Render RELIABILITY.md from the reliability suite's results.

    pytest tests/reliability                     writes .etl/reliability-results.json
    python scripts/reliability_report.py         writes RELIABILITY.md from it
    python scripts/reliability_report.py --check fails (exit 1) unless every case passed with
                                                 nothing lost or doubled and the books balanced

The figures come only from the results file; the prose around them (what each case injects,
how to run the codec server) lives here, so the whole document is regenerated each time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / ".etl" / "reliability-results.json"

#: (case id prefix, section title, what the case does and why it is enough)
SECTIONS = [
    ("crash", "Worker crashes", """\
The flow's only worker process is killed with SIGKILL three times, at points drawn from a
seed: a progress threshold in each part of the run plus a random delay, so kills land in
extract, transform, load, between activities and around continue-as-new (the history budget
is small on purpose). After each kill a new worker process starts; Temporal notices the dead
one when its activities stop heartbeating (the default heartbeat timeout, 8 s; activities beat
every 2 s while they progress) and retries them there. Every page commits together with its
resume point (a streaming chunk's cursor, a batch extract's progress), so a retry starts after
the last committed page whatever the heartbeats managed to send: what a kill costs is the page
that was in flight (or the one transaction of a batch's transform or load), never a committed
page again. Batch loads are idempotent (new events COPY'd, the rest `ON CONFLICT DO NOTHING`, with a
ledger that answers a repeated load with its first counts). Once the flow has finished, it is
launched again with the same query, as an operator who saw the failures might: nothing new may
load. Per kill: the seconds until the next commit on the new worker."""),
    ("postgres", "PostgreSQL restarts", """\
PostgreSQL is stopped mid-run and started again, twice per run: once cleanly (`pg_ctl -m fast`,
which ends every connection) and once as a crash (`-m immediate`, then crash recovery), down
for a random 0.5-4 s each time. The worker replaces each broken connection on its own (idle
ones are pinged before reuse; transactions on healthy connections go on); work that failed
meanwhile is retried, in the database layer with backoff for up to `DB_RETRY_S` (30 s) and then
by Temporal. These cases run on a private stack so the shared
test servers are never stopped."""),
    ("temporal", "Temporal server restarts", """\
The Temporal dev server is stopped mid-run and started again on the same SQLite file, twice per
run: SIGTERM and SIGKILL. The worker is a real `python -m workers.*` process and is never
restarted: its pollers and the launcher's client reconnect by themselves, activities that
finished while the server was away are retried or completed, and the flow goes on."""),
    ("source-faults", "Source faults", """\
A fifth of all requests to the fixture services fail, drawn from a seed: HTTP 500, 502, 503;
429 with `Retry-After: 1`; a stall past the client's timeout (shortened to 0.5 s for the test);
the connection closed before any answer; the connection closed halfway through the body.
The GitHub client retries 5xx and network failures itself, waits out rate limits, and leaves
longer trouble to Temporal's retry; the Launchpad client retries each transient failure a few
times itself (honouring Retry-After) and leaves longer trouble to Temporal's retry, which
resumes from the last heartbeated cursor (ETLFlow's extract keeps the pages it staged before
it). The events loaded are compared with the fixtures' own ground truth, not with a clean run."""),
    ("bad-input", "Bad input", """\
One record in a hundred is malformed, cycling through every kind below, from a test-only source
registered for the test. Each either lands in the rejects table with a reason that says what
was wrong, or loads exactly as given (checked field by field); no activity fails. The reasons
found are counted below; `duplicate` records are yielded twice and skipped once."""),
    ("poison", "Bad values", """\
One poison record, of each kind that used to wedge a worker, stall a flow for the whole retry
span or be silently changed, hidden at record 12,345 of a 20,000-record run, batch and streaming,
while a healthy 4,000-record flow runs on the same worker: `\\u0000` spelled out in an id, a
name or a title (it used to raise `StopIteration` into asyncio and hang the activity for good);
a record whose own methods raise; times at the edge of the calendar (an `OverflowError` retried
for ~44 minutes); keys that are not text (`1` beside `"1"`, `None`); properties that are `[]`,
`0` or `""`; zones in the wrong case. Each is rejected with its reason, or loads exactly as given
(zones under their canonical name); no activity is retried; both flows complete. Every case
fails on the code before issue 12 (`tests/reliability/test_poison_pills.py`).

`poison-hostile-values-*` puts one record of each kind below in one 12,000-record run
(`tests/reliability/test_hostile_values.py`): integers of 5,000 and 100,000 digits in `metrics`,
in the properties and as a key; nesting 5,000 and 100,000 deep in each JSON column and inside a
list; an object whose `__repr__`, `__str__` and `__eq__` raise, as the record and as a value; a
dict whose `items()` raises; a record that is a list, a string or None. Each is one reject with
its reason (the same in both flows), every other record loads and no activity is retried. Before
issue 24 the integers failed both flows (their reject could not be written) and the deep nesting
failed the streaming flow."""),
    ("secrets", "Secrets stay out of Temporal", """\
With `GITHUB_TOKEN`, `LP_CREDENTIALS_FILE` (and the OAuth token inside it), `DB_PASSWORD` and
`ETL_ENCRYPTION_KEY` set, GitHub, Launchpad (private bugs, through the credentials) and
synthetic flows run, batch and streaming, and one fails (a repository that does not exist).
Every event of every run of every flow is scanned, raw and with each payload decrypted, and so
are the memo and the search attributes: none of those values appears anywhere."""),
    ("encryption", "Payload encryption", """\
With `ETL_ENCRYPTION_KEY` set, every payload in history (inputs, results, heartbeat details,
memo) is AES-256-GCM ciphertext marked `binary/encrypted`; search attributes stay readable
because the server indexes them, and they hold only the query's summary. A client without the
key, or with another key, cannot read the results; the codec server decodes them, for the UI's
origin only."""),
    ("hardening", "Input hardening", """\
`EVENTS_TABLE` must be a plain identifier (letters, digits, underscores, at most 48 characters,
matched whole), neither a PostgreSQL system name (`pg_*`) nor another events table's companion
(`*_rejects`, `*_staged`, ...) wherever it is given: environment, `Settings.replace`, `Tables`. Values reach PostgreSQL only as
parameters or escaped COPY data: ids and fields such as `'); DROP TABLE ...; --`, `\\N`, `\\.`,
`%s`, tabs and newlines load byte for byte on both load paths; LIKE patterns are escaped;
database credentials are percent-encoded, so a password cannot change the host we connect
to. Every server we start or ship (embedded PostgreSQL, the Temporal dev server, the fixture
services, the codec server, a worker's `/healthz` and SDK metrics) listens on loopback by
default."""),
]

CODEC_HOWTO = """\
## Payload encryption and the codec server

Encryption is optional. Give every worker and every launcher the same key:

    python -c "import secrets; print(secrets.token_urlsafe(32))"   # make a key once
    export ETL_ENCRYPTION_KEY=...                                   # or put it in .env

From then on the Temporal UI and CLI show `binary/encrypted` payloads. To read them there, run
the codec server (it holds the key; anyone who can reach it can decrypt, so it binds 127.0.0.1):

    ETL_ENCRYPTION_KEY=... python scripts/codec_server.py --port 8081 --origin http://localhost:8233

and point the UI at it, either when starting the dev server

    temporal server start-dev --db-filename .etl/temporal.db --ui-codec-endpoint http://127.0.0.1:8081

or in the UI itself (its codec server setting, kept per browser: endpoint
`http://127.0.0.1:8081`, which the browser calls directly). The CLI takes `--codec-endpoint http://127.0.0.1:8081`. The server
answers `POST /encode` and `POST /decode` (also under `/{namespace}/`) and CORS preflights from
the `--origin`s given (default: the UI on `TEMPORAL_UI_PORT` at localhost and 127.0.0.1). To
serve a shared UI, put it behind your authentication proxy; never bind it to a public address
as it is.

A key cannot be rotated in place: flows started under one key need that key to be read. Keep
the old key for a codec server of its own until those histories expire.
"""

REPLAY_HOWTO = """\
## Running the suite, replaying a failure

    .venv/bin/pytest tests/reliability                    # a few minutes
    python scripts/reliability_report.py                  # then regenerate this file

Every random choice (kill points, restart moments, which requests fail) comes from a seed
printed with each test and stored in the results. `RELIABILITY_SEED=<seed> pytest <test>`
makes the same choices again; timing still differs between runs, so a kill lands near, not
exactly at, the same instruction. `RELIABILITY_RESULTS=<file>` writes the results elsewhere.
After every case, the histories of its flows (every continue-as-new run, including the crashed
and restarted ones) are replayed against today's workflow code with Temporal's `Replayer`.
"""


def _n(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _size(size: dict) -> str:
    parts = []
    if "records" in size:
        parts.append(f"{size['records']:,} records")
    if "flows" in size:
        parts.append(f"{size['flows']} flows")
    if "page_size" in size:
        parts.append(f"pages of {size['page_size']}")
    if "per_page" in size:
        parts.append(f"{size['per_page']} items a page")
    if size.get("bad_rate"):
        parts.append(f"{size['bad_rate']:.0%} bad")
    if "batch_size" in size:
        parts.append(f"batches of {size['batch_size']:,}")
    if "chunk_count" in size:
        parts.append(f"{size['chunk_count']} chunks")
    return ", ".join(parts)


def _ok(case: dict) -> bool:
    f = case.get("figures", {})
    sound = (all(f.get(k, 0) == 0 for k in ("lost", "doubled", "unexpected", "staging_rows"))
             and f.get("reconciled", True))
    return case.get("outcome") == "passed" and sound and f.get("secrets_found", 0) == 0


def _details(case_id: str, case: dict) -> list[str]:
    f = case.get("figures", {})
    lines = []
    if f.get("kills"):
        kills = "; ".join(f"after {k['after_extracted']:,} extracted (+{k['delay_s']} s, {k['stage']}"
                          + (f"; progress again {k['to_progress_s']} s later" if k.get("to_progress_s") else "") + ")"
                          for k in f["kills"])
        relaunch = (f"; launched again afterwards, it loaded {f['relaunch_loaded']:,} events"
                    if "relaunch_loaded" in f else "")
        lines.append(f"- `{case_id}`: kills {kills}; {f.get('workers')} worker processes in all, "
                     f"{f.get('retried_activities')} activity attempts retried{relaunch}.")
    if f.get("restarts"):
        restarts = "; ".join(f"{r.get('mode') or r.get('how')} after {r['after_extracted']:,} extracted, down "
                             f"{r['down_s']} s" for r in f["restarts"])
        extra = (f", pool rebuilt {f['pool_recreations']} times" if "pool_recreations" in f
                 else f", {f['connections_replaced']} connections replaced" if "connections_replaced" in f else "")
        lines.append(f"- `{case_id}`: {restarts}{extra}.")
    if f.get("faults"):
        faults = dict(f["faults"])
        total, failed = faults.pop("requests", 0), faults.pop("faults", 0)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(faults.items()))
        lines.append(f"- `{case_id}`: {failed} of {total:,} requests failed ({failed / max(total, 1):.0%}): {kinds}.")
    if f.get("kinds"):
        lines.append(f"- `{case_id}`: kinds: " + ", ".join(f"`{k}`" for k in f["kinds"]) + ".")
    if f.get("reject_reasons"):
        reasons = ", ".join(f"\"{k}\" {v}" for k, v in sorted(f["reject_reasons"].items()))
        lines.append(f"- `{case_id}`: rejects by reason: {reasons}; unchanged "
                     f"{f.get('unchanged', 0)}; activities retried {f.get('retried_activities', 0)}.")
    if "events_scanned" in f:
        lines.append(f"- `{case_id}`: {f['flows']} flows, {f['events_scanned']:,} history events and "
                     f"{f['payloads_scanned']:,} payloads scanned; secrets found: {f['secrets_found']}; "
                     f"payloads not encrypted: {f['unencrypted_payloads']} (search attributes).")
    if "encrypted_payloads" in f:
        lines.append(f"- `{case_id}`: {f['encrypted_payloads']} payloads encrypted, {f['plain_payloads']} in the clear "
                     "(search attributes aside).")
    if "checks" in f:
        lines.append(f"- `{case_id}`: {f['checks']}.")
    if case.get("outcome") != "passed":
        lines.append(f"- `{case_id}`: **{case.get('outcome', 'no outcome')}**.")
    return lines


def render(data: dict) -> str:
    cases: dict = data.get("cases", {})
    machine = data.get("machine", {})
    passed = sum(_ok(c) for c in cases.values())
    out = [
        "# Reliability",
        "",
        "What happens to a flow when things break, measured by the reliability suite "
        "(`tests/reliability/`, part of `make test`). This file is generated by "
        "`python scripts/reliability_report.py` from the results of the suite's last run; "
        "do not edit it by hand.",
        "",
        f"Last run: {data.get('updated_at', 'unknown')}, {machine.get('cpus', '?')} CPUs, Python "
        f"{machine.get('python', '?')}. **{passed} of {len(cases)} cases passed.**",
        "",
        "## Nothing lost, nothing doubled",
        "",
        "*expected*: the exact event ids the flows must load, computed from the source's ground truth; "
        "*lost*: expected ids missing from the table; *doubled*: rows loaded twice however they hide: "
        "rows beyond one per id, or more rows counted as inserted by every run and attempt added up "
        "(the loads ledger, written in each load's own transaction) than the table holds; "
        "*re-done*: records of pages committed more than once (a page in flight at a fault is read "
        "again but was never committed); *to progress*: the longest time from a fault to the next "
        "commit; *staging left*: bytes of rows left in the staging tables (pages, staged events, "
        "resume points) after the case; "
        "*reconciled*: for every flow, extracted = loaded + updated + unchanged + rejected, the rows "
        "equal what was loaded (plus, streaming after a crash, pages loaded again), and the rejects "
        "table holds exactly the malformed records; *runs*: workflow runs, continue-as-new included; "
        "*replayed*: runs whose histories replayed against today's workflow code.",
        "",
        "| case | flow | injected | size | runs | replayed | expected | lost | doubled | re-done | to progress "
        "| staging left | reconciled | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case_id, case in sorted(cases.items()):
        f = case.get("figures", {})
        if "lost" not in f:
            continue
        out.append("| " + " | ".join([
            f"`{case_id}`", case.get("flow", ""), case.get("injected", "").replace("|", "/"),
            _size(case.get("size", {})), _n(f.get("runs")), _n(f.get("replayed_runs")), _n(f.get("expected_events")),
            _n(f.get("lost")),
            _n(f.get("doubled")), _n(f.get("rework_records", "-")),
            f"{f['to_progress_s']} s" if f.get("to_progress_s") is not None else "-",
            f"{f['staging_bytes']:,} B" if "staging_bytes" in f else "-",
            _n(f.get("reconciled")), "passed" if _ok(case) else "**FAILED**"]) + " |")
    out += ["", "## The cases", ""]
    for prefix, title, text in SECTIONS:
        mine = {k: v for k, v in sorted(cases.items()) if k.startswith(prefix)}
        out += [f"### {title}", "", text, ""]
        if not mine:
            out += ["*Not in the last run.*", ""]
            continue
        for case_id, case in mine.items():
            out += _details(case_id, case)
        out.append("")
    out += [CODEC_HOWTO, REPLAY_HOWTO]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/reliability_report.py",
        description="Render RELIABILITY.md from the reliability suite's results (pytest tests/reliability).")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help=f"the results file the suite wrote (default {DEFAULT_RESULTS.relative_to(ROOT)})")
    parser.add_argument("--output", type=Path, default=ROOT / "RELIABILITY.md",
                        help="where to write the Markdown (default RELIABILITY.md; - for standard output)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless every case passed with nothing lost or doubled")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.results.read_text())
    except FileNotFoundError:
        print(f"error: {args.results} does not exist; run `pytest tests/reliability` first", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {args.results} is not JSON ({exc}); run `pytest tests/reliability` again", file=sys.stderr)
        return 2
    text = render(data)
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        sys.path.insert(0, str(ROOT))
        from scripts.soaking.report import carried  # the Soak section is the soak command's (scripts/soak.py)

        args.output.write_text(carried(args.output.read_text() if args.output.exists() else "", text))
        print(f"wrote {args.output} from {args.results} ({len(data.get('cases', {}))} cases)")
    bad = [k for k, c in data.get("cases", {}).items() if not _ok(c)]
    if args.check and bad:
        print(f"error: cases not passed cleanly: {', '.join(sorted(bad))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
