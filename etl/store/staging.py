"""Claim checks for `ETLFlow`: batches wait in PostgreSQL between activities, so row data
never travels through workflow history and any worker of the fleet can run any step.

    extract   -> stage_raw_page(key, n, lines) a row of JSON lines per page in `events_raw_pages`
    transform -> read_raw(key); stage_events(key, events)   COPY into `events_staged`
    load      -> load_staged(key)             INSERT ... ON CONFLICT DO NOTHING into `events`,
                                              drop the staged rows, record the counts in `events_loads`

Every step replaces what an earlier attempt of the same batch left, so retries are
harmless; `load_staged` answers a repeated call from its ledger with the first counts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from psycopg2 import sql

from etl.core.models import Event
from etl.store.db import _COLUMN_LIST, Database


class StagedBatchMissing(Exception):
    """The staged rows of a batch are gone and no load recorded them (retried from extract)."""


@dataclass(frozen=True)
class LoadCounts:
    staged: int
    inserted: int


class Staging:
    def __init__(self, db: Database):
        self.db = db
        self.t = db.tables

    def stage_raw_page(self, batch_key: str, page_no: int, json_lines: list[str]) -> None:
        """Stage one extracted page (replacing what an earlier attempt left under the same number)."""

        def write(cur) -> None:
            cur.execute(sql.SQL("INSERT INTO {raw} (batch_key, page_no, records) VALUES (%s, %s, %s) "
                                "ON CONFLICT (batch_key, page_no) DO UPDATE SET records = EXCLUDED.records"
                                ).format(raw=self.t.raw), (batch_key, page_no, "\n".join(json_lines)))

        self.db.run(write, what=f"staging page {page_no} of batch {batch_key}")

    def discard_raw(self, batch_key: str, from_page: int = 0) -> None:
        """Drop the batch's staged pages from `from_page` on (those after a retry's last heartbeat)."""
        self.db.run(lambda cur: cur.execute(
            sql.SQL("DELETE FROM {raw} WHERE batch_key = %s AND page_no >= %s").format(raw=self.t.raw),
            (batch_key, from_page)), what=f"discarding pages of batch {batch_key}")

    def read_raw(self, batch_key: str) -> list[str] | None:
        """The staged JSON lines in page order, or None when no page of the batch is staged."""

        def read(cur):
            cur.execute(sql.SQL("SELECT records FROM {raw} WHERE batch_key = %s ORDER BY page_no").format(
                raw=self.t.raw), (batch_key,))
            rows = cur.fetchall()
            if not rows:
                return None
            return [line for (text,) in rows if text for line in text.split("\n")]

        return self.db.run(read, what=f"reading raw batch {batch_key}")

    def stage_events(self, batch_key: str, events: list[Event]) -> None:
        prefix = batch_key.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n") + "\t"
        payload = "".join(prefix + event.copy_row() for event in events)

        def write(cur) -> None:
            cur.execute(sql.SQL("DELETE FROM {staged} WHERE batch_key = %s").format(staged=self.t.staged),
                        (batch_key,))
            if payload:
                cur.copy_expert(
                    sql.SQL("COPY {staged} (batch_key, {cols}) FROM STDIN").format(staged=self.t.staged,
                                                                                 cols=_COLUMN_LIST),
                    io.StringIO(payload),
                )

        self.db.run(write, what=f"staging {len(events)} events of batch {batch_key}")

    def load_staged(self, batch_key: str, expected: int) -> LoadCounts:
        """Move a staged batch into the events table, once; a repeat returns the first counts."""

        def load(cur) -> LoadCounts:
            cur.execute(sql.SQL("SELECT staged, inserted FROM {loads} WHERE batch_key = %s").format(
                loads=self.t.loads), (batch_key,))
            done = cur.fetchone()
            if done is not None:
                return LoadCounts(done[0], done[1])
            cur.execute(sql.SQL("SELECT count(*) FROM {staged} WHERE batch_key = %s").format(
                staged=self.t.staged), (batch_key,))
            staged = cur.fetchone()[0]
            if staged != expected:
                raise StagedBatchMissing(f"batch {batch_key}: {staged} rows staged, {expected} expected")
            cur.execute(
                sql.SQL("INSERT INTO {events} ({cols}) SELECT {cols} FROM {staged} WHERE batch_key = %s "
                        "ON CONFLICT (event_id) DO NOTHING").format(
                    events=self.t.events, cols=_COLUMN_LIST, staged=self.t.staged),
                (batch_key,),
            )
            inserted = cur.rowcount
            cur.execute(sql.SQL("DELETE FROM {staged} WHERE batch_key = %s").format(staged=self.t.staged),
                        (batch_key,))
            cur.execute(sql.SQL("DELETE FROM {raw} WHERE batch_key = %s").format(raw=self.t.raw), (batch_key,))
            cur.execute(sql.SQL("INSERT INTO {loads} (batch_key, staged, inserted) VALUES (%s, %s, %s)").format(
                loads=self.t.loads), (batch_key, staged, inserted))
            return LoadCounts(staged, inserted)

        return self.db.run(load, what=f"loading batch {batch_key}")

    def forget(self, flow_key: str) -> None:
        """Drop everything a finished flow left behind (its ledger rows and any stray staging)."""
        pattern = flow_key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"

        def purge(cur) -> None:
            for table in (self.t.loads, self.t.staged, self.t.raw):
                cur.execute(sql.SQL("DELETE FROM {t} WHERE batch_key LIKE %s").format(t=table), (pattern,))

        self.db.run(purge, what=f"cleaning up after {flow_key}")
