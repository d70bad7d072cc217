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
from typing import Mapping
from urllib.parse import quote, urlsplit

from dotenv import dotenv_values

from etl.core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")


def validate_identifier(variable: str, value: str) -> str:
    """Return `value` if it is a plain SQL identifier, else raise `ConfigError` naming `variable`."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigError(
            variable,
            value,
            "an SQL identifier: a letter or underscore, then letters, digits or underscores, at most 48 characters (the staging tables add a suffix)",
        )
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
    health_port: int = 0
    """Worker /healthz and /metrics port; 0 turns the endpoint off."""
    health_host: str = "127.0.0.1"

    lp_app_id: str = "temporal-etl-fleet"
    lp_web_root: str = "production"
    lp_api_version: str = "devel"
    lp_credentials_file: str | None = None
    """An OAuth credentials file for private Launchpad data; never a query argument."""
    lp_cache_dir: str | None = None
    lp_timeout: float = 60.0
    """Seconds for any one HTTP exchange with Launchpad."""

    github_token: str | None = field(default=None, repr=False)
    github_api_url: str = "https://api.github.com"

    from_date: date | None = None
    to_date: date | None = None

    encryption_key: str | None = field(default=None, repr=False)
    """When set, workflow payloads are encrypted with this key (see etl/codec.py)."""

    state_dir: Path = PROJECT_ROOT / ".etl"
    """Where the embedded stack keeps its data and pid files."""

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


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, raw, "a whole number") from None
    if value < minimum:
        raise ConfigError(name, raw, f"a whole number of at least {minimum}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if not 0 <= value <= 65535:
        raise ConfigError(name, env.get(name), "a TCP port between 0 and 65535")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, raw, "a number of seconds") from None
    if not 0 < value < 86_400:
        raise ConfigError(name, raw, "a number of seconds above 0 and below a day")
    return value


def _date(env: Mapping[str, str], name: str) -> date | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(name, raw, "a date as YYYY-MM-DD") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, raw, "true or false")


def _host_port(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(name, raw, "host:port, e.g. localhost:7233")
    return raw


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
        temporal_namespace=env.get("TEMPORAL_NAMESPACE") or "default",
        temporal_ui_port=_port(env, "TEMPORAL_UI_PORT", 8233),
        temporal_api_key=env.get("TEMPORAL_API_KEY") or None,
        temporal_tls=_bool(env, "TEMPORAL_TLS", False),
        db_host=env.get("DB_HOST") or "127.0.0.1",
        db_port=_port(env, "DB_PORT", 55432),
        db_name=env.get("DB_NAME") or "etl",
        db_user=env.get("DB_USER") or "etl",
        db_password=env.get("DB_PASSWORD") or None,
        database_url=database_url,
        db_min_conn=min_conn,
        db_max_conn=max_conn,
        events_table=validate_identifier("EVENTS_TABLE", env.get("EVENTS_TABLE") or "events"),
        task_queue=env.get("ETL_TASK_QUEUE") or "etl",
        streaming_task_queue=env.get("ETL_STREAMING_TASK_QUEUE") or "etl-streaming",
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", 4, minimum=1),
        memory_limit_mib=_int(env, "MEMORY_LIMIT_MIB", 400, minimum=1),
        memory_hold_max_s=_seconds(env, "MEMORY_HOLD_MAX_S", 60.0),
        health_port=_port(env, "HEALTH_PORT", 0),
        health_host=env.get("HEALTH_HOST") or "127.0.0.1",
        lp_app_id=env.get("LP_APP_ID") or "temporal-etl-fleet",
        lp_web_root=env.get("LP_WEB_ROOT") or "production",
        lp_api_version=env.get("LP_API_VERSION") or "devel",
        lp_credentials_file=env.get("LP_CREDENTIALS_FILE") or None,
        lp_cache_dir=env.get("LP_CACHE_DIR") or None,
        lp_timeout=_seconds(env, "LP_TIMEOUT", 60.0),
        github_token=env.get("GITHUB_TOKEN") or None,
        github_api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
        from_date=_date(env, "FROM_DATE"),
        to_date=_date(env, "TO_DATE"),
        encryption_key=env.get("ETL_ENCRYPTION_KEY") or None,
        state_dir=state_dir,
    )


def load_settings(dotenv_path: str | os.PathLike | None = None) -> Settings:
    """Read `.env` and the environment (the environment wins) into `Settings`."""
    path = Path(dotenv_path) if dotenv_path else PROJECT_ROOT / ".env"
    env: dict[str, str] = {k: v for k, v in dotenv_values(path).items() if v is not None} if path.exists() else {}
    env.update(os.environ)
    return settings_from_env(env)
