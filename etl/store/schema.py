"""The tables the project owns, named from `EVENTS_TABLE`, and their DDL.

    events            the product: one row per event, `event_id` unique
    events_rejects    records that could not become events, with the reason
    events_raw_pages  ETLFlow claim checks: extracted batches, one row per source page (its records
                      pickled or as JSON lines, see `etl.store.page_format`, LZ4-compressed in `packed`)
    events_staged_batches  ETLFlow claim checks: each transformed batch waiting for load, a row per page
                      of COPY text (LZ4-compressed in `packed`)
    events_loads      ETLFlow's loaded batches, so a retried load reports the same counts
    events_cursors    resume points: the last committed page of each chunk or batch extract, written
                      in the page's own transaction (and a done marker after the last page)
    events_ledger     append-only: one row per committed page or load (records, rows inserted, workflow,
                      attempt); what the rework and doubling figures are measured from
    events_archive    the source archive: answers flows read from their sources (`etl.store.archive`)
    events_budgets    each source's rate budget, shared by the fleet: a row per source and credential
                      hash (`etl.store.budgets`)

`events` also carries provenance: `loaded_by` (the loading workflow id) and `loaded_at`.

The schema step (`Tables.ensure`, run once per process before its first statement) is two parts:
`create()` makes the tables that are missing, and `migrations()` brings tables made by earlier
versions to today's shape (a column added, a storage setting, UNLOGGED). Each migration names the
catalog query that says whether a table needs it, so a worker starting against tables already in
shape reads the catalog and takes no lock at all. When one is needed, it runs under the schema lock
(an advisory lock the staging sweep holds shared, so the two never run together) and takes the
ACCESS EXCLUSIVE locks of every table it alters at once, giving them back and trying again while
another transaction holds one: waiting holding some would deadlock with a transaction that holds
another and wants these (as the sweep's DELETEs once did).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import psycopg2.errors
from psycopg2 import sql

from etl.core.settings import validate_identifier

log = logging.getLogger(__name__)

#: The schema lock of one events table (an advisory lock key; the parameter is `Tables.name`): the
#: schema step holds it exclusively while it creates or migrates, the staging sweep shared.
SCHEMA_LOCK_KEY = "hashtext(%s)"
#: How long the migration waits for one table's lock before giving back the ones it holds: under
#: PostgreSQL's deadlock_timeout (1 s), so no wait of ours is ever reported as a deadlock.
LOCK_WAIT_MS = 100
#: How long it keeps trying before it says which tables it could not lock.
LOCK_PATIENCE_S = 120.0


@dataclass(frozen=True)
class Migration:
    """One step from an earlier version's table to today's: `statement`, run when `needed` (a
    catalog query answering one boolean) says so."""

    table: sql.Identifier
    needed: sql.Composed
    statement: sql.Composed


#: The event columns (SPEC's data model) shared by the events table and its staging twin;
#: `{event_id}` is filled per table (unique in `events`, repeated across retries in staging).
EVENT_COLUMNS = (
    "source_kind_id TEXT, parent_item_id TEXT, {event_id}, event_type TEXT, relation_type TEXT, "
    "employee_id TEXT, event_time_utc TIMESTAMP NOT NULL, week DATE NOT NULL, timezone TEXT, "
    "event_time TIMESTAMP, event_properties JSONB, relation_properties JSONB, metrics JSONB, content_hash UUID"
)


@dataclass(frozen=True)
class Tables:
    """The quoted identifiers of every table derived from one events table name."""

    name: str

    def __post_init__(self) -> None:
        validate_identifier("EVENTS_TABLE", self.name)

    def _id(self, suffix: str = "") -> sql.Identifier:
        return sql.Identifier(self.name + suffix)

    @property
    def events(self) -> sql.Identifier:
        return self._id()

    @property
    def rejects(self) -> sql.Identifier:
        return self._id("_rejects")

    @property
    def raw(self) -> sql.Identifier:
        return self._id("_raw_pages")

    @property
    def staged_batches(self) -> sql.Identifier:
        return self._id("_staged_batches")

    @property
    def loads(self) -> sql.Identifier:
        return self._id("_loads")

    @property
    def cursors(self) -> sql.Identifier:
        return self._id("_cursors")

    @property
    def ledger(self) -> sql.Identifier:
        return self._id("_ledger")

    @property
    def history(self) -> sql.Identifier:
        return self._id("_history")

    @property
    def archive(self) -> sql.Identifier:
        return self._id("_archive")

    @property
    def budgets(self) -> sql.Identifier:
        return self._id("_budgets")

    @property
    def staging_tables(self) -> tuple[sql.Identifier, ...]:
        """What a flow leaves while it runs and must not leave when it ends."""
        return (self.raw, self.staged_batches, self.cursors)

    def _regclass(self, relation: sql.Identifier) -> sql.Composed:
        """`relation`'s oid, NULL when it does not exist (the name is a validated identifier)."""
        return sql.SQL("to_regclass({})").format(sql.Literal('"' + relation.strings[0] + '"'))

    def _column(self, table: sql.Identifier, column: str, condition: str) -> sql.Composed:
        """A catalog query: whether `column` of `table` meets `condition` (SQL over pg_attribute);
        false when the table or the column does not exist."""
        return sql.SQL("SELECT coalesce((SELECT " + condition + " FROM pg_attribute WHERE attrelid = {rel} "
                       "AND attname = {col} AND NOT attisdropped), false)").format(
            rel=self._regclass(table), col=sql.Literal(column))

    def _column_missing(self, table: sql.Identifier, column: str) -> sql.Composed:
        return sql.SQL("SELECT {rel} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = {rel} "
                       "AND attname = {col} AND NOT attisdropped)").format(
            rel=self._regclass(table), col=sql.Literal(column))

    def create(self) -> list[tuple[sql.Identifier, sql.Composed]]:
        """(relation, the statement that makes it) for every table and index, in order; `ensure`
        runs only those whose relation is missing."""
        f = sql.SQL
        return [
            (self.events, f("CREATE TABLE IF NOT EXISTS {events} (id BIGSERIAL PRIMARY KEY, " + EVENT_COLUMNS.format(
                event_id="event_id TEXT UNIQUE NOT NULL") + ")").format(events=self.events)),
            (self.rejects, f(
                """CREATE TABLE IF NOT EXISTS {rejects} (
                    id BIGSERIAL PRIMARY KEY,
                    reject_key TEXT UNIQUE NOT NULL,
                    source TEXT,
                    strategy TEXT,
                    workflow_id TEXT,
                    reason TEXT NOT NULL,
                    record JSONB,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            ).format(rejects=self.rejects)),
            # UNLOGGED (no WAL): a crash of PostgreSQL empties it, and ETLFlow extracts the
            # lost batches again; everything else here is logged.
            (self.raw, f(
                """CREATE UNLOGGED TABLE IF NOT EXISTS {raw} (
                    batch_key TEXT NOT NULL,
                    page_no INTEGER NOT NULL,
                    packed BYTEA NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    PRIMARY KEY (batch_key, page_no))"""
            ).format(raw=self.raw)),
            # A row a batch (a few for a huge one, see etl.store.staging.PART_CHARS): the transform's
            # COPY text, read back by the load. UNLOGGED as the raw pages (a lost batch is extracted again).
            (self.staged_batches, f(
                """CREATE UNLOGGED TABLE IF NOT EXISTS {batches} (
                    batch_key TEXT NOT NULL,
                    part INTEGER NOT NULL,
                    rows INTEGER NOT NULL,
                    packed BYTEA NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    PRIMARY KEY (batch_key, part))"""
            ).format(batches=self.staged_batches)),
            (self.loads, f(
                """CREATE TABLE IF NOT EXISTS {loads} (
                    batch_key TEXT PRIMARY KEY,
                    staged INTEGER NOT NULL,
                    inserted INTEGER NOT NULL,
                    updated INTEGER NOT NULL DEFAULT 0,
                    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            ).format(loads=self.loads)),
            (self.cursors, f(
                """CREATE TABLE IF NOT EXISTS {cursors} (
                    unit_key TEXT PRIMARY KEY,
                    state JSONB NOT NULL,
                    done BOOLEAN NOT NULL DEFAULT false,
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            ).format(cursors=self.cursors)),
            (self.ledger, f(
                """CREATE TABLE IF NOT EXISTS {ledger} (
                    id BIGSERIAL PRIMARY KEY,
                    unit_key TEXT NOT NULL,
                    page_no INTEGER,
                    kind TEXT NOT NULL,
                    records INTEGER NOT NULL,
                    inserted INTEGER NOT NULL,
                    workflow_id TEXT,
                    attempt INTEGER,
                    updated INTEGER NOT NULL DEFAULT 0,
                    at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            ).format(ledger=self.ledger)),
            # `history` load mode: each version an event had before a load replaced it, valid from its
            # load to the replacing one (README, "Load modes").
            (self.history, f("CREATE TABLE IF NOT EXISTS {history} (id BIGSERIAL PRIMARY KEY, " + EVENT_COLUMNS.format(
                event_id="event_id TEXT NOT NULL") + ", loaded_by TEXT, valid_from TIMESTAMPTZ, "
                "valid_to TIMESTAMPTZ NOT NULL, replaced_by TEXT)").format(history=self.history)),
            (self._id("_history_at"), f("CREATE INDEX IF NOT EXISTS {idx} ON {history} (event_id, valid_to)").format(
                idx=self._id("_history_at"), history=self.history)),
            (self.archive, f(
                """CREATE TABLE IF NOT EXISTS {archive} (
                    id BIGSERIAL PRIMARY KEY,
                    source TEXT NOT NULL,
                    strategy TEXT NOT NULL,
                    workflow_id TEXT NOT NULL,
                    method TEXT NOT NULL,
                    target TEXT NOT NULL,
                    accept TEXT NOT NULL,
                    status INTEGER NOT NULL,
                    headers JSONB NOT NULL,
                    body BYTEA NOT NULL,
                    body_bytes INTEGER NOT NULL,
                    fetched_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    UNIQUE (source, method, target, accept, workflow_id))"""
            ).format(archive=self.archive)),
            # The retention sweep deletes by age.
            (self._id("_archive_fetched"), f("CREATE INDEX IF NOT EXISTS {i} ON {archive} (fetched_at)").format(
                i=self._id("_archive_fetched"), archive=self.archive)),
            (self.budgets, f(
                """CREATE TABLE IF NOT EXISTS {budgets} (
                    budget_key TEXT PRIMARY KEY,
                    source TEXT NOT NULL,
                    slots JSONB NOT NULL DEFAULT '{{}}',
                    leases JSONB NOT NULL DEFAULT '{{}}',
                    spent_until TIMESTAMPTZ,
                    sent BIGINT NOT NULL DEFAULT 0,
                    refused BIGINT NOT NULL DEFAULT 0,
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            ).format(budgets=self.budgets)),
        ]

    def migrations(self) -> list[Migration]:
        """Earlier versions' tables to today's shape, in order (each `needed` is asked after the
        steps before it ran); a fresh table made by `create` needs only the ones for columns that
        `create` leaves to them."""
        f, m = sql.SQL, Migration

        def add_column(table, definition: str) -> Migration:
            column = definition.split()[0]
            return m(table, self._column_missing(table, column),
                     f("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS " + definition).format(t=table))

        def external(table, column: str) -> Migration:
            # Written once and read once, or compressed by the worker already (etl.store.staging.pack):
            # PostgreSQL's compression (pglz) of a megabyte page cost more CPU than it saved (scripts/bench.py).
            return m(table, self._column(table, column, "attstorage <> 'e'"),
                     f("ALTER TABLE {t} ALTER COLUMN {c} SET STORAGE EXTERNAL").format(t=table, c=sql.Identifier(column)))

        def unlogged(table) -> Migration:
            return m(table, f("SELECT coalesce((SELECT relpersistence = 'p' FROM pg_class WHERE oid = {rel}), false)"
                              ).format(rel=self._regclass(table)),
                     f("ALTER TABLE {t} SET UNLOGGED").format(t=table))

        def nullable(table, column: str) -> Migration:
            return m(table, self._column(table, column, "attnotnull"),
                     f("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL").format(t=table, c=sql.Identifier(column)))

        return [
            unlogged(self.raw),
            add_column(self.events, "loaded_by TEXT"),
            add_column(self.events, "loaded_at TIMESTAMPTZ"),
            # Load modes (upsert, history): a row's content hash, NULL in rows loaded before it (and in
            # `insert` mode); a NULL one is compared column by column instead.
            add_column(self.events, "content_hash UUID"),
            add_column(self.loads, "updated INTEGER NOT NULL DEFAULT 0"),
            add_column(self.ledger, "updated INTEGER NOT NULL DEFAULT 0"),
            # The load's time by default: a page COPY'd straight in (etl.store.events) gets it like an INSERT.
            m(self.events, self._column(self.events, "loaded_at", "NOT atthasdef"),
              f("ALTER TABLE {events} ALTER COLUMN loaded_at SET DEFAULT now()").format(events=self.events)),
            # Staging tables made before pages were compressed by the worker (etl.store.staging.pack):
            # the compressed column, stored as it comes; their text columns are no longer written.
            add_column(self.raw, "packed BYTEA"),
            add_column(self.staged_batches, "packed BYTEA"),
            external(self.raw, "packed"),
            external(self.staged_batches, "packed"),
            nullable(self.raw, "records"),
            nullable(self.staged_batches, "payload"),
        ]

    def ddl(self) -> list[sql.Composed]:
        """Every statement `ensure` may run, creations then migrations (each harmless twice)."""
        return [statement for _, statement in self.create()] + [step.statement for step in self.migrations()]

    def _pending_query(self) -> sql.Composed:
        missing = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(self._regclass(rel)) for rel, _ in self.create())
        needed = sql.SQL(" OR ").join(sql.SQL("({})").format(step.needed) for step in self.migrations())
        return sql.SQL("SELECT {} OR {}").format(missing, needed)

    def ensure(self, cur) -> list[str]:
        """Create the missing tables and migrate the ones that need it, in the caller's transaction;
        returns what it did (empty when the catalog says every table is in shape: then no lock is
        taken). Concurrent callers serialise on the schema lock; the staging sweep never runs beside."""
        cur.execute(self._pending_query())
        if not cur.fetchone()[0]:
            return []
        cur.execute(sql.SQL("SELECT pg_advisory_xact_lock(" + SCHEMA_LOCK_KEY + ")"), (self.name,))
        done = []
        for relation, statement in self.create():
            cur.execute(sql.SQL("SELECT {} IS NULL").format(self._regclass(relation)))
            if cur.fetchone()[0]:
                cur.execute(statement)
                done.append(f"created {relation.strings[0]}")
        steps = self.migrations()
        locked = False
        for step in steps:
            cur.execute(step.needed)
            if not cur.fetchone()[0]:
                continue
            if not locked:
                self._lock(cur, [s.table for s in steps])
                locked = True
            cur.execute(step.statement)
            done.append(step.statement.as_string(cur))
        if done:
            log.info("schema of %s: %s", self.name, "; ".join(done))
        return done

    def _lock(self, cur, tables: list[sql.Identifier]) -> None:
        """ACCESS EXCLUSIVE on every one of `tables`, all or none at a time (see the module docstring)."""
        names = dict.fromkeys(table.strings[0] for table in tables)
        statement = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(map(sql.Identifier, names)))
        deadline = time.monotonic() + LOCK_PATIENCE_S
        pause = 0.05
        while True:
            cur.execute("SAVEPOINT etl_schema_lock")
            try:
                cur.execute(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}")
                cur.execute(statement)
                cur.execute("RELEASE SAVEPOINT etl_schema_lock")
                cur.execute("SET LOCAL lock_timeout = DEFAULT")  # every lock needed is held now
                return
            except psycopg2.errors.LockNotAvailable:
                cur.execute("ROLLBACK TO SAVEPOINT etl_schema_lock")  # gives back the locks it got
                if time.monotonic() > deadline:
                    raise
            time.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, 2.0)
