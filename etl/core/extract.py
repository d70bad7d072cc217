"""Extract methods: how a source's records are read, page by page, resumably.

    @extract_method("launchpad-bugs")
    def extract_bugs(query: LaunchpadQuery, cursor: str | None, settings: Settings) -> Iterator[Page]:
        ...
        yield Page(records=[...], cursor="...")   # the cursor resumes *after* this page

The strategy name is `<query type>-<flow>`; the query type is the part before the
first `-` unless `query_type=` says otherwise. Called again with a page's cursor,
the method continues after that page. `cursor=None` means "from the start", so only
the last page may carry `cursor=None` (nothing follows it); any other page must carry
a cursor. The end of the data is when the iterator stops.
Methods are plain (blocking) functions: activities run them on a thread pool.
Secrets come from `settings`, never from the query.

A method may also register `split=fn`, `fn(query, parts) -> list[dict]`, returning
the arguments of up to `parts` disjoint sub-queries whose events together are the
query's: `StreamingETLFlow` runs them as parallel chunks.

A source whose people come in groups registers `@group_expander("<query type>")` beside its
client: `fn(group, settings, args) -> member names`, which the launchers' `--team` asks
through the query type's `expand_group` (the kit's `WindowQuery` asks it), so the query type
itself makes no network calls.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from etl.core import discovery
from etl.core.errors import DuplicateNameError, QueryError, UnknownNameError

#: The key that marks a record its source could not map (see `rejected`).
REJECTED = "__etl_rejected__"


def rejected(raw: Any, error: BaseException | str) -> dict[str, Any]:
    """A record the source read but could not map into an event's fields (a time it cannot
    parse, a field of the wrong shape): yield this in the page instead of raising, and the
    record becomes a reject whose reason is `error`, while the rest of the page loads."""
    try:
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    except Exception:  # noqa: BLE001 - a hostile __str__ still gives a reason
        reason = type(error).__name__
    return {REJECTED: f"the source could not map the record: {reason}"[:500], "record": raw}


@dataclass
class Page:
    """One page of raw records and the cursor that resumes after it."""

    records: list[dict[str, Any]]
    cursor: str | None = None

    @property
    def is_last(self) -> bool:
        """Nothing follows this page: a cursor of None would resume from the start."""
        return self.cursor is None


ExtractFn = Callable[..., Iterator[Page]]
SplitFn = Callable[[Any, int], list[dict[str, Any]]]


@dataclass(frozen=True)
class ExtractStrategy:
    """A registered extract method and what it belongs to."""

    name: str
    query_type: str
    fn: ExtractFn = field(repr=False)
    split: SplitFn | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"

    def pages(self, query: Any, cursor: str | None, settings: Any) -> Iterator[Page]:
        return iter(self.fn(query, cursor, settings))

    @staticmethod
    def create(name: str) -> "ExtractStrategy":
        """The strategy registered as `name`; `UnknownNameError` lists the known ones."""
        discovery.discover()
        try:
            return _STRATEGIES[name]
        except KeyError:
            raise UnknownNameError("extract strategy", name, _STRATEGIES, discovery.failure_note()) from None

    @staticmethod
    def all() -> list["ExtractStrategy"]:
        discovery.discover()
        return [_STRATEGIES[n] for n in sorted(_STRATEGIES)]


_STRATEGIES: dict[str, ExtractStrategy] = {}


def extract_method(name: str, *, query_type: str | None = None,
                   split: SplitFn | None = None) -> Callable[[ExtractFn], ExtractFn]:
    """Register an extract method under `name` (`<query type>-<flow>`). Returns it unchanged."""
    if not name or not isinstance(name, str):
        raise TypeError("@extract_method needs a name such as 'launchpad-bugs'")
    qtype = query_type or name.split("-", 1)[0]

    def register(fn: ExtractFn) -> ExtractFn:
        if not callable(fn):
            raise TypeError(f"@extract_method({name!r}) decorates a function, got {fn!r}")
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(params) != 3:
            raise TypeError(f"@extract_method({name!r}): {fn.__qualname__} must take (query, cursor, settings)")
        strategy = ExtractStrategy(name, qtype, fn, split)
        existing = _STRATEGIES.get(name)
        if existing is not None and existing.where != strategy.where:
            raise DuplicateNameError("extract strategy", name, existing.where, strategy.where)
        _STRATEGIES[name] = strategy
        return fn

    return register


GroupExpander = Callable[[str, Any, "dict[str, Any] | None"], list[str]]
_EXPANDERS: dict[str, GroupExpander] = {}


def group_expander(query_type: str) -> Callable[[GroupExpander], GroupExpander]:
    """Register `fn(group, settings, args) -> member names`, which expands a group (a team) of the
    source whose query type is `query_type`, for the launchers' one flow per member. It lives
    beside the source's client, so the query type itself makes no network calls. Returns it unchanged."""
    def register(fn: GroupExpander) -> GroupExpander:
        if not callable(fn):
            raise TypeError(f"@group_expander({query_type!r}) decorates a function, got {fn!r}")
        existing = _EXPANDERS.get(query_type)
        where = f"{fn.__module__}.{fn.__qualname__}"
        if existing is not None and f"{existing.__module__}.{existing.__qualname__}" != where:
            raise DuplicateNameError("group expander", query_type,
                                     f"{existing.__module__}.{existing.__qualname__}", where)
        _EXPANDERS[query_type] = fn
        return fn

    return register


def expand_group(query_type: str, group: str, settings: Any, args: dict[str, Any] | None = None) -> list[str]:
    """The members of `group` by the expander registered for `query_type`; `QueryError` when the
    source has none."""
    discovery.discover()
    fn = _EXPANDERS.get(query_type)
    if fn is None:
        known = ", ".join(sorted(_EXPANDERS)) or "none"
        raise QueryError(query_type, None, f"the {query_type!r} source cannot expand a group into members "
                                           f"(the sources that can: {known})")
    return fn(group, settings, args)
