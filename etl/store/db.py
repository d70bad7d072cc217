"""`Database`: the pooled, thread-safe PostgreSQL layer that writes events idempotently.

One instance per (connection string, events table) per process, made with
double-checked locking by `Database.get(settings)`. It owns a
`ThreadedConnectionPool(DB_MIN_CONN, DB_MAX_CONN)`; callers wait for a free
connection rather than failing when all are in use. A lost connection (server
restart, `pg_terminate_backend`) is closed and replaced on its own: connections
other threads are using are left alone (their transactions go on), and idle ones
are checked with a ping before they are handed out again. The operation is
retried on a fresh connection with exponential backoff (capped) for up to
`DB_RETRY_S` seconds; after that the error reaches the activity, and Temporal's
retry policy (`etl.workflows.common.ACTIVITY_RETRY`) takes over. Other errors are
raised as they are. Every statement runs under `statement_timeout`
(`DB_STATEMENT_TIMEOUT_S`). Every value reaches the server as a parameter or
through COPY; identifiers are quoted with `psycopg2.sql`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.pool
from psycopg2 import sql

from etl.core.settings import Settings
from etl.store.schema import Tables

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that mean the connection is gone; the pool is rebuilt and the work retried.
CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
#: Errors that a fresh attempt on a healthy connection can get past.
TRANSIENT_ERRORS = (psycopg2.errors.SerializationFailure, psycopg2.errors.DeadlockDetected)
#: SQLSTATEs of an OperationalError that mean the connection or the server went away
#: (class 08, and the server shutting down); others (a full disk, a cancelled statement)
#: fail the same way on any connection.
_LOST_STATES = ("57P01", "57P02", "57P03")


def connection_lost(exc: BaseException, conn=None) -> bool:
    """True when `exc` means the connection is gone, so a new one (and a retry) can help."""
    if not isinstance(exc, CONNECTION_ERRORS):
        return False
    if conn is not None and conn.closed:
        return True
    code = getattr(exc, "pgcode", None)
    return code is None or code.startswith("08") or code in _LOST_STATES

class Database:
    """The events database. Get it with `Database.get(settings)`."""

    _instances: dict[tuple[str, str], "Database"] = {}
    _instances_lock = threading.Lock()

    backoff_initial = 0.2
    backoff_cap = 5.0

    @classmethod
    def get(cls, settings: Settings) -> "Database":
        """The process-wide instance for these settings' database and events table."""
        key = (settings.dsn(), settings.events_table)
        db = cls._instances.get(key)
        if db is None:
            with cls._instances_lock:
                db = cls._instances.get(key)
                if db is None:
                    db = cls._instances[key] = cls(settings)
        return db

    @classmethod
    def close_all(cls) -> None:
        """Close every instance's pool (tests and process exit)."""
        with cls._instances_lock:
            for db in cls._instances.values():
                db.close()
            cls._instances.clear()

    def __init__(self, settings: Settings):
        self.settings = settings
        self.tables = Tables(settings.events_table)
        self._dsn = settings.dsn()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(settings.db_max_conn)
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._schema_ready = False
        self.retry_s = settings.db_retry_s
        self.connections_replaced = 0
        """Connections found broken and replaced (the others in the pool were kept)."""
        self._losses = 0
        """How many connection losses this process has seen; an idle connection checked before the
        latest loss is pinged before use, since the server may have restarted under it."""
        self._checked: dict[int, int] = {}

    # -- connections -------------------------------------------------------

    def _current_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    timeout_ms = int(self.settings.db_statement_timeout_s * 1000)
                    self._pool = psycopg2.pool.ThreadedConnectionPool(
                        self.settings.db_min_conn, self.settings.db_max_conn, self._dsn, connect_timeout=10,
                        options=f"-c statement_timeout={timeout_ms}",
                    )
                pool = self._pool
        return pool

    def _replace(self, pool: psycopg2.pool.ThreadedConnectionPool, conn) -> None:
        """Close one broken connection; the pool opens a new one when it is next short."""
        with self._lock:
            self.connections_replaced += 1
            self._losses += 1
            self._checked.pop(id(conn), None)
        log.warning("database connection lost; replacing it (%d replaced so far)", self.connections_replaced)
        try:
            pool.putconn(conn, close=True)
        except psycopg2.pool.PoolError:
            conn.close()

    def _healthy_conn(self, pool: psycopg2.pool.ThreadedConnectionPool):
        """A connection from the pool; after a loss, an idle one is pinged first and replaced if dead."""
        for _ in range(self.settings.db_max_conn + 1):
            conn = pool.getconn()
            if self._checked.get(id(conn)) == self._losses:
                return conn
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
                conn.rollback()
            except CONNECTION_ERRORS:
                self._replace(pool, conn)
                continue
            self._checked[id(conn)] = self._losses
            return conn
        return pool.getconn()

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        """A pooled connection inside a transaction: committed on success, rolled back on error,
        always handed back; a connection that failed at the connection level is closed and
        replaced, and only it."""
        with self._slots:
            pool = self._current_pool()
            conn = self._healthy_conn(pool)
            lost = False
            try:
                yield conn
                conn.commit()
            except BaseException as exc:
                lost = connection_lost(exc, conn)
                if not lost:
                    try:
                        conn.rollback()
                    except CONNECTION_ERRORS:
                        lost = True
                raise
            finally:
                if lost or conn.closed:
                    self._replace(pool, conn)
                else:
                    try:
                        pool.putconn(conn)
                    except psycopg2.pool.PoolError:  # the pool was rebuilt meanwhile
                        conn.close()

    def run(self, work: Callable[[Any], T], *, what: str = "database operation") -> T:
        """Run `work(cursor)` in one transaction, retrying connection loss and serialisation
        failures with exponential backoff (capped); other errors propagate unchanged."""
        self.ensure_schema()
        return self._run(work, what)

    def _run(self, work: Callable[[Any], T], what: str) -> T:
        delay = self.backoff_initial
        deadline = time.monotonic() + self.retry_s
        attempt = 1
        while True:
            try:
                with self.connection() as conn, conn.cursor() as cur:
                    return work(cur)
            except CONNECTION_ERRORS + TRANSIENT_ERRORS as exc:
                pause = delay * (0.5 + random.random())
                if (time.monotonic() + pause > deadline
                        or not (isinstance(exc, TRANSIENT_ERRORS) or connection_lost(exc))):
                    raise
                attempt += 1
                log.warning("%s failed (%s: %s); attempt %d in %.1fs (retrying for up to DB_RETRY_S=%gs)",
                            what, type(exc).__name__, str(exc).strip(), attempt, pause, self.retry_s)
                time.sleep(pause)
                delay = min(delay * 2, self.backoff_cap)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None

    # -- schema ------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create every table on first use (harmless when they exist)."""
        if self._schema_ready:
            return

        self._run(self.tables.ensure, "schema creation")  # reads the catalog; locks only to change it
        self._schema_ready = True

    # -- reads and health ----------------------------------------------------

    def scalar(self, query, params: tuple = ()) -> Any:
        """The first column of the first row of `query`."""

        def fetch(cur) -> Any:
            cur.execute(query, params)
            return cur.fetchone()[0]

        return self.run(fetch, what="query")

    def count_events(self) -> int:
        return self.scalar(sql.SQL("SELECT count(*) FROM {t}").format(t=self.tables.events))

    def count_rejects(self) -> int:
        return self.scalar(sql.SQL("SELECT count(*) FROM {t}").format(t=self.tables.rejects))

    def health_check(self) -> bool:
        """True when the database answers a query."""

        def ping(cur) -> bool:
            cur.execute("SELECT 1")
            return cur.fetchone()[0] == 1

        try:
            return self._run(ping, "health check")
        except psycopg2.Error:
            return False

    def get_pool_status(self) -> dict:
        """The pool's size limits and how many connections are in use and available."""
        pool = self._pool
        in_use = len(pool._used) if pool is not None else 0  # noqa: SLF001 - psycopg2 exposes no accessor
        idle = len(pool._pool) if pool is not None else 0  # noqa: SLF001
        return {
            "min": self.settings.db_min_conn,
            "max": self.settings.db_max_conn,
            "in_use": in_use,
            "idle": idle,
            "available": self.settings.db_max_conn - in_use,
            "open": pool is not None,
            "replaced": self.connections_replaced,
        }
