"""Input hardening: identifiers are validated, values only ever reach PostgreSQL as parameters or
escaped COPY data, credentials cannot redirect a connection, and every server we start or
ship listens on loopback unless told otherwise.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import psutil
import psycopg2.extensions
import pytest
from psycopg2 import sql

from etl.core.errors import ConfigError
from etl.core.models import Event
from etl.core.settings import PROJECT_ROOT, Settings, settings_from_env
from etl.devstack.servers import free_port
from etl.store.db import Database
from etl.store.events import Events
from etl.store.rejects import RejectRow, Rejects
from etl.store.schema import Tables
from etl.store.staging import Staging
from tests.staged import stage_events, stage_page
from tests.workers import WorkerProcess

BAD_IDENTIFIERS = [
    "events; DROP TABLE events", 'ev"il', "ev'il", "two words", "1events", "", "e" * 49, "événements",
    "ev-il", "ev\x00il", "ev\nil", "public.events", "events--",
]
NASTY_VALUES = [
    "'); DROP TABLE {canary}; --", '"; DROP TABLE {canary}; --', "\\N", "\\.", "$$ {canary} $$", "%s", "%(x)s",
    "tab\tnew\nline\rcr\\back", "{canary}' OR '1'='1", "\u202e\U0001F600 e\u0301",
]


@pytest.mark.parametrize("name", BAD_IDENTIFIERS, ids=range(len(BAD_IDENTIFIERS)))
def test_events_table_must_be_a_plain_identifier(name):
    if name:  # an empty variable means unset: the default table
        with pytest.raises(ConfigError) as from_env:
            settings_from_env({"EVENTS_TABLE": name})
        assert from_env.value.variable == "EVENTS_TABLE" and from_env.value.value == name
        assert "is not valid: expected an SQL identifier" in str(from_env.value)
    with pytest.raises(ConfigError):
        Settings().replace(events_table=name)
    with pytest.raises(ConfigError):
        Tables(name)


def test_the_longest_allowed_table_name_gets_all_its_tables(stack, case):
    name = "t" * 40 + "_abcdefg"  # 48 characters, the limit
    db = Database.get(stack.settings.replace(events_table=name))
    db.ensure_schema()
    found = db.run(lambda cur: (cur.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s",
                                            (name + "%",)), {r[0] for r in cur.fetchall()})[1])
    tables = Tables(name)
    assert found == {getattr(tables, t).strings[0] for t in ("events", "rejects", "raw", "staged_batches", "loads", "history", "archive", "budgets",
                                                                  "cursors", "ledger")}
    assert all(len(t) <= 63 for t in found)  # PostgreSQL would cut a longer name short, silently
    case("hardening-identifiers", "Identifiers", "-", "hostile EVENTS_TABLE values").record({
        "checks": f"{len(BAD_IDENTIFIERS)} hostile EVENTS_TABLE values refused (environment, Settings.replace, "
                  f"Tables); a {len(name)}-character name gets all {len(found)} of its tables"})


def test_every_value_reaches_postgres_as_data(db, case):
    canary = f"{db.tables.name}_canary"
    db.run(lambda cur: cur.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(canary))))
    values = [v.format(canary=canary) for v in NASTY_VALUES]
    events = [Event(event_id=f"id {n} {v}", employee_id=v, event_time_utc=datetime(2024, 5, 1, 12), source_kind_id=v,
                    parent_item_id=v, event_type=v, relation_type=v, event_properties={v: v}, metrics={"n": n})
              for n, v in enumerate(values)]
    # The streaming path (COPY into a temporary table) and the batch path (staging, then load).
    assert Events(db).insert(events[:5]).inserted == 5
    staging = Staging(db)
    batch_key = f"flow '%_ {canary}/b0"
    stage_events(staging, batch_key, events[5:])
    assert staging.load_staged(batch_key, len(events) - 5).inserted == len(events) - 5
    Rejects(db).write([RejectRow(key=v, record={"raw": v}, reason=v, source=v, strategy=v, workflow_id=v)
                       for v in values])

    rows = db.run(lambda cur: (cur.execute(sql.SQL(
        "SELECT event_id, employee_id, source_kind_id, parent_item_id, event_type, relation_type, "
        "event_properties FROM {} ORDER BY id").format(db.tables.events)), cur.fetchall())[1])
    assert rows == [(e.event_id, e.employee_id, e.source_kind_id, e.parent_item_id, e.event_type, e.relation_type,
                     e.event_properties) for e in events]
    rejects = db.run(lambda cur: (cur.execute(sql.SQL("SELECT reject_key, reason, record FROM {} ORDER BY id").format(
        db.tables.rejects)), cur.fetchall())[1])
    assert rejects == [(v, v, {"raw": v}) for v in values]
    assert db.run(lambda cur: (cur.execute("SELECT to_regclass(%s)", (canary,)), cur.fetchone()[0])[1]) == canary
    case("hardening-values", "Values as data", "-", "SQL, COPY escapes and format strings in every field").record({
        "checks": f"{len(values)} hostile values in every text and JSON field, through both load paths and the "
                  "rejects table, read back byte for byte; the canary table survives"})


def test_cleanup_of_one_flow_never_touches_another(db):
    """`forget` matches batch keys with LIKE: a flow key holding `%` or `_` must match only itself."""
    staging = Staging(db)
    for key in ("flow%/run/b0", "flowX/run/b0", "flow_/run/b0", "flowY/run/b0"):
        stage_page(staging, key, 0, [{"x": 1}])
    staging.forget("flow%/run")
    staging.forget("flow_/run")
    left = db.run(lambda cur: (cur.execute(sql.SQL("SELECT DISTINCT batch_key FROM {}").format(db.tables.raw)),
                               {r[0] for r in cur.fetchall()})[1])
    assert left == {"flowX/run/b0", "flowY/run/b0"}


@pytest.mark.parametrize("password", ["p@ss/w:rd#1?x", "x@evil.example:5432/etl#", "sp ace%20ü"])
def test_credentials_cannot_change_where_we_connect(password):
    settings = settings_from_env({"DB_USER": "etl user@x", "DB_PASSWORD": password, "DB_HOST": "db.internal",
                                  "DB_NAME": "etl/other"})
    parsed = psycopg2.extensions.parse_dsn(settings.dsn())
    assert (parsed["host"], parsed["port"], parsed["user"], parsed["password"], parsed["dbname"]) == (
        "db.internal", "55432", "etl user@x", password, "etl/other")
    assert password not in settings.public_database_url() and password not in repr(settings)


def _listening(pid: int) -> set[tuple[str, int]]:
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections("tcp") if c.status == "LISTEN"}


LOOPBACK = {"127.0.0.1", "::1"}


def test_fixture_services_and_the_codec_server_bind_loopback_by_default():
    from etl.runtime.codec import EncryptionCodec
    from sources.github.fixture.server import GitHubFixture
    from sources.launchpad.fixture import FixtureService
    from tests.reliability.test_secrets import load_codec_server

    with GitHubFixture() as gh, FixtureService() as lp:
        assert gh._httpd.server_address[0] == "127.0.0.1" and gh.url.startswith("http://127.0.0.1:")  # noqa: SLF001
        assert lp._httpd.server_address[0] == "127.0.0.1" and lp.root.startswith("http://127.0.0.1:")  # noqa: SLF001
    server = load_codec_server().CodecServer(EncryptionCodec("k" * 32), port=0)
    try:
        assert server.address[0] == "127.0.0.1"
    finally:
        server.stop()
    for module in ("sources.github.fixture", "sources.launchpad.fixture"):
        shown = subprocess.run([sys.executable, "-m", module, "--help"], cwd=PROJECT_ROOT, capture_output=True,
                               text=True, timeout=60)
        assert shown.returncode == 0 and ("127.0.0.1" in shown.stdout or "loopback" in shown.stdout), shown
    shown = subprocess.run([sys.executable, "scripts/codec_server.py", "--help"], cwd=PROJECT_ROOT,
                           capture_output=True, text=True, timeout=60)
    assert "default 127.0.0.1" in shown.stdout, shown.stdout


def test_the_stack_listens_only_on_loopback(stack, case):
    seen = {}
    for name, pid in (("PostgreSQL", stack.pg.pid()), ("Temporal dev server", stack.temporal.pid())):
        sockets = seen[name] = _listening(pid)
        assert sockets and {ip for ip, _ in sockets} <= LOOPBACK, f"{name} listens on {sockets}"
    case("hardening-loopback", "Loopback", "-", "listening sockets of every server").record({
        "checks": "listening sockets: " + ", ".join(f"{name} {len(s)}" for name, s in seen.items())
                  + ", all on 127.0.0.1; fixture services, codec server, worker /healthz and SDK metrics bind "
                    "127.0.0.1 by default"})


def test_a_worker_serves_health_on_loopback_by_default(settings, task_queue, tmp_path):
    assert settings.health_host == "127.0.0.1" and settings_from_env({}).health_host == "127.0.0.1"
    port = free_port()
    worker = WorkerProcess(settings, task_queue, "etl_worker", log_path=tmp_path / "worker.log",
                           extra_env={"HEALTH_PORT": str(port)})
    try:
        import time

        deadline = time.monotonic() + 60
        sockets: set = set()
        while time.monotonic() < deadline and port not in {p for _, p in sockets}:
            assert worker.proc.poll() is None, (tmp_path / "worker.log").read_text()
            sockets = _listening(worker.pid)
            time.sleep(0.2)
        assert port in {p for _, p in sockets}, f"no /healthz on port {port}: {sockets}"
        # /healthz and the SDK's metrics exporter behind /metrics: both on loopback only.
        assert len(sockets) >= 2 and {ip for ip, _ in sockets} <= LOOPBACK, sockets
    finally:
        worker.stop()
