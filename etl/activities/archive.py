"""The activities' side of the source archive: around a unit's read, the archive the source's
client records into or answers from (`etl.kit.archive.using`), as the flow asked (`ArchiveUse`)
or the worker's SOURCE_ARCHIVE says.

    with source_archive(settings, db, inp.archive, inp.query_type, inp.strategy, inp.args, cursor) as reading:
        state, done = unit.run(strategy.pages(query, cursor, settings), state, commit, reading.enough(own_rule))
    answered = reading.answered

The requests a flow makes depend on how it was cut, so the cuts go into the archive too, and a
replay makes the same ones, through either workflow, whatever its own batch size or chunking:
- its split into parts (`split_through_archive`): a window cut in four reads four windows;
- the cursors its reads started from (a batch, a chunk call, a retry): a keyset walk resumed from
  a cursor lists again from there. A replay stops its reads at those cursors and only there
  (`Reading.enough`), so each read starts where an archived one did.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any, Callable, Iterator

from temporalio import activity

from etl import metrics
from etl.activities.query import split
from etl.core.archive import Answer, Request, as_of_time
from etl.core.settings import Settings, all_variables
from etl.kit.answers import SHORT_SECRET
from etl.kit.archive import InUse, using
from etl.store.archive import Archive
from etl.store.db import Database
from etl.workflows.flow_io import ArchiveUse, SplitInput, SplitResult


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every secret value the worker's settings hold (long enough to be told from ordinary text)."""
    secret = all_variables()
    return tuple(v for k, v in settings.env.items() if secret.get(k) and v and len(v) >= SHORT_SECRET)


class Reading:
    """A unit's read through the archive: what it took from it, and where it must stop."""

    def __init__(self, in_use: InUse | None = None, stops: frozenset[str] | None = None):
        self.in_use = in_use
        self.stops = stops

    @property
    def answered(self) -> int:
        return self.in_use.answered if self.in_use else 0

    def enough(self, own: Callable[[Any], bool]) -> Callable[[Any], bool]:
        """When the unit stops: by its own rule (batch size, pages per call), or, replaying, at the
        cursors the archived reads started from, and nowhere else: a read started from any other
        cursor would ask what the archive never heard (a keyset walk lists again from its cursor)."""
        if self.stops is None:
            return own
        stops = self.stops
        return lambda state: state.cursor in stops


def _unit_key(strategy: str, args: dict[str, Any]) -> str:
    canonical = json.dumps(args, sort_keys=True, default=str)
    return f"/{strategy}#{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


@contextlib.contextmanager
def source_archive(settings: Settings, db: Database, use: ArchiveUse, source: str, strategy: str,
                   args: dict[str, Any], cursor: str | None) -> Iterator[Reading]:
    """The archive in use for a unit's read of `args` from `cursor` (none: the source read as it is)."""
    if not (use.replay or use.archive or settings.source_archive):
        yield Reading()
        return
    flags = " ".join(f"--arg {k}={v}" for k, v in args.items())
    archive = Archive(db)
    book = archive.book(source, strategy, activity.info().workflow_id, as_of_time(use.as_of))
    unit = _unit_key(strategy, args)
    if use.replay:
        reading = Reading(stops=frozenset(archive.resumes(source, unit, book.as_of)))
    else:
        reading = Reading()
        if cursor is not None:  # a read starting here asks its own first request: a replay must start here too
            resume = hashlib.sha256(cursor.encode()).hexdigest()[:40]
            book.keep(Request("RESUME", f"{unit}#{resume}"), Answer(200, {}, cursor.encode()))
    reading.in_use = InUse(book, use.replay, source, strategy, secrets_of(settings),
                           missing_hint=f"archive it first with `run_flow.py {strategy} {flags} --archive`"[:600])
    try:
        with using(reading.in_use):
            yield reading
    finally:
        metrics.archive_used(reading.in_use.kept, reading.in_use.answered)


def split_through_archive(settings: Settings, db: Database, inp: SplitInput) -> SplitResult:
    """The query's parts (`etl.activities.query.split`); archiving, kept in the archive; replaying,
    the parts of the newest archived split of the same query, or the query whole when none was kept."""
    use = inp.archive
    if not (use.replay or use.archive or settings.source_archive):
        return split(inp)
    request = Request("SPLIT", _unit_key(inp.strategy, inp.args))
    book = Archive(db).book(inp.query_type, inp.strategy, activity.info().workflow_id, as_of_time(use.as_of))
    if use.replay:
        found = book.answer(request)
        return SplitResult(json.loads(found.body)) if found else split(SplitInput(
            inp.query_type, inp.strategy, inp.args, 1))
    result = split(inp)
    book.keep(request, Answer(200, {"content-type": "application/json"}, json.dumps(result.chunk_args).encode()))
    return result
