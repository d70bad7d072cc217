"""Every dataclass that crosses a workflow or activity boundary.

One dataclass in, one out, with named fields. None of them carries row data: only names,
arguments, ids, cursors and counts. The flows are pinned (a flow finishes on the build it
started on), so a field may change freely between builds; new fields still get defaults, so
a flow's own continue-as-new input and a hand-written start (the launchers) decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


#: How a load treats an event whose event_id is in the table already (README, "Load modes").
LOAD_MODES = ("insert", "upsert", "history")


@dataclass
class Counts:
    """What happened to the records of a flow, a part, a chunk or a batch. Every record read is
    rejected or reaches the load: `extracted = loaded + updated + unchanged + rejected`."""

    extracted: int = 0
    rejected: int = 0
    loaded: int = 0
    """Rows the load inserted."""
    updated: int = 0
    """Rows the load replaced with a changed version (`upsert` and `history` modes)."""
    unchanged: int = 0
    """Events in the table already, as they were (or, `insert` mode, at all); a record an event of
    the same id later in its page replaced counts here too."""

    def add(self, other: "Counts") -> None:
        """Add `other`'s counts to these, in place."""
        for f in fields(Counts):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def minus(self, other: "Counts") -> "Counts":
        """These counts less `other`'s: what a step added to a total it started from."""
        return Counts(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(Counts)})

    def only(self) -> "Counts":
        """The counts alone (of a subclass such as `FlowSummary`)."""
        return Counts(**{f.name: getattr(self, f.name) for f in fields(Counts)})


@dataclass
class Part:
    """A disjoint part of a flow's query (an ETLFlow part, a StreamingETLFlow chunk) and how far it got."""

    index: int
    args: dict[str, Any]
    cursor: str | None = None
    """The committed cursor the next page is read after (None: from the start)."""
    done: bool = False
    """Read to its last page."""
    pages: int = 0
    counts: Counts = field(default_factory=Counts)
    from_archive: int = 0
    """Answers the part's reads took from the source archive (a replay)."""


@dataclass
class ChunkState(Part):
    """A StreamingETLFlow chunk: a part, plus what its last activity call reported."""

    resumed: bool = False
    """True when the last call resumed from a committed page of an earlier attempt."""
    resumed_from: str | None = None
    """The cursor the last activity call started from."""
    held_s: float = 0.0
    """Seconds this chunk paused for memory backpressure."""
    held_note: str = ""
    peak_rss_mib: float = 0.0
    """The highest RSS of the worker(s) that ran this chunk."""


@dataclass
class FlowState:
    """What a flow has done so far; carried across continue-as-new."""

    flow_key: str = ""
    """Unique per flow execution chain; prefixes every staged batch, resume point and reject key."""
    started_at: str = ""
    counts: Counts = field(default_factory=Counts)
    batches: int = 0
    """ETLFlow: batches started. StreamingETLFlow: pages committed."""
    runs: int = 1
    """How many runs (continue-as-new generations) this flow has used."""
    parts: list[Part] = field(default_factory=list)
    """ETLFlow: the query's parts and where each stands."""
    chunks: list[ChunkState] = field(default_factory=list)
    """StreamingETLFlow: the query's chunks and where each stands."""
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
    load_mode: str = "insert"
    """`insert`: an event already in the table is skipped; `upsert`: a changed one replaces its row;
    `history`: as upsert, the replaced version kept in `<table>_history` (see `LOAD_MODES`)."""
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
    archive: bool = False
    """Keep every answer the source gives in the source archive (workers with SOURCE_ARCHIVE=on always do)."""
    replay: bool = False
    """Read the source archive instead of the source: no connection to the source is opened."""
    as_of: str | None = None
    """A replay's point in time (ISO 8601): the newest answers archived at or before it."""

    def archive_use(self) -> "ArchiveUse":
        return ArchiveUse(self.archive, self.replay, self.as_of)


@dataclass
class ArchiveUse:
    """How an activity reads the flow's source: live, live and archived, or replayed from the archive."""

    archive: bool = False
    replay: bool = False
    as_of: str | None = None


@dataclass
class FlowSummary(Counts):
    """The result of a flow, as the UI shows it."""

    workflow_id: str = ""
    strategy: str = ""
    batches: int = 0
    duration_s: float = 0.0
    runs: int = 1
    status: str = "completed"
    backpressure_s: float = 0.0
    """Seconds chunks spent paused because a worker's memory was over its limit."""
    from_archive: int = 0
    """Answers read from the source archive instead of the source (a replay)."""


@dataclass
class FlowProgress(Counts):
    """The answer to the `progress` query."""

    stage: str = ""
    batches: int = 0
    done: bool = False
    expected: int | None = None
    """Total records when the source says (e.g. synthetic `count`), for progress bars."""
    chunks_running: int = 0
    """Parts' batches (ETLFlow) or chunk calls (StreamingETLFlow) running now."""
    chunks_done: int = 0
    """Parts or chunks read to their end (however many calls it took)."""
    chunks_total: int = 0
    chunk_calls: int = 0
    """Chunk activity calls completed so far (each runs up to `pages_per_call` pages)."""
    pages: int = 0
    """Pages committed so far."""
    backpressure: str = ""
    """Set while a worker is holding back for memory: which worker, its RSS and threshold."""


# -- ETLFlow's activities -------------------------------------------------------------------------

@dataclass
class ExtractBatchInput:
    flow_key: str
    batch_key: str
    query_type: str
    strategy: str
    args: dict[str, Any]
    cursor: str | None
    batch_size: int
    archive: ArchiveUse = field(default_factory=ArchiveUse)


@dataclass
class ExtractBatchResult:
    batch_key: str
    counts: Counts
    """`extracted`: records read; `rejected`: those that could not even be staged."""
    staged: int
    """Records staged for transform."""
    next_cursor: str | None
    done: bool
    from_archive: int = 0
    """Answers read from the source archive (a replay)."""


@dataclass
class BatchRef:
    """A claim check: names a staged batch without carrying it."""

    batch_key: str
    query_type: str
    strategy: str
    expected: int = 0
    """Records (transform) or events (load) the batch must still hold: fewer means its staging was lost."""
    load_mode: str = "insert"


@dataclass
class TransformResult:
    batch_key: str
    staged: int
    rejected: int


@dataclass
class LoadResult:
    batch_key: str
    inserted: int
    updated: int
    unchanged: int


@dataclass
class SplitInput:
    query_type: str
    strategy: str
    args: dict[str, Any]
    parts: int
    archive: ArchiveUse = field(default_factory=ArchiveUse)
    """Archiving, the split is kept with the answers; replaying, the archived split is used (the
    same parts read the same requests), or the query whole when none was kept."""


@dataclass
class SplitResult:
    chunk_args: list[dict[str, Any]]


# -- StreamingETLFlow's activities ----------------------------------------------------------------

@dataclass
class ChunkInput:
    flow_key: str
    query_type: str
    strategy: str
    chunk: ChunkState
    max_pages: int = 0
    """Stop after this many pages (0: run to the end) so one activity stays short."""
    load_mode: str = "insert"
    archive: ArchiveUse = field(default_factory=ArchiveUse)
