"""The one place that reads the environment.

`load_settings()` reads the process environment and `.env` (python-dotenv; the
environment wins) once into a frozen `Settings`, which is passed down to
everything else. With nothing configured, every value points at the embedded
stack that `scripts/dev.py up` starts. A bad value raises `ConfigError` naming
the variable and what it expected.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

from dotenv import dotenv_values

from etl.core.env_values import bool_value as _bool
from etl.core.env_values import date_value as _date
from etl.core.env_values import host_port as _host_port
from etl.core.env_values import int_value as _int
from etl.core.env_values import port_value as _port
from etl.core.env_values import seconds_value as _seconds
from etl.core.env_values import task_queue_value as _task_queue
from etl.core.env_values import text_value as _text
from etl.core.errors import ConfigError
from etl.core.source_settings import S, source_settings_classes

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
#: What `etl.store.schema.Tables` appends to EVENTS_TABLE for its companion tables and indexes. A
#: name ending in one of them could be another deployment's companion (`events_rejects`).
COMPANION_SUFFIXES = ("_rejects", "_raw_pages", "_staged", "_staged_bk", "_staged_batches", "_loads", "_cursors",
                      "_ledger", "_history", "_history_at", "_archive", "_archive_fetched", "_budgets")


def validate_identifier(variable: str, value: str) -> str:
    """Return `value` if it can name an events table, else raise `ConfigError` naming `variable`: a
    plain SQL identifier (matched whole: no trailing newline), not a PostgreSQL system name (`pg_*`
    resolves to the system catalog first) and not another events table's companion."""
    expected = ("an SQL identifier: a letter or underscore, then letters, digits or underscores, at most "
                "48 characters (the staging tables add a suffix)")
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ConfigError(variable, value, expected)
    if value.lower().startswith("pg_"):
        raise ConfigError(variable, value, "an SQL identifier not starting with pg_ (PostgreSQL's system "
                                           "catalogs: the name would resolve to one of them)")
    for suffix in COMPANION_SUFFIXES:
        if value.lower().endswith(suffix):
            raise ConfigError(variable, value, f"an SQL identifier not ending in {suffix} (that is the name of "
                                               "another events table's companion table)")
    return value


@dataclass(frozen=True)
class Settings:
    """Every setting of the project. Secrets are kept out of `repr`."""

    temporal_host: str = "localhost:7233"
    """Temporal frontend address, host:port."""
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    """Port of the embedded Temporal UI (dev.py up)."""
    temporal_api_key: str | None = field(default=None, repr=False)
    """API key for Temporal Cloud; implies TLS."""
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = field(default=None, repr=False)
    """mTLS: the client certificate (PEM file) the frontend asks for; implies TLS. With `_key`."""
    temporal_tls_key: Path | None = field(default=None, repr=False)
    """mTLS: the client certificate's private key (PEM file). A secret: read only when connecting."""
    temporal_tls_ca: Path | None = None
    """The CA (PEM file) that signed the frontend's certificate, when not a public one; implies TLS."""
    temporal_tls_server_name: str | None = None
    """The name the frontend's certificate is for, when not the host of TEMPORAL_HOST; implies TLS."""

    db_host: str = "127.0.0.1"
    db_port: int = 55432
    """The embedded PostgreSQL listens here; 55432 keeps clear of a system server on 5432."""
    db_name: str = "etl"
    db_user: str = "etl"
    db_password: str | None = field(default=None, repr=False)
    database_url: str | None = field(default=None, repr=False)
    """When set, overrides DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD."""
    db_min_conn: int = 1
    db_max_conn: int = 10
    events_table: str = "events"

    task_queue: str = "etl"
    streaming_task_queue: str = "etl-streaming"
    worker_concurrency: int = 4
    memory_limit_mib: int = 400
    """Streaming backpressure: above this RSS a worker takes no new chunks."""
    memory_hold_max_s: float = 60.0
    """The longest a worker holds back at once before going on anyway (a limit set below what
    the process needs at rest then slows the flow instead of stopping it)."""
    db_retry_s: float = 30.0
    """How long the database layer retries a lost connection (with backoff) before the activity fails
    and Temporal's own retry policy takes over."""
    db_statement_timeout_s: float = 300.0
    """PostgreSQL `statement_timeout`: a blocked statement fails (and is retried) instead of waiting for hours."""
    activity_stall_s: float = 600.0
    """An activity that made no progress (no page, no committed step) for this long stops heartbeating,
    so Temporal times it out and retries it on a worker that can make progress."""
    staging_retention_s: float = 21_600.0
    """Staging rows of a flow that is no longer running are removed at once; rows older than this are
    removed whatever Temporal says (a flow whose history is gone, another namespace's leftovers)."""
    staging_sweep_s: float = 60.0
    """How often each worker sweeps staging left by ended flows (and updates `etl_staging_bytes`)."""
    source_archive: bool = False
    """Every flow on these workers archives what it reads from its source (as `--archive` does for one)."""
    archive_retention_days: int = 90
    """Archived answers older than this are swept (0 keeps them)."""
    worker_deployment_name: str = "etl"
    """The Worker Deployment every worker of this fleet is a version of (see etl/runtime/versioning.py)."""
    worker_build_id: str | None = None
    """This worker's version; by default derived from the code (package version + hash)."""
    shared_budgets: bool = True
    """Every worker draws each source's requests from one budget in the events database (see
    etl/store/budgets.py); false: each client finds the source's limits on its own."""
    health_port: int = 0
    """Worker /healthz and /metrics port; 0 turns the endpoint off."""
    health_host: str = "127.0.0.1"

    from_date: date | None = None
    to_date: date | None = None

    encryption_key: str | None = field(default=None, repr=False)
    """When set, workflow payloads are encrypted with this key (see etl/codec.py)."""

    state_dir: Path = PROJECT_ROOT / ".etl"
    """Where the embedded stack keeps its data and pid files."""

    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The variables these settings were read from: each source reads its own settings from them
    (`source()`), so a source's settings need no field here."""
    _sources: dict = field(default_factory=dict, repr=False, compare=False, init=False)

    @property
    def temporal_port(self) -> int:
        return int(self.temporal_host.rsplit(":", 1)[1])

    @property
    def ui_url(self) -> str:
        host = self.temporal_host.rsplit(":", 1)[0]
        return f"http://{host}:{self.temporal_ui_port}"

    def dsn(self) -> str:
        """A libpq connection string (URL form) for psycopg2 and psql."""
        if self.database_url:
            return self.database_url
        # Percent-encoded: a password with '@', '/', ':' or '#' must not change where we connect.
        auth = quote(self.db_user, safe="") + (f":{quote(self.db_password, safe='')}" if self.db_password else "")
        return f"postgresql://{auth}@{self.db_host}:{self.db_port}/{quote(self.db_name, safe='')}"

    def public_database_url(self) -> str:
        """The database URL with any password masked, for printing."""
        parts = urlsplit(self.dsn())
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.dsn()

    def replace(self, **changes) -> "Settings":
        """A copy with `changes` applied and validated."""
        new = dataclasses.replace(self, **changes)
        validate_identifier("EVENTS_TABLE", new.events_table)
        return new

    def with_env(self, **variables: str) -> "Settings":
        """A copy whose sources see `variables` too (e.g. `GITHUB_TOKEN=...`), validated at once."""
        new = dataclasses.replace(self, env={**self.env, **variables})
        for cls in source_settings_classes():
            if any(name.startswith(cls.prefix) for name in variables):
                new.source(cls)
        return new

    def source(self, cls: type[S]) -> S:
        """The settings of one source, read from `env` on first use; `ConfigError` names a bad variable."""
        made = self._sources.get(cls)
        if made is None:
            made = self._sources[cls] = cls.from_env(self.env)
        return made

    def source_env(self) -> dict[str, str]:
        """Every source variable that is set, for passing these settings on to a child process."""
        names = {v.name for cls in source_settings_classes() for v in cls.variables()}
        return {k: v for k, v in self.env.items() if k in names}


DEPLOYMENT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
BUILD_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def _name(env: Mapping[str, str], variable: str, default: str | None, pattern: re.Pattern, expected: str):
    value = env.get(variable) or default
    if value is not None and not pattern.fullmatch(value):
        raise ConfigError(variable, value, expected)
    return value


def _pem_file(env: Mapping[str, str], variable: str) -> Path | None:
    """The path in `variable`, checked to be a readable PEM file now rather than at the first connect."""
    raw = env.get(variable)
    if not raw:
        return None
    expected = "the path of a readable PEM file"
    path = Path(raw).expanduser()
    try:
        with open(path, "rb") as pem:
            head = pem.read(4096)
    except OSError as exc:
        raise ConfigError(variable, raw, f"{expected} ({exc.strerror or type(exc).__name__})") from None
    if b"-----BEGIN " not in head:
        raise ConfigError(variable, raw, f"{expected} (this file has no '-----BEGIN ' line)")
    return path


def _tls_files(env: Mapping[str, str]) -> dict[str, Path | None]:
    cert, key = _pem_file(env, "TEMPORAL_TLS_CERT"), _pem_file(env, "TEMPORAL_TLS_KEY")
    if bool(cert) != bool(key):
        missing, given = ("TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CERT") if cert else ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY")
        raise ConfigError(missing, "", f"a PEM file path as well: {given} is set, and a client certificate "
                                       "needs both the certificate and its key")
    return {"temporal_tls_cert": cert, "temporal_tls_key": key, "temporal_tls_ca": _pem_file(env, "TEMPORAL_TLS_CA")}


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Build `Settings` from a mapping of variable names to strings."""
    min_conn = _int(env, "DB_MIN_CONN", 1, minimum=1)
    max_conn = _int(env, "DB_MAX_CONN", 10, minimum=1)
    if max_conn < min_conn:
        raise ConfigError("DB_MAX_CONN", max_conn, f"at least DB_MIN_CONN ({min_conn})")
    database_url = env.get("DATABASE_URL") or None
    if database_url and not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("DATABASE_URL", "<hidden>", "a URL starting with postgresql://")
    state_dir = Path(env["ETL_STATE_DIR"]).resolve() if env.get("ETL_STATE_DIR") else PROJECT_ROOT / ".etl"
    return Settings(
        temporal_host=_host_port(env, "TEMPORAL_HOST", "localhost:7233"),
        temporal_namespace=_text(env, "TEMPORAL_NAMESPACE", "default", max_length=255),
        temporal_ui_port=_port(env, "TEMPORAL_UI_PORT", 8233),
        temporal_api_key=env.get("TEMPORAL_API_KEY") or None,
        temporal_tls=_bool(env, "TEMPORAL_TLS", False),
        **_tls_files(env),
        temporal_tls_server_name=_text(env, "TEMPORAL_TLS_SERVER_NAME", None, max_length=253),
        db_host=_text(env, "DB_HOST", "127.0.0.1", max_length=255),
        db_port=_port(env, "DB_PORT", 55432),
        db_name=_text(env, "DB_NAME", "etl", max_length=63),
        db_user=_text(env, "DB_USER", "etl", max_length=63),
        db_password=env.get("DB_PASSWORD") or None,
        database_url=database_url,
        db_min_conn=min_conn,
        db_max_conn=max_conn,
        events_table=validate_identifier("EVENTS_TABLE", env.get("EVENTS_TABLE") or "events"),
        task_queue=_task_queue(env, "ETL_TASK_QUEUE", "etl"),
        streaming_task_queue=_task_queue(env, "ETL_STREAMING_TASK_QUEUE", "etl-streaming"),
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", 4, minimum=1),
        memory_limit_mib=_int(env, "MEMORY_LIMIT_MIB", 400, minimum=1),
        memory_hold_max_s=_seconds(env, "MEMORY_HOLD_MAX_S", 60.0),
        db_retry_s=_seconds(env, "DB_RETRY_S", 30.0),
        db_statement_timeout_s=_seconds(env, "DB_STATEMENT_TIMEOUT_S", 300.0),
        activity_stall_s=_seconds(env, "ACTIVITY_STALL_S", 600.0),
        staging_retention_s=_seconds(env, "STAGING_RETENTION_S", 21_600.0),
        staging_sweep_s=_seconds(env, "STAGING_SWEEP_S", 60.0),
        source_archive=_bool(env, "SOURCE_ARCHIVE", False),
        archive_retention_days=_int(env, "ARCHIVE_RETENTION_DAYS", 90, maximum=36_500),
        worker_deployment_name=_name(env, "WORKER_DEPLOYMENT_NAME", "etl", DEPLOYMENT_NAME_PATTERN,
                                     "letters, digits, '-' or '_' (no '.'), at most 64 characters"),
        worker_build_id=_name(env, "WORKER_BUILD_ID", None, BUILD_ID_PATTERN,
                              "letters, digits, '.', '-', '_' or '+', at most 64 characters") or None,
        shared_budgets=_bool(env, "SHARED_BUDGETS", True),
        health_port=_port(env, "HEALTH_PORT", 0),
        health_host=_text(env, "HEALTH_HOST", "127.0.0.1", max_length=255),
        from_date=_date(env, "FROM_DATE"),
        to_date=_date(env, "TO_DATE"),
        encryption_key=env.get("ETL_ENCRYPTION_KEY") or None,
        state_dir=state_dir,
        env=dict(env),
    )


def load_settings(dotenv_path: str | os.PathLike | None = None) -> Settings:
    """Read `.env` and the environment (the environment wins) into `Settings`."""
    path = Path(dotenv_path) if dotenv_path else PROJECT_ROOT / ".env"
    env: dict[str, str] = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.exists() else {}
    env.update(os.environ)
    return settings_from_env(env)


#: Every variable the framework reads: (default as .env.example shows it, what it is, secret?).
#: `settings_from_env` reads exactly these (a test holds it to that); each source declares its own.
FRAMEWORK_VARIABLES: dict[str, tuple[str, str, bool]] = {
    "TEMPORAL_HOST": ("localhost:7233", "Temporal frontend, host:port", False),
    "TEMPORAL_NAMESPACE": ("default", "", False),
    "TEMPORAL_UI_PORT": ("8233", "the embedded Temporal UI (dev.py up)", False),
    "TEMPORAL_API_KEY": ("", "Temporal Cloud; implies TLS", True),
    "TEMPORAL_TLS": ("false", "", False),
    "TEMPORAL_TLS_CERT": ("", "mTLS client certificate, a PEM file path; implies TLS", True),
    "TEMPORAL_TLS_KEY": ("", "its private key, a PEM file path (never logged)", True),
    "TEMPORAL_TLS_CA": ("", "CA of the frontend's certificate, a PEM file path (default: system CAs)", False),
    "TEMPORAL_TLS_SERVER_NAME": ("", "name in the frontend's certificate (default: TEMPORAL_HOST's host)", False),
    "DATABASE_URL": ("", "postgresql://user:password@host:port/db; wins over DB_*", True),
    "DB_HOST": ("127.0.0.1", "", False),
    "DB_PORT": ("55432", "", False),
    "DB_NAME": ("etl", "", False),
    "DB_USER": ("etl", "", False),
    "DB_PASSWORD": ("", "", True),
    "DB_MIN_CONN": ("1", "", False),
    "DB_MAX_CONN": ("10", "connections per worker process; size max_connections for the fleet", False),
    "EVENTS_TABLE": ("events", "an SQL identifier; its companions add _rejects, _staged, ...", False),
    "ETL_TASK_QUEUE": ("etl", "batch workers and the fleet's orchestration", False),
    "ETL_STREAMING_TASK_QUEUE": ("etl-streaming", "", False),
    "WORKER_CONCURRENCY": ("4", "activities one worker runs at once", False),
    "MEMORY_LIMIT_MIB": ("400", "streaming backpressure threshold (worker RSS)", False),
    "MEMORY_HOLD_MAX_S": ("60", "longest a worker holds back at once", False),
    "DB_RETRY_S": ("30", "seconds the database layer retries a lost connection before Temporal's retries", False),
    "DB_STATEMENT_TIMEOUT_S": ("300", "PostgreSQL statement_timeout for every statement", False),
    "ACTIVITY_STALL_S": ("600", "an activity without progress this long stops heartbeating (retried elsewhere)", False),
    "STAGING_RETENTION_S": ("21600", "staging older than this is swept even if its flow cannot be found", False),
    "STAGING_SWEEP_S": ("60", "how often each worker sweeps staging of ended flows", False),
    "SOURCE_ARCHIVE": ("off", "on: every flow these workers run archives its source's answers", False),
    "ARCHIVE_RETENTION_DAYS": ("90", "archived answers older than this are swept; 0 keeps them", False),
    "WORKER_DEPLOYMENT_NAME": ("etl", "the Worker Deployment workers are versions of", False),
    "WORKER_BUILD_ID": ("", "this worker's version; default: package version + hash of the code", False),
    "SHARED_BUDGETS": ("true", "sources' rate budgets shared by the fleet, in EVENTS_TABLE_budgets", False),
    "HEALTH_PORT": ("0", "/healthz and /metrics; 0 turns them off", False),
    "HEALTH_HOST": ("127.0.0.1", "", False),
    "FROM_DATE": ("", "default date window for launchers, YYYY-MM-DD", False),
    "TO_DATE": ("", "", False),
    "ETL_ENCRYPTION_KEY": ("", "when set, workflow payloads are encrypted in Temporal", True),
    "ETL_STATE_DIR": ("", "where the embedded stack keeps its state (default .etl/)", False),
}


def all_variables() -> dict[str, bool]:
    """Every variable the framework and each discovered source reads, mapped to whether it is secret."""
    found = {name: spec[2] for name, spec in FRAMEWORK_VARIABLES.items()}
    for cls in source_settings_classes():
        found.update({v.name: v.secret for v in cls.variables()})
    return found


def env_example() -> str:
    """The text of `.env.example`: every variable with its default, secrets left empty."""
    lines = ["# Every setting, with its default. Copy to .env and change what you need.",
             "# With nothing set, everything points at the embedded stack of `python scripts/dev.py up`.",
             "# Generated by `python scripts/dev.py env-example`; a test checks it is current.", "",
             "# The framework"]

    def line(name: str, default: Any, help: str, is_secret: bool) -> str:
        shown_default = "" if is_secret or default in (None, "") else str(default).lower() \
            if isinstance(default, bool) else str(default)
        text = f"{name}={shown_default}" if shown_default else f"# {name}="
        return f"{text:<40} # {help}" if help else text

    lines += [line(name, *spec) for name, spec in FRAMEWORK_VARIABLES.items()]
    for cls in source_settings_classes():
        lines += ["", f"# {cls.__module__.split('.')[1] if cls.__module__.startswith('sources.') else cls.__module__}"
                  f" ({cls.prefix}*)"]
        lines += [line(v.name, v.default, v.help, v.secret) for v in cls.variables()]
    return "\n".join(lines) + "\n"
