"""Staging from tests as the activities do: transformed events through `Staging.transform_raw`
(one raw page standing for the extracted records), and the raw pages of a batch read back."""

from __future__ import annotations

from etl.activities.raw_pages import lines_page
from etl.core.models import Event
from etl.store.staging import Staging


def stage_events(staging: Staging, batch_key: str, events: list[Event]) -> bool:
    """Stage `events` as the transform of batch `batch_key` (replacing what an earlier attempt
    staged); False when the batch was loaded already (an attempt that outlived the load)."""
    staging.stage_raw_page(batch_key, 0, lines_page([]))
    rows = [event.copy_row() for event in events]
    return staging.transform_raw(batch_key, None, lambda cur, page: (len(rows), rows)) is not None


def staged_pages(staging: Staging, batch_key: str) -> list[bytes]:
    """The batch's staged raw pages in order, as the transform reads them."""
    return staging.db.run(lambda cur: list(staging._raw_pages(cur, batch_key)))  # noqa: SLF001
