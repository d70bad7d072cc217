"""Writing events into the events table, idempotently, in one of three load modes.

A page of events goes in one COPY straight into the table, inside a savepoint: a page whose
events are all new (every page of a first run) costs PostgreSQL one write, whatever the mode.
If any event is already there, or twice in the page, the COPY fails on the unique index, the
savepoint is rolled back, and the page goes the conflict path: COPY into a temporary table,
where an event_id given twice keeps its last record (the later one wins, in every mode), then:

    insert    INSERT ... ON CONFLICT (event_id) DO NOTHING: a stored event is never touched
    upsert    an event whose content hash differs from the stored row's replaces it (every column
              but event_id; `loaded_by`/`loaded_at` say who changed it and when). One whose hash
              is equal is filtered out before the INSERT, so it is not even locked: no write, no
              dead tuple. A row stored before hashes (NULL) is compared column by column.
    history   as upsert; first, the versions about to be replaced are copied into
              `<table>_history`, valid from their `loaded_at` to this transaction's time, with
              the workflow id that replaced them (under a row lock, so a concurrent load cannot
              slip a version between the copy and the update)

Either way it is one transaction: a retry after a lost acknowledgement finds its rows there and
equal, so it neither inserts nor updates anything twice, nor writes a second history version.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import psycopg2.errors
from psycopg2 import sql

from etl.core.models import COLUMNS, Event
from etl.store.db import Database
from etl.store.schema import EVENT_COLUMNS

COLUMN_LIST = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
#: Every column a load may replace: all but event_id (and `id`).
_REPLACED = [c for c in COLUMNS if c != "event_id"]


def copy_text(value: str | None) -> str:
    """`value` as one field of PostgreSQL's COPY text format (None is NULL)."""
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


@dataclass(frozen=True)
class Written:
    """What one load did with its events."""

    inserted: int = 0
    updated: int = 0


class Events:
    """The events table of `db`."""

    def __init__(self, db: Database):
        self.db = db
        self.t = db.tables

    def insert(self, events: Sequence[Event], *, loaded_by: str | None = None, mode: str = "insert",
               then: Callable[[Any, Written], None] | None = None) -> Written:
        """Load `events` in `mode`; returns how many rows were inserted and updated. `then(cursor,
        written)` runs in the same transaction, so what it writes (a resume point, a ledger row)
        commits with the rows or not at all."""
        hashed = mode != "insert"
        payload = "".join(event.copy_row(hashed) for event in events).encode("utf-8")

        def load(cur) -> Written:
            written = self.copy(cur, payload, loaded_by, mode) if events else Written()
            if then is not None:
                then(cur, written)
            return written

        return self.db.run(load, what=f"{mode} of {len(events)} events")

    def copy(self, cur, payload: bytes, loaded_by: str | None, mode: str = "insert") -> Written:
        """Load the events of `payload` (`Event.copy_row` lines as UTF-8) in `mode`, inside the
        caller's transaction."""
        cur.execute("SAVEPOINT etl_direct_copy")
        try:
            # Every line ends in a newline that is a row's end (values' own are escaped), so
            # one replace appends the `loaded_by` column to every row.
            cur.copy_expert(
                sql.SQL("COPY {events} ({cols}, loaded_by) FROM STDIN").format(events=self.t.events, cols=COLUMN_LIST),
                io.BytesIO(payload.replace(b"\n", ("\t" + copy_text(loaded_by) + "\n").encode("utf-8"))))
            inserted = cur.rowcount
            cur.execute("RELEASE SAVEPOINT etl_direct_copy")
            return Written(inserted)
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT etl_direct_copy")
        self._buffer(cur, payload)
        if mode == "history":
            self._keep_versions(cur, loaded_by)
        if mode == "insert":
            cur.execute(sql.SQL("INSERT INTO {events} ({cols}, loaded_by, loaded_at) SELECT {cols}, %s, now() "
                                "FROM ({latest}) AS b ON CONFLICT (event_id) DO NOTHING").format(
                events=self.t.events, cols=COLUMN_LIST, latest=_LATEST), (loaded_by,))
            return Written(cur.rowcount)
        cur.execute(sql.SQL(
            "WITH w AS (INSERT INTO {events} AS e ({cols}, loaded_by, loaded_at) SELECT {cols}, %s, now() "
            "FROM ({latest}) AS b WHERE NOT EXISTS (SELECT 1 FROM {events} AS s WHERE s.event_id = b.event_id "
            "AND s.content_hash = b.content_hash) "
            "ON CONFLICT (event_id) DO UPDATE SET ({replaced}, loaded_by, loaded_at) = ({excluded}, "
            "excluded.loaded_by, now()) WHERE {changed} RETURNING (xmax = 0) AS new) "
            "SELECT count(*) FILTER (WHERE new), count(*) FILTER (WHERE NOT new) FROM w").format(
            events=self.t.events, cols=COLUMN_LIST, latest=_LATEST, replaced=_names(_REPLACED),
            excluded=_names(_REPLACED, "excluded"), changed=_changed("e", "excluded")), (loaded_by,))
        inserted, updated = cur.fetchone()
        return Written(inserted, updated)

    def _buffer(self, cur, payload: bytes) -> None:
        """`payload` in this transaction's temporary table, rows numbered in their order."""
        cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS etl_load_buffer (ord BIGINT GENERATED ALWAYS AS "
                            "IDENTITY, " + EVENT_COLUMNS.format(event_id="event_id TEXT NOT NULL") +
                            ") ON COMMIT DELETE ROWS"))
        cur.copy_expert(sql.SQL("COPY etl_load_buffer ({cols}) FROM STDIN").format(cols=COLUMN_LIST),
                        io.BytesIO(payload))

    def _keep_versions(self, cur, replaced_by: str | None) -> None:
        """Copy the stored versions the load is about to replace into the history table, locked."""
        cur.execute(sql.SQL(
            "WITH old AS (SELECT e.* FROM {events} AS e JOIN ({latest}) AS b USING (event_id) WHERE {changed} "
            "FOR UPDATE OF e) "
            "INSERT INTO {history} ({cols}, loaded_by, valid_from, valid_to, replaced_by) "
            "SELECT {cols}, loaded_by, loaded_at, now(), %s FROM old").format(
            events=self.t.events, history=self.t.history, cols=COLUMN_LIST, latest=_LATEST,
            changed=_changed("e", "b")), (replaced_by,))


#: The buffer's rows, one an event_id: its last.
_LATEST = sql.SQL("SELECT DISTINCT ON (event_id) * FROM etl_load_buffer ORDER BY event_id, ord DESC")


def _names(columns: list[str], alias: str | None = None) -> sql.Composable:
    """`columns`, each qualified by `alias` (one of this module's own: e, b, excluded) when given."""
    return sql.SQL(", ").join(sql.SQL(alias + ".") + sql.Identifier(c) if alias else sql.Identifier(c)
                              for c in columns)


def _changed(stored: str, given: str) -> sql.Composable:
    """SQL: the given version differs from the stored row, by hash, or column by column for a row
    stored before hashes."""
    columns = [c for c in _REPLACED if c != "content_hash"]
    return sql.SQL("({s}.content_hash IS DISTINCT FROM {g}.content_hash AND ({s}.content_hash IS NOT NULL "
                   "OR ({sc}) IS DISTINCT FROM ({gc})))").format(
        s=sql.SQL(stored), g=sql.SQL(given), sc=_names(columns, stored), gc=_names(columns, given))
