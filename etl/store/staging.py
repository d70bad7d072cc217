"""Claim checks for `ETLFlow`: batches wait in PostgreSQL between activities, so row data
never travels through workflow history and any worker of the fleet can run any step.

    extract   -> put_page(cur, key, n, records)  a row per page in `events_raw_pages`: the
                                              records as one text (`etl.store.page_format`),
                                              LZ4-compressed (`pack`)
    transform -> transform_raw(key, convert)  page by page, in one transaction: the events' COPY
                                              text, compressed, a row per page in `events_staged_batches`
    load      -> load_staged(key)             that text COPY'd into `events` (`etl.store.events`),
                                              the staged rows and pages dropped, the counts
                                              recorded in `events_loads`

A batch travels as a few compressed rows rather than a row an event: PostgreSQL parses it once,
in the load, instead of once into a staging table and again out of it, and nothing per event is
indexed, deleted or vacuumed in between.

Every step replaces what an earlier attempt of the same batch left, so retries are
harmless; `load_staged` answers a repeated call from its ledger with the first counts.
Staging and loading take a transaction-scoped advisory lock on the batch key, so two
overlapping attempts of one step (the first still running after a heartbeat timeout) run
one after the other, and a transform that comes after the load stages nothing.

Whatever way a flow ends, its staging goes: `forget` when it completes or fails, and
`sweep` (run by every worker, see `etl.runtime.sweeper`) for flows that were terminated,
timed out or reset, and for anything older than `STAGING_RETENTION_S`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Iterable

import lz4.block
import psycopg2
from psycopg2 import sql

from etl.store.checkpoints import Checkpoints, Commit
from etl.store.db import Database
from etl.store.events import Events
from etl.store.page_format import decode_page, encode_page

#: The most characters of COPY text in one staged row: PostgreSQL holds at most 1 GB a value, and
#: the load holds one row's text a few times over while it COPYs it.
PART_CHARS = 64 * 2**20


def _parts(rows: list[str], limit: int | None = None) -> list[tuple[int, str]]:
    """`rows` joined into texts of at most `limit` characters (a longer row alone), with their row
    counts; one empty part for no rows, so the load finds the batch."""
    limit = limit or PART_CHARS
    parts: list[tuple[int, str]] = []
    start, size = 0, 0
    for i, row in enumerate(rows):
        if size and size + len(row) > limit:
            parts.append((i - start, "".join(rows[start:i])))
            start, size = i, 0
        size += len(row)
    parts.append((len(rows) - start, "".join(rows[start:])))
    return parts


def pack(data: bytes) -> bytes:
    """`data` compressed for staging: LZ4, about a seventh of the JSON or COPY text of events, at
    well under a microsecond an event each way. PostgreSQL then writes, reads and deletes a
    seventh of the TOAST chunks (its own compression, pglz, costs more CPU than it saves)."""
    return lz4.block.compress(data, store_size=True)


def unpack(data: bytes | memoryview) -> bytes:
    return lz4.block.decompress(data)


def lock_key(cur, key: str) -> None:
    """Serialise every transaction about `key` (released at commit or rollback)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))


def _like_prefix(flow_key: str) -> str:
    return flow_key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"


class StagedBatchMissing(Exception):
    """The staged rows of a batch are gone and no load recorded them (retried from extract)."""


@dataclass(frozen=True)
class LoadCounts:
    staged: int
    inserted: int
    updated: int = 0


class Staging:
    def __init__(self, db: Database):
        self.db = db
        self.t = db.tables
        self.checkpoints = Checkpoints(db)

    def put_page(self, cur, batch_key: str, page_no: int, records: list[Any]) -> tuple[int, list[tuple[Any, str]]]:
        """Stage one extracted page inside the caller's transaction (with its resume point),
        compressed, replacing what an earlier attempt left under the same number. Returns how
        many records it holds, and those it cannot hold, each with its reason (for the rejects)."""
        page, staged, unstorable = encode_page(records)
        lock_key(cur, batch_key)
        cur.execute(sql.SQL("INSERT INTO {raw} (batch_key, page_no, packed) VALUES (%s, %s, %s) "
                            "ON CONFLICT (batch_key, page_no) DO UPDATE SET packed = EXCLUDED.packed"
                            ).format(raw=self.t.raw), (batch_key, page_no, psycopg2.Binary(pack(page))))
        return staged, unstorable

    def raw_page_count(self, batch_key: str) -> int:
        """How many pages of the batch are staged."""
        return self.db.scalar(sql.SQL("SELECT count(*) FROM {raw} WHERE batch_key = %s").format(raw=self.t.raw),
                              (batch_key,))

    def _raw_pages(self, cur, batch_key: str) -> Iterator[list[Any]]:
        """The records of the batch's staged pages, a page at a time, in order."""
        cur.execute(sql.SQL("SELECT page_no FROM {raw} WHERE batch_key = %s ORDER BY page_no").format(
            raw=self.t.raw), (batch_key,))
        for (page_no,) in cur.fetchall():
            cur.execute(sql.SQL("SELECT packed FROM {raw} WHERE batch_key = %s AND page_no = %s").format(
                raw=self.t.raw), (batch_key, page_no))
            yield decode_page(unpack(cur.fetchone()[0]))

    def transform_raw(self, batch_key: str, expected: int | None,
                      convert: Callable[[Any, list[Any]], list[str]]) -> tuple[int, int] | None:
        """Turn the batch's staged pages into staged events, a page at a time: `convert(cursor, records)`
        gives the page's events' COPY rows (and may write in the transaction,
        through `cursor`: the page's rejects); the rows are staged compressed, replacing
        what an earlier attempt staged. All in one transaction under the batch's lock, so an
        overlapping attempt waits and a failure stages nothing. Returns (records, rows), or None
        when the batch was loaded already (an attempt that outlived the load). Raises
        `StagedBatchMissing` when no page is staged, or fewer records than `expected` (pages lost
        with an UNLOGGED table's contents)."""

        def work(cur) -> tuple[int, int] | None:
            lock_key(cur, batch_key)
            cur.execute(sql.SQL("SELECT 1 FROM {loads} WHERE batch_key = %s").format(loads=self.t.loads),
                        (batch_key,))
            if cur.fetchone() is not None:
                return None  # an overlapping attempt already staged and loaded it: nothing to add
            cur.execute(sql.SQL("DELETE FROM {batches} WHERE batch_key = %s").format(batches=self.t.staged_batches),
                        (batch_key,))
            records = rows = pages = part = 0
            for page in self._raw_pages(cur, batch_key):
                pages += 1
                copy_rows = convert(cur, page)
                records += len(page)
                rows += len(copy_rows)
                for n, payload in _parts(copy_rows):
                    if n or not part:  # an empty page adds no part, but a batch always has one
                        self._insert_part(cur, batch_key, part, n, payload)
                        part += 1
            if not pages:
                raise StagedBatchMissing(f"raw batch {batch_key} is not staged; was it loaded already?")
            if expected and records != expected:
                raise StagedBatchMissing(f"raw batch {batch_key}: {records} records staged, {expected} extracted")
            return records, rows

        return self.db.run(work, what=f"transforming batch {batch_key}")

    def _insert_part(self, cur, batch_key: str, part: int, rows: int, payload: str) -> None:
        cur.execute(sql.SQL("INSERT INTO {batches} (batch_key, part, rows, packed) VALUES (%s, %s, %s, %s)"
                            ).format(batches=self.t.staged_batches),
                    (batch_key, part, rows, psycopg2.Binary(pack(payload.encode()))))

    def load_staged(self, batch_key: str, expected: int, loaded_by: str | None = None,
                    attempt: int | None = None, mode: str = "insert") -> LoadCounts:
        """Move a staged batch into the events table, once; a repeat returns the first counts."""

        def load(cur) -> LoadCounts:
            lock_key(cur, batch_key)
            cur.execute(sql.SQL("SELECT staged, inserted, updated FROM {loads} WHERE batch_key = %s").format(
                loads=self.t.loads), (batch_key,))
            done = cur.fetchone()
            if done is not None:
                return LoadCounts(*done)
            cur.execute(sql.SQL("SELECT part, rows FROM {batches} WHERE batch_key = %s ORDER BY part").format(
                batches=self.t.staged_batches), (batch_key,))
            parts = cur.fetchall()
            staged = sum(rows for _, rows in parts)
            if staged != expected:
                raise StagedBatchMissing(f"batch {batch_key}: {staged} rows staged, {expected} expected")
            inserted = updated = 0
            events = Events(self.db)
            for part, rows in parts:  # one part in memory at a time
                if rows:
                    cur.execute(sql.SQL("SELECT packed FROM {batches} WHERE batch_key = %s AND part = %s"
                                        ).format(batches=self.t.staged_batches), (batch_key, part))
                    written = events.copy(cur, unpack(cur.fetchone()[0]), loaded_by, mode)
                    inserted, updated = inserted + written.inserted, updated + written.updated
            cur.execute(sql.SQL("DELETE FROM {batches} WHERE batch_key = %s").format(batches=self.t.staged_batches),
                        (batch_key,))
            cur.execute(sql.SQL("DELETE FROM {raw} WHERE batch_key = %s").format(raw=self.t.raw), (batch_key,))
            cur.execute(sql.SQL("INSERT INTO {loads} (batch_key, staged, inserted, updated) VALUES (%s, %s, %s, %s)"
                                ).format(loads=self.t.loads), (batch_key, staged, inserted, updated))
            self.checkpoints.log(cur, Commit(batch_key, "load", staged, inserted, workflow_id=loaded_by, updated=updated,
                                             attempt=attempt))
            return LoadCounts(staged, inserted, updated)

        return self.db.run(load, what=f"loading batch {batch_key}")

    def _keyed(self) -> tuple[tuple[sql.Identifier, str, str], ...]:
        """(table, key column, time column) of everything a flow keeps while it runs."""
        return ((self.t.raw, "batch_key", "created_at"), (self.t.staged_batches, "batch_key", "created_at"),
                (self.t.cursors, "unit_key", "updated_at"), (self.t.loads, "batch_key", "loaded_at"))

    def forget(self, flow_key: str) -> int:
        """Drop everything a flow left behind (staged pages and events, resume points, its batch
        ledger); returns the rows removed. The append-only `events_ledger` stays: it is history."""
        pattern = _like_prefix(flow_key)

        def purge(cur) -> int:
            removed = 0
            for table, key, _ in self._keyed():
                cur.execute(sql.SQL("DELETE FROM {t} WHERE {k} LIKE %s").format(t=table, k=sql.Identifier(key)),
                            (pattern,))
                removed += cur.rowcount
            return removed

        return self.db.run(purge, what=f"cleaning up after {flow_key}")

    def flows(self) -> dict[str, float]:
        """Every flow key that has something in staging, with the age in seconds of its oldest row."""
        # A flow key is `workflow_id/run_id`; a unit key adds segments after the run id (a UUID).
        flow = ("coalesce(substring({k} from '^(.*/[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-"
                "[0-9a-f]{{12}})/'), regexp_replace({k}, '/[^/]*$', ''))")
        parts = [sql.SQL("SELECT " + flow + " AS flow, "
                         "extract(epoch FROM now() - min({at})) AS age FROM {t} GROUP BY 1").format(
            t=table, k=sql.Identifier(key), at=sql.Identifier(at)) for table, key, at in self._keyed()]
        query = sql.SQL("SELECT flow, max(age) FROM ({u}) AS every GROUP BY flow").format(
            u=sql.SQL(" UNION ALL ").join(parts))
        return dict(self.db.run(lambda cur: (cur.execute(query), [(f, float(a)) for f, a in cur.fetchall()])[1],
                                what="listing staged flows"))

    def sweep(self, flow_keys: Iterable[str], older_than_s: float | None = None) -> int:
        """Remove the staging of `flow_keys` (ended flows) and, with `older_than_s`, every row older
        than that; returns the rows removed."""
        removed = sum(self.forget(key) for key in flow_keys)
        if older_than_s is not None:
            def purge(cur) -> int:
                count = 0
                for table, _, at in self._keyed():
                    cur.execute(sql.SQL("DELETE FROM {t} WHERE {at} < now() - make_interval(secs => %s)").format(
                        t=table, at=sql.Identifier(at)), (older_than_s,))
                    count += cur.rowcount
                return count

            removed += self.db.run(purge, what="sweeping old staging")
        return removed

    def rows(self) -> int:
        """Rows in the staging tables (every flow's), for checks after a flow ended."""
        query = sql.SQL(" + ").join(sql.SQL("(SELECT count(*) FROM {t})").format(t=t) for t, _, _ in self._keyed())
        return self.db.scalar(sql.SQL("SELECT ") + query)

    def size_bytes(self) -> int:
        """Bytes of the rows in the staging tables (live rows, not the space PostgreSQL keeps for reuse)."""
        query = sql.SQL(" + ").join(
            sql.SQL("(SELECT coalesce(sum(pg_column_size(x.*)), 0) FROM {t} AS x)").format(t=t)
            for t, _, _ in self._keyed())
        return int(self.db.scalar(sql.SQL("SELECT ") + query))
