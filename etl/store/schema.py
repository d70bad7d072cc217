"""The tables the project owns, named from `EVENTS_TABLE`, and their DDL.

    events            the product: one row per event, `event_id` unique
    events_rejects    records that could not become events, with the reason
    events_raw_pages  ETLFlow claim checks: extracted batches, one row per source page (its records
                      pickled or as JSON lines, see `etl.activities.raw_pages`, LZ4-compressed in
                      `packed`; earlier versions wrote JSON lines in `records`)
    events_staged_batches  ETLFlow claim checks: each transformed batch waiting for load, a row per page
                      of COPY text (LZ4 in `packed`; earlier versions wrote the text in `payload`, and
                      before that `events_staged`, one row per event, kept while their flows may run)
    events_staged     ETLFlow claim checks of earlier versions: transformed events, a row each
    events_loads      ETLFlow's loaded batches, so a retried load reports the same counts
    events_cursors    resume points: the last committed page of each chunk or batch extract, written
                      in the page's own transaction (and a done marker after the last page)
    events_ledger     append-only: one row per committed page or load (records, rows inserted, workflow,
                      attempt); what the rework and doubling figures are measured from

`events` also carries provenance: `loaded_by` (the loading workflow id) and `loaded_at`. Columns
added after a table was first created are added by `ALTER TABLE ... ADD COLUMN IF NOT EXISTS`,
so an existing table is migrated the first time a worker touches it.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from etl.core.settings import validate_identifier

#: The event columns (SPEC's data model) shared by the events table and its staging twin;
#: `{event_id}` is filled per table (unique in `events`, repeated across retries in staging).
EVENT_COLUMNS = (
    "source_kind_id TEXT, parent_item_id TEXT, {event_id}, event_type TEXT, relation_type TEXT, "
    "employee_id TEXT, event_time_utc TIMESTAMP NOT NULL, week DATE NOT NULL, timezone TEXT, "
    "event_time TIMESTAMP, event_properties JSONB, relation_properties JSONB, metrics JSONB"
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
    def staged(self) -> sql.Identifier:
        return self._id("_staged")

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
    def staging_tables(self) -> tuple[sql.Identifier, ...]:
        """What a flow leaves while it runs and must not leave when it ends."""
        return (self.raw, self.staged_batches, self.staged, self.cursors)

    def ddl(self) -> list[sql.Composed]:
        """Statements that create every table; running them twice is harmless."""
        f = sql.SQL
        return [
            f(
                "CREATE TABLE IF NOT EXISTS {events} (id BIGSERIAL PRIMARY KEY, " + EVENT_COLUMNS.format(
                    event_id="event_id TEXT UNIQUE NOT NULL") + ")"
            ).format(events=self.events),
            f(
                """CREATE TABLE IF NOT EXISTS {rejects} (
                    id BIGSERIAL PRIMARY KEY,
                    reject_key TEXT UNIQUE NOT NULL,
                    source TEXT,
                    strategy TEXT,
                    workflow_id TEXT,
                    reason TEXT NOT NULL,
                    record JSONB,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            ).format(rejects=self.rejects),
            f(
                # UNLOGGED (no WAL): a crash of PostgreSQL empties it, and ETLFlow extracts the
                # lost batches again; everything else here is logged.
                """CREATE UNLOGGED TABLE IF NOT EXISTS {raw} (
                    batch_key TEXT NOT NULL,
                    page_no INTEGER NOT NULL,
                    records TEXT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    PRIMARY KEY (batch_key, page_no))"""
            ).format(raw=self.raw),
            f(
                "CREATE UNLOGGED TABLE IF NOT EXISTS {staged} (batch_key TEXT NOT NULL, " + EVENT_COLUMNS.format(
                    event_id="event_id TEXT NOT NULL") + ")"
            ).format(staged=self.staged),
            f("CREATE INDEX IF NOT EXISTS {idx} ON {staged} (batch_key)").format(
                # Short suffix: with a 48-character EVENTS_TABLE the name stays under PostgreSQL's 63.
                idx=sql.Identifier(self.name + "_staged_bk"), staged=self.staged
            ),
            f(
                # A row a batch (a few for a huge one, see etl.store.staging.PART_CHARS): the transform's
                # COPY text, read back by the load. UNLOGGED as
                # the raw pages (a lost batch is extracted again); EXTERNAL: stored uncompressed.
                """CREATE UNLOGGED TABLE IF NOT EXISTS {batches} (
                    batch_key TEXT NOT NULL,
                    part INTEGER NOT NULL,
                    rows INTEGER NOT NULL,
                    payload TEXT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    PRIMARY KEY (batch_key, part))"""
            ).format(batches=self.staged_batches),
            f("ALTER TABLE {batches} ALTER COLUMN payload SET STORAGE EXTERNAL").format(
                batches=self.staged_batches),
            f(
                """CREATE TABLE IF NOT EXISTS {loads} (
                    batch_key TEXT PRIMARY KEY,
                    staged INTEGER NOT NULL,
                    inserted INTEGER NOT NULL,
                    loaded_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            ).format(loads=self.loads),
            f(
                """CREATE TABLE IF NOT EXISTS {cursors} (
                    unit_key TEXT PRIMARY KEY,
                    state JSONB NOT NULL,
                    done BOOLEAN NOT NULL DEFAULT false,
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            ).format(cursors=self.cursors),
            f(
                """CREATE TABLE IF NOT EXISTS {ledger} (
                    id BIGSERIAL PRIMARY KEY,
                    unit_key TEXT NOT NULL,
                    page_no INTEGER,
                    kind TEXT NOT NULL,
                    records INTEGER NOT NULL,
                    inserted INTEGER NOT NULL,
                    workflow_id TEXT,
                    attempt INTEGER,
                    at TIMESTAMPTZ NOT NULL DEFAULT now())"""
            ).format(ledger=self.ledger),
            # Migrations of tables made by earlier versions (no-ops on fresh ones).
            *(f("DO $$BEGIN IF (SELECT relpersistence FROM pg_class WHERE oid = {name}::regclass) = 'p' "
                "THEN ALTER TABLE {t} SET UNLOGGED; END IF; END$$").format(
                name=sql.Literal(f'"{self.name}{suffix}"'), t=self._id(suffix)) for suffix in ("_raw_pages", "_staged")),
            f("ALTER TABLE {events} ADD COLUMN IF NOT EXISTS loaded_by TEXT, "
              "ADD COLUMN IF NOT EXISTS loaded_at TIMESTAMPTZ").format(events=self.events),
            # The load's time by default: a page COPY'd straight in (etl.store.db) gets it like an INSERT.
            f("ALTER TABLE {events} ALTER COLUMN loaded_at SET DEFAULT now()").format(events=self.events),
            # Raw pages are written once and read once: PostgreSQL's compression (pglz) of a
            # megabyte page cost more CPU than its smaller size saves (scripts/bench.py).
            f("ALTER TABLE {raw} ALTER COLUMN records SET STORAGE EXTERNAL").format(raw=self.raw),
            # Pages and transformed batches compressed by the worker (etl.store.staging.pack), stored as
            # they come: the text columns stay for rows staged by versions before it ('' in new rows).
            *(f("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS packed BYTEA").format(t=t)
              for t in (self.raw, self.staged_batches)),
            *(f("ALTER TABLE {t} ALTER COLUMN packed SET STORAGE EXTERNAL").format(t=t)
              for t in (self.raw, self.staged_batches)),
            f("ALTER TABLE {staged} ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ NOT NULL DEFAULT now()").format(
                staged=self.staged),
        ]
