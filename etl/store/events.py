"""Writing events into the events table, idempotently.

A page of events goes in one COPY straight into the table, inside a savepoint: a page whose
events are all new (every page of a first run) costs PostgreSQL one write. If any event is
already there, or twice in the page, the COPY fails on the unique index, the savepoint is
rolled back, and the page goes the conflict path: COPY into a temporary table, then
`INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING`. Either way it is one transaction:
duplicates are skipped, and a retry after a lost acknowledgement inserts nothing twice. Each
new row records `loaded_by` (the loading workflow id) and `loaded_at` (the transaction's time).
"""

from __future__ import annotations

import io
from typing import Any, Callable, Sequence

import psycopg2.errors
from psycopg2 import sql

from etl.core.models import COLUMNS, Event
from etl.store.db import Database

COLUMN_LIST = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))


def copy_text(value: str | None) -> str:
    """`value` as one field of PostgreSQL's COPY text format (None is NULL)."""
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class Events:
    """The events table of `db`."""

    def __init__(self, db: Database):
        self.db = db
        self.table = db.tables.events

    def insert(self, events: Sequence[Event], *, loaded_by: str | None = None,
               then: Callable[[Any, int], None] | None = None) -> int:
        """Insert `events` idempotently; returns how many rows were new. `then(cursor, inserted)`
        runs in the same transaction, so what it writes (a resume point, a ledger row) commits
        with the rows or not at all."""
        payload = "".join(event.copy_row() for event in events).encode("utf-8")

        def load(cur) -> int:
            inserted = self.copy(cur, payload, loaded_by) if events else 0
            if then is not None:
                then(cur, inserted)
            return inserted

        return self.db.run(load, what=f"insert of {len(events)} events")

    def copy(self, cur, payload: bytes, loaded_by: str | None) -> int:
        """Insert the events of `payload` (`Event.copy_row` lines as UTF-8) that are not in the
        table yet, inside the caller's transaction; returns how many were new."""
        cur.execute("SAVEPOINT etl_direct_copy")
        try:
            # Every line ends in a newline that is a row's end (values' own are escaped), so
            # one replace appends the `loaded_by` column to every row.
            cur.copy_expert(
                sql.SQL("COPY {events} ({cols}, loaded_by) FROM STDIN").format(events=self.table, cols=COLUMN_LIST),
                io.BytesIO(payload.replace(b"\n", ("\t" + copy_text(loaded_by) + "\n").encode("utf-8"))))
            inserted = cur.rowcount
            cur.execute("RELEASE SAVEPOINT etl_direct_copy")
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT etl_direct_copy")
            inserted = self._insert_new(cur, payload, loaded_by)
        return inserted

    def _insert_new(self, cur, payload: bytes, loaded_by: str | None) -> int:
        """The rows of `payload` not yet in the table (by event_id), inserted; returns how many."""
        cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS etl_load_buffer ON COMMIT DELETE ROWS "
                            "AS SELECT {cols} FROM {events} WITH NO DATA").format(events=self.table, cols=COLUMN_LIST))
        cur.copy_expert(sql.SQL("COPY etl_load_buffer ({cols}) FROM STDIN").format(cols=COLUMN_LIST),
                        io.BytesIO(payload))
        cur.execute(sql.SQL("INSERT INTO {events} ({cols}, loaded_by, loaded_at) SELECT {cols}, %s, now() "
                            "FROM etl_load_buffer ON CONFLICT (event_id) DO NOTHING"
                            ).format(events=self.table, cols=COLUMN_LIST), (loaded_by,))
        return cur.rowcount
