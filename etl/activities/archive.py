"""The activities' side of the source archive: around a unit's read, the archive the source's
client records into or answers from (`etl.kit.archive.using`), as the flow asked (`ArchiveUse`)
or the worker's SOURCE_ARCHIVE says.

    with source_archive(settings, db, inp.archive, inp.query_type, inp.strategy, inp.args) as archive:
        state, done = unit.run(strategy.pages(query, cursor, settings), ...)
    answered = archive.answered if archive else 0
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from temporalio import activity

from etl import metrics
from etl.core.archive import as_of_time
from etl.core.settings import Settings, all_variables
from etl.kit.answers import SHORT_SECRET
from etl.kit.archive import InUse, using
from etl.store.archive import Archive
from etl.store.db import Database
from etl.workflows.flow_io import ArchiveUse


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """Every secret value the worker's settings hold (long enough to be told from ordinary text)."""
    secret = all_variables()
    return tuple(v for k, v in settings.env.items() if secret.get(k) and v and len(v) >= SHORT_SECRET)


@contextlib.contextmanager
def source_archive(settings: Settings, db: Database, use: ArchiveUse, source: str, strategy: str,
                   args: dict[str, Any]) -> Iterator[InUse | None]:
    """The archive in use for the block (None: the source is read as it is, nothing kept)."""
    if not (use.replay or use.archive or settings.source_archive):
        yield None
        return
    flags = " ".join(f"--arg {k}={v}" for k, v in args.items())
    book = Archive(db).book(source, strategy, activity.info().workflow_id, as_of_time(use.as_of))
    archive = InUse(book, use.replay, source, strategy, secrets_of(settings),
                    missing_hint=f"archive it first with `run_flow.py {strategy} {flags} --archive`"[:600])
    try:
        with using(archive):
            yield archive
    finally:
        metrics.archive_used(archive.kept, archive.answered)
