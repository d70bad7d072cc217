"""The staging sweep every worker process runs: staging of flows that ended without cleaning up.

A flow drops its own staging when it completes or fails (`finish_flow`, `finish_stream`). A flow
that was terminated, timed out or reset cannot, so every `STAGING_SWEEP_S` each worker lists the
flows that have rows in staging, asks Temporal about each run, and removes the staging of runs that
are closed (a run that continued as new counts as open while its chain runs). Rows older than
`STAGING_RETENTION_S` go whatever Temporal says (a history already deleted, another namespace's
flow). Each sweep updates `etl_staging_bytes` and counts what it removed in
`etl_staging_rows_swept_total`; it also removes archived source answers older than
ARCHIVE_RETENTION_DAYS and updates `etl_archive_bytes`. Removing is idempotent, so workers sweeping at once do no harm.

A sweep holds its events table's schema lock shared (`SweepGuard`), so it never runs beside the
schema step of a worker starting against tables that need migrating: that step waits for the
sweeps in progress, and a sweep due meanwhile is skipped until the next round.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg2
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from etl import metrics
from etl.core.settings import Settings
from etl.store.archive import Archive
from etl.store.db import Database
from etl.store.schema import SCHEMA_LOCK_KEY
from etl.store.staging import Staging

log = logging.getLogger(__name__)

#: Staging younger than this is never swept: a flow that has just started may not be visible yet.
GRACE_S = 5.0


async def _ended(client: Client, flow_key: str) -> bool:
    """True when the run that owns `flow_key` (`workflow_id/run_id`) has closed for good."""
    workflow_id, _, run_id = flow_key.rpartition("/")
    if not workflow_id:
        return False
    try:
        run = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
        if run.status == WorkflowExecutionStatus.RUNNING:
            return False
        if run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
            # The chain keeps the first run's flow key: it ends when its latest run does.
            latest = await client.get_workflow_handle(workflow_id).describe()
            return latest.status not in (WorkflowExecutionStatus.RUNNING,
                                         WorkflowExecutionStatus.CONTINUED_AS_NEW)
        return True
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return True  # no such run (history deleted): nothing will come back for it
        raise


async def sweep_once(client: Client, staging: Staging, retention_s: float, grace_s: float = GRACE_S) -> int:
    """One sweep; returns the rows removed."""
    flows = await asyncio.to_thread(staging.flows)
    ended = [key for key, age in flows.items() if age > grace_s and await _ended(client, key)]
    removed = await asyncio.to_thread(staging.sweep, ended, retention_s)
    metrics.STAGING_SWEPT.inc(removed)
    metrics.STAGING_BYTES.set(await asyncio.to_thread(staging.size_bytes))
    if removed:
        log.info("staging sweep: %d rows of %d ended flows removed", removed, len(ended))
    return removed


class SweepGuard:
    """The schema lock of one events table, held shared while a sweep runs, on a connection of its
    own (a session lock must not go back to the pool with its holder's pages)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.conn = None

    def _cursor(self):
        if self.conn is None or self.conn.closed:
            self.conn = psycopg2.connect(self.settings.dsn(), connect_timeout=10)
            self.conn.autocommit = True
        return self.conn.cursor()

    def acquire(self) -> bool:
        """True when the lock is held now; False while a schema step holds it or waits for it."""
        try:
            with self._cursor() as cur:
                cur.execute("SELECT pg_try_advisory_lock_shared(" + SCHEMA_LOCK_KEY + ")",
                            (self.settings.events_table,))
                return bool(cur.fetchone()[0])
        except psycopg2.Error:
            self.close()
            raise

    def release(self) -> None:
        try:
            with self._cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock_shared(" + SCHEMA_LOCK_KEY + ")", (self.settings.events_table,))
        except psycopg2.Error:
            self.close()  # a closed session holds no lock

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


async def guarded_sweep(client: Client, staging: Staging, guard: SweepGuard, retention_s: float,
                        grace_s: float = GRACE_S) -> int | None:
    """`sweep_once` under the schema lock held shared; None (nothing done) while a schema step
    holds it or waits for it."""
    await asyncio.to_thread(staging.db.ensure_schema)  # this process's own schema step comes first
    if not await asyncio.to_thread(guard.acquire):
        log.info("staging sweep skipped: the schema of %s is being migrated", staging.db.tables.name)
        return None
    try:
        return await sweep_once(client, staging, retention_s, grace_s)
    finally:
        await asyncio.to_thread(guard.release)


async def sweep_archive(archive: Archive, retention_days: int) -> int:
    """Remove archived answers past ARCHIVE_RETENTION_DAYS, and measure the archive for /metrics."""
    removed = await asyncio.to_thread(archive.sweep, retention_days)
    metrics.ARCHIVE_SWEPT.inc(removed)
    metrics.ARCHIVE_BYTES.set(await asyncio.to_thread(archive.size_bytes))
    if removed:
        log.info("archive sweep: %d answers older than %d days removed", removed, retention_days)
    return removed


async def sweep_forever(client: Client, settings: Settings) -> None:
    """Sweep every `STAGING_SWEEP_S` until cancelled; a failed sweep is logged and tried again."""
    staging = Staging(Database.get(settings))
    guard = SweepGuard(settings)
    first = True
    try:
        while True:
            try:
                removed = await guarded_sweep(client, staging, guard, settings.staging_retention_s)
                await sweep_archive(Archive(staging.db), settings.archive_retention_days)
                if first and removed is not None:
                    first = False
                    log.info("staging of %s: first sweep done, the next every %gs", settings.events_table,
                             settings.staging_sweep_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("staging sweep failed: %s", exc)
            await asyncio.sleep(settings.staging_sweep_s)
    finally:
        guard.close()
