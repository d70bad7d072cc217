"""What the launcher commands share on their command lines: `--arg key=value` pairs."""

from __future__ import annotations

from etl.core.errors import ConfigError


def parse_pairs(pairs: list[str], flag: str = "--arg") -> dict[str, str]:
    """`["member=alice", "count=10"]` as a dict; `ConfigError` names a pair that is not key=value."""
    args: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(flag, pair, "key=value, e.g. --arg member=alice")
        args[key.strip()] = value
    return args
