"""The schema step a worker runs when it starts: it reads the catalog, locks tables only to change
them, and never deadlocks with the staging sweep (whose DELETEs hold the staging tables)."""

from __future__ import annotations

import threading
import uuid

import psycopg2
import pytest
from psycopg2 import sql

from etl.store.db import Database
from etl.store.staging import Staging
from tests.workers import WorkerProcess

EXTERNAL = (("_raw_pages", "packed"), ("_staged_batches", "packed"))


def as_an_earlier_version_left_them(db: Database) -> None:
    """Tables made before their storage settings and `loaded_at`'s default were part of the schema."""
    def undo(cur) -> None:
        for suffix, column in EXTERNAL:
            cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET STORAGE EXTENDED").format(
                sql.Identifier(db.tables.name + suffix), sql.Identifier(column)))
        cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN loaded_at DROP DEFAULT").format(db.tables.events))
    db.run(undo)


def storage(db: Database) -> list[str]:
    return [db.scalar("SELECT attstorage FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s",
                      (f'"{db.tables.name}{suffix}"', column)) for suffix, column in EXTERNAL]


def test_a_worker_starting_against_tables_in_shape_waits_for_no_lock(settings, db):
    """A sweep's DELETE holds a staging table (ROW EXCLUSIVE) in an open transaction; a new worker's
    schema step must not queue for ACCESS EXCLUSIVE behind it (it once did, on every start)."""
    sweeping = psycopg2.connect(settings.dsn())
    starting = Database(settings.replace(db_statement_timeout_s=5.0))  # another process's first use
    try:
        with sweeping.cursor() as cur:
            cur.execute(sql.SQL("DELETE FROM {} WHERE false").format(db.tables.raw))
        starting.ensure_schema()  # with an ACCESS EXCLUSIVE lock it waits, then fails at the timeout
        assert starting.run(starting.tables.ensure) == []
    finally:
        sweeping.rollback()
        sweeping.close()
        starting.close()


def test_tables_an_earlier_version_left_are_migrated_once(settings, db):
    as_an_earlier_version_left_them(db)
    assert storage(db) == ["x"] * len(EXTERNAL)
    starting = Database(settings)
    try:
        starting.ensure_schema()
        assert storage(db) == ["e"] * len(EXTERNAL)
        assert db.scalar("SELECT atthasdef FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'loaded_at'",
                         (f'"{db.tables.name}"',))
        assert starting.run(starting.tables.ensure) == []  # in shape now: nothing more to do
    finally:
        starting.close()


def test_four_workers_starting_beside_a_sweep_see_no_deadlock(stack, settings, db, task_queue, tmp_path):
    """Four worker processes start at once against tables that need migrating, while staging is
    swept without pause (as by a worker of the previous version): no deadlock in PostgreSQL's log."""
    as_an_earlier_version_left_them(db)
    server_log = stack.pg.data_dir / "server.log"
    seen = server_log.stat().st_size
    staging, stop, sweeps = Staging(db), threading.Event(), []

    def sweep() -> None:
        while not stop.is_set():
            sweeps.append(staging.sweep([], older_than_s=0))

    sweeper = threading.Thread(target=sweep, daemon=True)
    sweeper.start()
    deployment = f"schema-{uuid.uuid4().hex[:8]}"
    logs = [tmp_path / f"worker-{n}.log" for n in range(4)]
    workers = [WorkerProcess(settings, task_queue, kind=("etl_worker", "streaming_worker")[n % 2], log_path=log,
                             extra_env={"WORKER_DEPLOYMENT_NAME": deployment, "STAGING_SWEEP_S": "0.2"})
               for n, log in enumerate(logs)]
    try:
        for worker, log in zip(workers, logs):
            # Each worker's first sweep comes after its own schema step (guard: no timing claim).
            for _ in range(600):
                if "first sweep done" in log.read_text(errors="replace"):
                    break
                assert worker.proc.poll() is None, log.read_text(errors="replace")[-3000:]
                stop.wait(0.2)
            else:
                pytest.fail(f"no sweep in {log}: {log.read_text(errors='replace')[-3000:]}")
    finally:
        stop.set()
        sweeper.join(60)
        for worker in workers:
            worker.terminate()
    assert len(sweeps) > 1
    assert storage(db) == ["e"] * len(EXTERNAL)
    with open(server_log, "rb") as text:
        text.seek(seen)
        tail = text.read().decode(errors="replace")
    assert "deadlock detected" not in tail, tail[-3000:]
    assert not any("Traceback" in log.read_text(errors="replace") for log in logs)


def test_staging_tables_of_an_earlier_shape_take_todays_pages(settings):
    """Staging tables made when pages were text (`records`, `payload` NOT NULL, no `packed`): the
    schema step adds `packed` and frees the text columns, and a batch stages and loads through them."""
    from etl.core.models import transform
    from sources.synthetic.flows.events import record
    from tests.staged import stage_events, stage_page

    tables = Database(settings).tables
    conn = psycopg2.connect(settings.dsn())
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL(
        "CREATE UNLOGGED TABLE {} (batch_key TEXT NOT NULL, page_no INTEGER NOT NULL, records TEXT NOT NULL, "
        "created_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (batch_key, page_no)); "
        "CREATE UNLOGGED TABLE {} (batch_key TEXT NOT NULL, part INTEGER NOT NULL, rows INTEGER NOT NULL, "
        "payload TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (batch_key, part))"
        ).format(tables.raw, tables.staged_batches))
    conn.close()
    db = Database(settings)
    try:
        db.ensure_schema()
        staging = Staging(db)
        assert stage_page(staging, "old-shape/run/b0", 0, [{"x": 1}]) == 1
        assert stage_events(staging, "old-shape/run/b1", transform(record(3, 0.0, i) for i in range(10))[0])
        assert staging.load_staged("old-shape/run/b1", 10).inserted == 10
    finally:
        db.close()
