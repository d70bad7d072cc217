"""The garbage collector set for a worker's work: many short-lived objects a record, few cycles.

A page of records allocates tens of thousands of dicts, strings and events that reference
counting frees as soon as the page is loaded; CPython's default collector still runs a
generation-0 pass every 700 allocations and, now and then, walks every object the process
holds (the SDK, the sources, their imports). Measured on `scripts/bench.py`'s transform row
(100,000 records in memory): the default collector costs about a tenth of the Python per event.

`tune()` moves what exists at start-up (imports, settings, the worker's registrations) out of
the collector's sight (`gc.freeze`), and lets 50,000 allocations pass between young
collections: cyclic garbage is still collected, in bigger, rarer passes. Memory is unchanged
in practice (objects without cycles are freed by reference counting either way).
"""

from __future__ import annotations

import gc

YOUNG = 50_000
"""Allocations between generation-0 collections (CPython's default: 700)."""
MIDDLE = 20
OLD = 10


def tune() -> None:
    """Call once, after start-up imports and before the work begins."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
