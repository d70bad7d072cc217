"""Every dataclass that crosses a workflow or activity boundary.

One dataclass in, one out. New fields get defaults so old histories still decode.
None of them carries row data: only names, arguments, ids, cursors and counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FlowState:
    """What a flow has done so far; carried across continue-as-new."""

    flow_key: str = ""
    """Unique per flow execution chain; prefixes every staged batch and reject key."""
    started_at: str = ""
    cursor: str | None = None
    done: bool = False
    batches: int = 0
    extracted: int = 0
    rejected: int = 0
    loaded: int = 0
    duplicates_skipped: int = 0
    runs: int = 1
    """How many runs (continue-as-new generations) this flow has used."""
    chunks: list["ChunkState"] = field(default_factory=list)
    """StreamingETLFlow: the chunks and where each stands."""
    chunk_calls: int = 0
    """StreamingETLFlow: chunk activity calls completed (a chunk takes one call per `pages_per_call` pages)."""


@dataclass
class ETLFlowInput:
    """Routes a flow to a query type and an extract strategy. Secrets never go here."""

    query_type: str
    extract_strategy: str
    args: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 5000
    """ETLFlow: records per staged batch."""
    batches_in_flight: int = 4
    """ETLFlow: batches of the flow between the start of their extract and the end of their load, across
    all its parts: the fleet runs up to that many of its steps at once, and staging holds at most that many."""
    partitions: int = 1
    """ETLFlow: disjoint parts of the query extracted in parallel, each a chain of batches, when the source
    can split (`ExtractStrategy.split`); 1 extracts in one chain. Set it to the fleet's worker slots or so."""
    chunks_in_flight: int = 2
    """StreamingETLFlow: chunk activities running at once (the sliding window)."""
    chunk_count: int = 0
    """StreamingETLFlow: how many chunks to split the query into (0: `chunks_in_flight` x 2)."""
    pages_per_call: int = 25
    """StreamingETLFlow: pages a chunk activity runs before handing its state back: long enough
    to amortise scheduling, short enough that progress and history advance steadily."""
    heartbeat_timeout_s: int = 8
    """How soon a silent activity (a dead worker) is retried elsewhere. Activities heartbeat every
    2 s at most while they make progress, so 8 s is four missed beats: a SIGKILLed worker's work
    moves within about 10 s, and a busy worker is not mistaken for a dead one."""
    history_budget: int = 4000
    """Continue as new once a run's history passes this many events (or Temporal suggests it)."""
    state: FlowState | None = None
    """Set by the flow itself when it continues as new."""
    expected: int | None = None
    """How many records the query will read, when it says in advance (progress bars)."""


@dataclass
class FlowSummary:
    """The result of a flow, as the UI shows it."""

    workflow_id: str
    strategy: str
    extracted: int
    rejected: int
    loaded: int
    duplicates_skipped: int
    batches: int
    duration_s: float
    runs: int = 1
    status: str = "completed"
    backpressure_s: float = 0.0
    """Seconds chunks spent paused because a worker's memory was over its limit."""


@dataclass
class FlowProgress:
    """The answer to the `progress` query."""

    stage: str
    extracted: int
    rejected: int
    loaded: int
    duplicates_skipped: int
    batches: int
    done: bool
    expected: int | None = None
    """Total records when the source says (e.g. synthetic `count`), for progress bars."""
    chunks_running: int = 0
    """StreamingETLFlow: chunk activity calls running now."""
    chunks_done: int = 0
    """Chunks read to their end (a chunk is done only after its last page, however many calls it took)."""
    chunks_total: int = 0
    chunk_calls: int = 0
    """Chunk activity calls completed so far (each runs up to `pages_per_call` pages)."""
    pages: int = 0
    """Pages committed so far (StreamingETLFlow: extracted, transformed and loaded)."""
    backpressure: str = ""
    """Set while a worker is holding back for memory: which worker, its RSS and threshold."""


@dataclass
class ExtractBatchInput:
    flow_key: str
    batch_key: str
    query_type: str
    strategy: str
    args: dict[str, Any]
    cursor: str | None
    batch_size: int


@dataclass
class ExtractBatchResult:
    batch_key: str
    extracted: int
    """Records read from the source, including those that could not be staged."""
    staged: int
    """Records staged for transform."""
    rejected: int
    """Records that could not even be stored as JSON (recorded as rejects)."""
    next_cursor: str | None
    done: bool


@dataclass
class ExtractProgress:
    """What an extract attempt heartbeats after each staged page; a retry resumes from it."""

    cursor: str | None = None
    pages: int = 0
    extracted: int = 0
    staged: int = 0
    rejected: int = 0


@dataclass
class BatchRef:
    """A claim check: names a staged batch without carrying it."""

    batch_key: str
    query_type: str
    strategy: str
    expected: int = 0


@dataclass
class TransformResult:
    batch_key: str
    staged: int
    rejected: int


@dataclass
class LoadResult:
    batch_key: str
    inserted: int
    duplicates_skipped: int


@dataclass
class ChunkState:
    """One chunk of a streaming flow: a sub-query and how far it got."""

    index: int
    args: dict[str, Any]
    cursor: str | None = None
    done: bool = False
    extracted: int = 0
    rejected: int = 0
    loaded: int = 0
    duplicates_skipped: int = 0
    pages: int = 0
    resumed: bool = False
    """True when the last activity call started from a heartbeat (after a retry)."""
    resumed_from: str | None = None
    """The cursor the last activity call started from."""
    held_s: float = 0.0
    """Seconds this chunk paused for memory backpressure."""
    held_note: str = ""
    peak_rss_mib: float = 0.0
    """The highest RSS of the worker(s) that ran this chunk."""


@dataclass
class ChunkInput:
    flow_key: str
    query_type: str
    strategy: str
    chunk: ChunkState
    max_pages: int = 0
    """Stop after this many pages (0: run to the end) so one activity stays short."""


@dataclass
class SplitInput:
    query_type: str
    strategy: str
    args: dict[str, Any]
    parts: int


@dataclass
class SplitResult:
    chunk_args: list[dict[str, Any]]
