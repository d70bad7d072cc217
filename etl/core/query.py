"""Query types: the typed, validated parameters of a source.

    @query_type("launchpad")
    @dataclass(frozen=True)
    class LaunchpadQuery(Query):
        member: str
        data_date_start: date
        data_date_end: date
        summary_fields = ("member", "data_date_start", "data_date_end")

`Query.from_dict(args)` converts strings to each field's annotated type (str, int,
float, bool, date, datetime, lists of str) and raises `QueryError` naming the field;
a subclass adds its own checks in `validate()`. `QueryFactory.create(name, args)`
looks the class up by name (sources are discovered on first use).

Every field is bounded before `validate()` sees it, so no argument can be huge or carry a
control character (a trailing newline would go into a URL or a workflow id): text at most
`Limits.max_length` characters (1,000) without control characters or lone surrogates, whole
numbers within +-2**53, finite numbers, lists of at most 1,000 items. A field overrides its
bounds with `field(metadata={"max_length": 64})` (or "minimum", "maximum", "max_items"), or a
class with `field_limits = {"owner": {"max_length": 39}}`. Error messages quote at most a short
prefix of a bad value.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, ClassVar, TypeVar

from etl.core import discovery
from etl.core.errors import DuplicateNameError, QueryError, UnknownNameError, shown

Q = TypeVar("Q", bound="Query")

_QUERY_TYPES: dict[str, type["Query"]] = {}


@dataclass(frozen=True)
class Query:
    """Base of every query type. Subclasses are frozen dataclasses registered with `@query_type`."""

    name: ClassVar[str] = ""
    """The registered name, set by `@query_type`."""
    summary_fields: ClassVar[tuple[str, ...]] = ()
    """Fields shown in the UI (memo and search attributes); all fields when empty."""
    member_field: ClassVar[str | None] = None
    """The field that names the person a flow is about (the `EtlMember` search attribute, part
    of the workflow id, and what team expansion fills in)."""
    window_fields: ClassVar[tuple[str, str] | None] = None
    """The two date or datetime fields that bound the query's time window, `(start, end)`, end
    exclusive: schedules fill them with each run's incremental window."""
    field_limits: ClassVar[dict[str, dict[str, int]]] = {}
    """Per-field bounds overriding the defaults of `Limits` (`max_length`, `minimum`, `maximum`,
    `max_items`); a field's own `metadata` wins over this."""

    @classmethod
    def from_dict(cls: type[Q], args: dict[str, Any]) -> Q:
        """Build a validated query from loosely typed arguments (strings from a command line or JSON)."""
        if not isinstance(args, dict):
            raise QueryError(cls.name, None, f"arguments must be an object, got {type(args).__name__}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted((k for k in args if k not in fields), key=str)
        if unknown:
            key = unknown[0]
            raise QueryError(cls.name, key if isinstance(key, str) and len(key) <= 40 and key.isprintable()
                             else shown(key, 40),
                             f"unknown argument; {cls.name} takes: {', '.join(fields)}")
        values: dict[str, Any] = {}
        for fname, f in fields.items():
            if fname in args and args[fname] is not None and not (isinstance(args[fname], str) and args[fname] == ""):
                limits = Limits.of(cls, f)
                values[fname] = _convert(cls.name, fname, hints[fname], args[fname], limits)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise QueryError(cls.name, fname, "is required")
        query = cls(**values)
        query.validate()
        return query

    def validate(self) -> None:
        """Cross-field checks; raise `QueryError` naming the field. The base checks nothing."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready arguments that `from_dict` turns back into an equal query."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}

    def to_summary_base(self) -> dict[str, Any]:
        """The fields shown in the Temporal UI, JSON-ready. Never put a secret in a query."""
        names = self.summary_fields or tuple(f.name for f in dataclasses.fields(self))
        return {name: _plain(getattr(self, name)) for name in names}

    def member_name(self) -> str | None:
        """The value of `member_field`, if the query names one."""
        return getattr(self, self.member_field) if self.member_field else None

    def expected_records(self) -> int | None:
        """How many records the flow will read, when the query knows in advance (for progress bars)."""
        return None

    @classmethod
    def expand_group(cls, group: str, settings: Any, args: dict[str, Any] | None = None) -> list[str]:
        """The members of a group (a team, an organisation) as values of `member_field`, for launching
        one flow per member; `args` are the other arguments the flows will take (e.g. which
        server). Sources whose people come in groups override this."""
        from etl.core.errors import QueryError

        raise QueryError(cls.name, cls.member_field, f"the {cls.name!r} source cannot expand a group into members")


def _plain(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Limits:
    """The bounds every query field is held to before `validate()` runs."""

    max_length: int = 1000
    """Characters of a text field (and of the text given for any other type)."""
    minimum: int = -(2**53)
    """Smallest whole number or number (2**53 is what JSON and the Temporal UI hold exactly)."""
    maximum: int = 2**53
    max_items: int = 1000
    """Items of a list field."""

    @classmethod
    def of(cls, query: type, f: dataclasses.Field) -> "Limits":
        overrides = {**getattr(query, "field_limits", {}).get(f.name, {}), **dict(f.metadata or {})}
        known = {k: v for k, v in overrides.items() if k in ("max_length", "minimum", "maximum", "max_items")}
        return cls(**known)


def _check_text(qname: str, fname: str, text: str, limits: Limits) -> str:
    if len(text) > limits.max_length:
        raise QueryError(qname, fname, f"{shown(text)} is too long: at most {limits.max_length:,} characters")
    if not text.isprintable() and any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text):
        raise QueryError(qname, fname, f"{shown(text)} contains a control character (a newline, a tab, ...)")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise QueryError(qname, fname, f"{shown(text)} is not valid Unicode (a lone surrogate)") from None
    return text


def _convert(qname: str, fname: str, hint: Any, value: Any, limits: Limits | None = None) -> Any:
    limits = limits or Limits()
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in args if a is not type(None)]
        return _convert(qname, fname, inner[0], value, limits) if inner else value
    if origin in (list, tuple):
        if isinstance(value, str):
            _check_text(qname, fname, value, dataclasses.replace(limits, max_length=limits.max_length
                                                                 * limits.max_items))
            items = value.split(",")
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise QueryError(qname, fname, f"{shown(value)} is not a list")
        if len(items) > limits.max_items:
            raise QueryError(qname, fname, f"has {len(items):,} items; at most {limits.max_items:,}")
        converted = [_convert(qname, fname, args[0] if args else str, v, limits) for v in items]
        return tuple(converted) if origin is tuple else converted
    if isinstance(value, str):
        # Every value given as text is bounded first: no type's parser sees a huge or control-laden string.
        if hint is not str and len(value) > 64:
            raise QueryError(qname, fname, f"{shown(value)} is too long ({len(value):,} characters) to be "
                                           f"{getattr(hint, '__name__', 'this type')} value")
        _check_text(qname, fname, value, limits)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if hint is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            number = int(value)
            if not limits.minimum <= number <= limits.maximum:
                raise QueryError(qname, fname, f"{shown(value)} is outside {limits.minimum:,} to {limits.maximum:,}")
            return number
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number) or not limits.minimum <= number <= limits.maximum:
                raise QueryError(qname, fname, f"{shown(value)} is not a finite number from {limits.minimum:,} "
                                               f"to {limits.maximum:,}")
            return number
        if hint is datetime:
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
            try:
                moment.astimezone(timezone.utc)
            except OverflowError:  # a time at the calendar's edge may have no UTC twin
                raise QueryError(qname, fname, f"{shown(value)} lies outside the years 1 to 9999 in UTC") from None
            return moment
        if hint is date:
            if isinstance(value, datetime):
                return value.date()
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if hint is str:
            if isinstance(value, str):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return _check_text(qname, fname, str(value), limits)
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        expected = {int: "a whole number", float: "a number", bool: "true or false", str: "text",
                    date: "a date as YYYY-MM-DD", datetime: "an ISO 8601 time"}.get(hint, getattr(hint, "__name__", "valid"))
        raise QueryError(qname, fname, f"{shown(value)} is not {expected}") from None
    return value


def query_type(name: str) -> Callable[[type[Q]], type[Q]]:
    """Register a `Query` dataclass under `name`. Returns the class unchanged."""

    def register(cls: type[Q]) -> type[Q]:
        if not (isinstance(cls, type) and issubclass(cls, Query) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"@query_type({name!r}) needs a dataclass subclass of etl.core.query.Query, got {cls!r}")
        existing = _QUERY_TYPES.get(name)
        if existing is not None and existing is not cls and _where(existing) != _where(cls):
            raise DuplicateNameError("query type", name, _where(existing), _where(cls))
        cls.name = name
        _QUERY_TYPES[name] = cls
        return cls

    return register


def _where(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


class QueryFactory:
    """Looks query types up by name."""

    @staticmethod
    def get(name: str) -> type[Query]:
        discovery.discover()
        try:
            return _QUERY_TYPES[name]
        except KeyError:
            raise UnknownNameError("query type", name, _QUERY_TYPES, discovery.failure_note()) from None

    @staticmethod
    def create(name: str, args: dict[str, Any]) -> Query:
        """A validated query of the type registered as `name`."""
        return QueryFactory.get(name).from_dict(args)

    @staticmethod
    def names() -> list[str]:
        discovery.discover()
        return sorted(_QUERY_TYPES)
