"""Reading one environment variable as a typed value; a bad value raises `ConfigError` naming it.

Values are matched whole (a trailing newline is not a valid port), and control characters are
refused in text, since a setting ends up in SQL identifiers, URLs, file names and logs.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Mapping

from etl.core.errors import ConfigError


def text_value(env: Mapping[str, str], name: str, default: str | None, *, max_length: int = 2048) -> str | None:
    """A string without control characters, at most `max_length` long; `default` when unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > max_length:
        raise ConfigError(name, raw, f"at most {max_length} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise ConfigError(name, raw, "text without control characters (a newline, a tab, ...)")
    return raw


#: Temporal's limits on a task queue name (the server's default `limit.maxIDLength`), checked
#: before anything starts: the server would refuse it only when a flow or a worker is already half
#: set up.
TASK_QUEUE_MAX_BYTES = 1000


def task_queue_name(variable: str, value: object) -> str:
    """`value` if Temporal takes it as a task queue name, else `ConfigError` naming `variable`."""
    if not isinstance(value, str) or not value:
        raise ConfigError(variable, value, "a task queue name (text, not empty)")
    if len(value) > TASK_QUEUE_MAX_BYTES or len(value.encode("utf-8", "surrogatepass")) > TASK_QUEUE_MAX_BYTES:
        raise ConfigError(variable, value, f"a task queue name of at most {TASK_QUEUE_MAX_BYTES} bytes")
    if any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value) or value != value.strip():
        raise ConfigError(variable, value, "a task queue name without control characters or surrounding spaces")
    if value.startswith("/_sys/"):
        raise ConfigError(variable, value, "a task queue name not starting with /_sys/ (Temporal's own)")
    return value


def task_queue_value(env: Mapping[str, str], name: str, default: str) -> str:
    """A task queue name from the environment; `default` when unset or empty."""
    return task_queue_name(name, env.get(name) or default)


_INT = re.compile(r"-?[0-9]{1,18}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,9})?")


def int_value(env: Mapping[str, str], name: str, default: int, minimum: int = 0,
              maximum: int = 10**9) -> int:
    """A whole number in [minimum, maximum], written as plain digits."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not _INT.fullmatch(raw):
        raise ConfigError(name, raw, "a whole number")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ConfigError(name, raw, f"a whole number from {minimum} to {maximum}")
    return value


def port_value(env: Mapping[str, str], name: str, default: int) -> int:
    value = int_value(env, name, default)
    if not 0 <= value <= 65535:
        raise ConfigError(name, env.get(name), "a TCP port between 0 and 65535")
    return value


def seconds_value(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not _FLOAT.fullmatch(raw):
        raise ConfigError(name, raw, "a number of seconds, e.g. 30 or 2.5")
    value = float(raw)
    if not 0 < value < 86_400:
        raise ConfigError(name, raw, "a number of seconds above 0 and below a day")
    return value


def date_value(env: Mapping[str, str], name: str) -> date | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(name, raw, "a date as YYYY-MM-DD") from None


def bool_value(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, raw, "true or false")


def host_port(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(name, raw, "host:port, e.g. localhost:7233")
    return raw


