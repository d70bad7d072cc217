"""The source archive: what flows read from their sources, answer by answer, next to the events table.

    events_archive   one row per (source, request, flow): the request (method, path and query with
                     secrets masked, the media type asked for), the answer (status, the headers a
                     client reads, the body LZ4-compressed), the strategy, the flow's workflow id and
                     the time it was fetched

A flow that archives keeps each answer as it is read (`FlowBook.keep`: a retried request replaces
the flow's earlier answer, so a flow holds one row per request); a replay asks for the newest
answer to each request from any flow of the source, or the newest fetched before its `as_of`
(`FlowBook.answer`). Rows older than ARCHIVE_RETENTION_DAYS are swept with the staging
(`Archive.sweep`), and the table's size is on /metrics (`etl_archive_bytes`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from psycopg2 import sql

from etl.core.archive import Answer, Request
from etl.store.db import Database
from etl.store.staging import pack, unpack


@dataclass(frozen=True)
class Shelf:
    """What the archive holds for one source and strategy (`scripts/archive.py list`)."""

    source: str
    strategy: str
    answers: int
    """Answers to requests (a flow's split into parts and the cursors its reads started from, kept
    beside them, are not)."""
    flows: int
    stored_bytes: int
    """Compressed bodies."""
    body_bytes: int
    """The bodies as the source sent them."""
    oldest: datetime
    newest: datetime


@dataclass(frozen=True)
class Kept:
    """One archived answer and its request (`scripts/archive.py show`)."""

    id: int
    source: str
    strategy: str
    workflow_id: str
    request: Request
    status: int
    headers: dict[str, str]
    body: bytes
    fetched_at: datetime


class Archive:
    """The archive table of one events table."""

    def __init__(self, db: Database):
        self.db = db
        self.table = db.tables.archive

    def book(self, source: str, strategy: str, workflow_id: str, as_of: datetime | None = None) -> "FlowBook":
        """Where one flow keeps its answers and looks them up."""
        return FlowBook(self, source, strategy, workflow_id, as_of)

    def keep(self, source: str, strategy: str, workflow_id: str, request: Request, answer: Answer) -> None:
        statement = sql.SQL(
            "INSERT INTO {t} (source, strategy, workflow_id, method, target, accept, status, headers, body, body_bytes) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (source, method, target, accept, workflow_id) DO UPDATE SET strategy = EXCLUDED.strategy, "
            "status = EXCLUDED.status, headers = EXCLUDED.headers, body = EXCLUDED.body, "
            "body_bytes = EXCLUDED.body_bytes, fetched_at = now()").format(t=self.table)
        values = (source, strategy, workflow_id, request.method, request.target, request.accept, answer.status,
                  json.dumps(answer.headers), pack(answer.body), len(answer.body))
        self.db.run(lambda cur: cur.execute(statement, values), what=f"archiving the answer to {request}")

    def answer(self, source: str, request: Request, as_of: datetime | None = None) -> Answer | None:
        """The newest archived answer to `request` from `source` (fetched at or before `as_of`)."""
        statement = sql.SQL(
            "SELECT status, headers, body FROM {t} WHERE source = %s AND method = %s AND target = %s AND accept = %s "
            "AND (%s::timestamptz IS NULL OR fetched_at <= %s::timestamptz) "
            "ORDER BY fetched_at DESC, id DESC LIMIT 1").format(t=self.table)

        def read(cur) -> Answer | None:
            cur.execute(statement, (source, request.method, request.target, request.accept, as_of, as_of))
            row = cur.fetchone()
            return Answer(row[0], row[1], unpack(row[2])) if row else None

        return self.db.run(read, what=f"reading the archived answer to {request}")

    def resumes(self, source: str, unit: str, as_of: datetime | None = None) -> list[str]:
        """The cursors archived reads of `unit` (a strategy and its arguments) started from."""
        statement = sql.SQL("SELECT body FROM {t} WHERE source = %s AND method = 'RESUME' AND starts_with(target, %s) "
                            "AND (%s::timestamptz IS NULL OR fetched_at <= %s::timestamptz)").format(t=self.table)
        return [unpack(row[0]).decode() for row in self._all(statement, (source, unit + "#", as_of, as_of))]

    def shelves(self, source: str | None = None) -> list[Shelf]:
        """What is archived, per source and strategy."""
        statement = sql.SQL(
            "SELECT source, strategy, count(*) FILTER (WHERE method NOT IN ('SPLIT', 'RESUME')), count(DISTINCT workflow_id), coalesce(sum(octet_length(body)), 0), "
            "coalesce(sum(body_bytes), 0), min(fetched_at), max(fetched_at) FROM {t} "
            "WHERE %s::text IS NULL OR source = %s GROUP BY 1, 2 ORDER BY 1, 2").format(t=self.table)
        return [Shelf(*row) for row in self._all(statement, (source, source))]

    def entries(self, source: str | None = None, limit: int = 50) -> list[Kept]:
        """The newest archived answers (bodies left out), newest first."""
        statement = sql.SQL(
            "SELECT id, source, strategy, workflow_id, method, target, accept, status, headers, ''::bytea, fetched_at "
            "FROM {t} WHERE %s::text IS NULL OR source = %s ORDER BY fetched_at DESC, id DESC LIMIT %s"
        ).format(t=self.table)
        return [_kept(row) for row in self._all(statement, (source, source, limit))]

    def entry(self, entry_id: int) -> Kept | None:
        """One archived answer, body and all."""
        statement = sql.SQL("SELECT id, source, strategy, workflow_id, method, target, accept, status, headers, "
                            "body, fetched_at FROM {t} WHERE id = %s").format(t=self.table)
        rows = self._all(statement, (entry_id,))
        return _kept(rows[0], unpack(rows[0][9])) if rows else None

    def prune(self, older_than_days: float, source: str | None = None) -> int:
        """Remove answers fetched more than `older_than_days` ago (of `source` only, when given); the count."""
        statement = sql.SQL("DELETE FROM {t} WHERE fetched_at < now() - make_interval(secs => %s) "
                            "AND (%s::text IS NULL OR source = %s)").format(t=self.table)

        def delete(cur) -> int:
            cur.execute(statement, (older_than_days * 86400.0, source, source))
            return cur.rowcount

        return self.db.run(delete, what="pruning the source archive")

    def sweep(self, retention_days: float) -> int:
        """The sweep's share: answers past ARCHIVE_RETENTION_DAYS go (0 keeps everything)."""
        return self.prune(retention_days) if retention_days > 0 else 0

    def size_bytes(self) -> int:
        """Bytes the archive takes on disk, its indexes and compressed bodies included (read from the
        catalog: no scan, however large it grows)."""
        return int(self.db.scalar("SELECT pg_total_relation_size(to_regclass(%s))",
                                  ('"' + self.table.strings[0] + '"',)) or 0)

    def _all(self, statement: sql.Composed, params: tuple) -> list[tuple]:
        def fetch(cur) -> list[tuple]:
            cur.execute(statement, params)
            return cur.fetchall()

        return self.db.run(fetch, what="reading the source archive")


def _kept(row: tuple, body: bytes = b"") -> Kept:
    return Kept(row[0], row[1], row[2], row[3], Request(row[4], row[5], row[6]), row[7], row[8], body, row[10])


@dataclass
class FlowBook:
    """One flow's view of the archive (`etl.kit.archive.Book`): it keeps under its source, strategy
    and workflow id, and reads the newest answer of any flow of its source (up to `as_of`)."""

    archive: Archive
    source: str
    strategy: str
    workflow_id: str
    as_of: datetime | None = None

    def keep(self, request: Request, answer: Answer) -> None:
        self.archive.keep(self.source, self.strategy, self.workflow_id, request, answer)

    def answer(self, request: Request) -> Answer | None:
        return self.archive.answer(self.source, request, self.as_of)
