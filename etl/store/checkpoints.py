"""Resume points that commit with the work they describe, and the ledger of every commit.

A heartbeat is a hint: the SDK throttles them, and a SIGKILL loses the last one. So after each
page a chunk (or a batch extract) writes its state into `events_cursors` in the *same
transaction* as the page's rows, and a retry starts from there: what a crash costs is at most
the page that had not committed. After the last page the row is marked done, so a crash
between the last commit and the activity's completion does not start the read again.

Every commit also appends a row to `events_ledger` (unit, page number, records, rows inserted
and updated, workflow id, attempt). The ledger is what the rework and doubling figures are measured from:
a page committed twice is rework; rows counted as inserted but not in the table are doubling.

    with db:  load(page) + Checkpoints.save(cur, key, state, done) + Checkpoints.log(cur, ...)
    retry:    Checkpoints(db).load(key) -> Saved(state, done) or None
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from etl.store.db import Database


@dataclass(frozen=True)
class Saved:
    """A unit's last committed resume point."""

    state: dict[str, Any]
    done: bool
    """The unit read its source to the end."""


@dataclass(frozen=True)
class Commit:
    """What one committed unit of work appends to the ledger."""

    unit_key: str
    kind: str
    """`page` (a streaming page loaded, or a batch page staged) or `load` (a staged batch loaded)."""
    records: int
    inserted: int = 0
    page_no: int | None = None
    workflow_id: str | None = None
    attempt: int | None = None
    updated: int = 0


class Checkpoints:
    def __init__(self, db: Database):
        self.db = db
        self.t = db.tables

    def save(self, cur, unit_key: str, state: dict[str, Any], done: bool = False) -> None:
        """Write `state` as the unit's resume point, inside the caller's transaction. It only moves
        forward: an attempt that outlived its heartbeat timeout cannot put back an older page."""
        cur.execute(sql.SQL(
            "INSERT INTO {c} AS c (unit_key, state, done, updated_at) VALUES (%s, %s::jsonb, %s, now()) "
            "ON CONFLICT (unit_key) DO UPDATE SET state = EXCLUDED.state, done = EXCLUDED.done, updated_at = now() "
            "WHERE coalesce((c.state->>'pages')::int, 0) < coalesce((EXCLUDED.state->>'pages')::int, 0) "
            "OR (EXCLUDED.done AND NOT c.done)").format(c=self.t.cursors), (unit_key, json.dumps(state), done))

    def clear(self, unit_key: str) -> None:
        """Forget the unit's resume point (its staged pages are gone: it starts again)."""
        self.db.run(lambda cur: cur.execute(sql.SQL("DELETE FROM {c} WHERE unit_key = %s").format(c=self.t.cursors),
                                            (unit_key,)), what=f"clearing the resume point of {unit_key}")

    def log(self, cur, commit: Commit) -> None:
        """Append `commit` to the ledger, inside the caller's transaction."""
        cur.execute(sql.SQL(
            "INSERT INTO {l} (unit_key, page_no, kind, records, inserted, updated, workflow_id, attempt) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(l=self.t.ledger),
            (commit.unit_key, commit.page_no, commit.kind, commit.records, commit.inserted, commit.updated,
             commit.workflow_id, commit.attempt))

    def mark_done(self, unit_key: str) -> None:
        """The unit read its source to the end (for a last page whose cursor was not None)."""
        self.db.run(lambda cur: cur.execute(sql.SQL("UPDATE {c} SET done = true, updated_at = now() "
                                                    "WHERE unit_key = %s").format(c=self.t.cursors), (unit_key,)),
                    what=f"marking {unit_key} done")

    def load(self, unit_key: str) -> Saved | None:
        """The unit's last committed state and whether it is done, or None when nothing committed."""

        def read(cur):
            cur.execute(sql.SQL("SELECT state, done FROM {c} WHERE unit_key = %s").format(c=self.t.cursors),
                        (unit_key,))
            return cur.fetchone()

        row = self.db.run(read, what=f"reading the resume point of {unit_key}")
        return Saved(row[0], row[1]) if row else None
