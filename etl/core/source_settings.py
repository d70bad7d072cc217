"""A source's own settings, declared in its folder: names, types, defaults, secrets, validation.

    @source_settings(prefix="GITHUB_")
    @dataclass(frozen=True)
    class GitHubSettings(SourceSettings):
        api_url: str = setting("https://api.github.com", kind="url", help="the API's base URL")
        token: str | None = secret(help="a token with read access")

Each field is read from the environment (and `.env`) as PREFIX + FIELD in upper case
(`GITHUB_API_URL`), typed from its annotation (str, int, float, bool, optional or not), checked
with full-string matches and bounds; a bad value raises `ConfigError` naming the variable and
what was expected. Secret fields are masked in `repr` and in `.env.example`. Activities and
extract methods get them with `settings.source(GitHubSettings)`; workers check every source's
settings at start. Nothing here is ever a query argument, so none of it reaches Temporal.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping, TypeVar

from etl.core.env_values import bool_value, int_value, seconds_value, text_value
from etl.core.errors import ConfigError, DuplicateNameError
from etl.core.limits import Limits, parse_rate

S = TypeVar("S", bound="SourceSettings")

_CLASSES: dict[str, type["SourceSettings"]] = {}


def setting(default: Any = None, *, help: str = "", kind: str = "text", minimum: float | None = None,
            maximum: float | None = None, secret: bool = False) -> Any:
    """A declared setting. `kind`: `text`, `url` (http or https, trailing `/` dropped), `name`
    (letters, digits, `._-`) or `rate` (`5000/h`, see `etl.core.limits`); numbers take `minimum`/`maximum`."""
    return field(default=default, repr=not secret, metadata={
        "help": help, "kind": kind, "minimum": minimum, "maximum": maximum, "secret": secret})


def secret(*, help: str = "") -> Any:
    """A secret setting (a token, a password): never shown, unset by default."""
    return setting(None, help=help, secret=True)


def rate_limit(default: str | None = None, *, help: str = "") -> Any:
    """The source's rate per credential, shared by the whole fleet (`5000/h`, `120/min`, `20/10s`);
    declare it as the field `rate_limit` (read as PREFIX + `RATE_LIMIT`; `off` there: no rate)."""
    return setting(default, kind="rate", help=help or "requests per credential for the whole fleet, e.g. 5000/h")


def max_concurrent(default: int = 0, *, help: str = "") -> Any:
    """At most this many requests in flight per credential across the fleet (0: no bound); declare it
    as the field `max_concurrent` (read as PREFIX + `MAX_CONCURRENT`)."""
    return setting(default, minimum=0, maximum=100_000,
                   help=help or "requests in flight at once per credential, across the fleet (0: no bound)")


@dataclass(frozen=True)
class Variable:
    """One environment variable a source reads, as `.env.example` and compose show it."""

    name: str
    default: Any
    help: str
    secret: bool


@dataclass(frozen=True)
class SourceSettings:
    """Base of every source's settings; subclasses are frozen dataclasses made with `@source_settings`."""

    prefix: ClassVar[str] = ""
    """The environment prefix of every variable, e.g. `GITHUB_`."""

    @classmethod
    def variables(cls) -> list[Variable]:
        return [Variable(cls.prefix + f.name.upper(), f.default, f.metadata.get("help", ""),
                         bool(f.metadata.get("secret"))) for f in dataclasses.fields(cls)]

    def limits(self) -> Limits:
        """The limits the source declares (`rate_limit`, `max_concurrent` fields), as settings set them."""
        return Limits.of(getattr(self, "rate_limit", None), getattr(self, "max_concurrent", 0))

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str]) -> S:
        hints = typing.get_type_hints(cls)
        values = {f.name: _read(env, cls.prefix + f.name.upper(), hints[f.name], f) for f in dataclasses.fields(cls)}
        return cls(**values)


def _read(env: Mapping[str, str], name: str, hint: Any, f: dataclasses.Field) -> Any:
    meta = f.metadata
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
    if base is bool:
        return bool_value(env, name, f.default)
    if base is int:
        lo = int(meta["minimum"]) if meta.get("minimum") is not None else 0
        hi = int(meta["maximum"]) if meta.get("maximum") is not None else 10**9
        return int_value(env, name, f.default, minimum=lo, maximum=hi)
    if base is float:
        value = seconds_value(env, name, f.default)
        if meta.get("maximum") is not None and value is not None and value > meta["maximum"]:
            raise ConfigError(name, env.get(name), f"at most {meta['maximum']:g}")
        return value
    value = text_value(env, name, f.default)
    if value is None or value is f.default:
        return value
    kind = meta.get("kind", "text")
    if kind == "url":
        if not value.startswith(("http://", "https://")) or " " in value:
            raise ConfigError(name, value, "an http:// or https:// URL")
        return value.rstrip("/")
    if kind == "rate":
        if value.strip().lower() in ("off", "none"):
            return None
        try:
            parse_rate(value)
        except ValueError as exc:
            raise ConfigError(name, value, str(exc)) from None
        return value.strip()
    if kind == "name" and not all(ch.isalnum() or ch in "._-" for ch in value):
        raise ConfigError(name, value, "a name of letters, digits, '.', '_' and '-'")
    return value


def source_settings(*, prefix: str) -> Callable[[type[S]], type[S]]:
    """Register a source's settings class under its environment prefix. Returns it unchanged."""
    if not prefix or not prefix.endswith("_") or not prefix[:-1].replace("_", "").isalnum() or not prefix.isupper():
        raise TypeError(f"@source_settings(prefix={prefix!r}): give an upper-case prefix ending in '_', e.g. 'GITHUB_'")

    def register(cls: type[S]) -> type[S]:
        if not (isinstance(cls, type) and issubclass(cls, SourceSettings) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"@source_settings needs a frozen dataclass subclass of SourceSettings, got {cls!r}")
        where = f"{cls.__module__}.{cls.__qualname__}"
        existing = _CLASSES.get(prefix)
        if existing is not None and f"{existing.__module__}.{existing.__qualname__}" != where:
            raise DuplicateNameError("settings prefix", prefix, f"{existing.__module__}.{existing.__qualname__}", where)
        cls.prefix = prefix
        _CLASSES[prefix] = cls
        return cls

    return register


def source_settings_classes() -> Iterator[type[SourceSettings]]:
    """Every registered source's settings class (sources are discovered first)."""
    from etl.core import discovery

    discovery.discover()
    return iter(sorted(_CLASSES.values(), key=lambda c: c.prefix))
