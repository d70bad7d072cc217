"""Staging from tests as the activities do: a raw page put as the extract puts it, transformed
events staged through `Staging.transform_raw`, and the raw pages of a batch read back."""

from __future__ import annotations

from typing import Any

from etl.core.models import Event
from etl.store.staging import Staging


def stage_page(staging: Staging, batch_key: str, page_no: int, records: list[Any]) -> int:
    """Put one raw page of `records` in staging, as `extract_batch` does; returns how many it holds."""
    return staging.db.run(lambda cur: staging.put_page(cur, batch_key, page_no, records)[0])


def stage_events(staging: Staging, batch_key: str, events: list[Event], hashed: bool = False) -> bool:
    """Stage `events` as the transform of batch `batch_key` (replacing what an earlier attempt
    staged), with their content hashes when `hashed` (the upsert and history load modes); False
    when the batch was loaded already (an attempt that outlived the load)."""
    stage_page(staging, batch_key, 0, [])
    rows = [event.copy_row(hashed) for event in events]
    return staging.transform_raw(batch_key, None, lambda cur, records: rows) is not None


def staged_pages(staging: Staging, batch_key: str) -> list[list[Any]]:
    """The records of the batch's staged raw pages in order, as the transform reads them."""
    return staging.db.run(lambda cur: list(staging._raw_pages(cur, batch_key)))  # noqa: SLF001
