"""The activities the workflows call, as the workflows see them: names, inputs and results.

Workflow code must not import the activities' implementations (they reach the database, the
settings and the sources, none of which may enter the workflow sandbox). It calls these
declarations by reference instead; `etl.activities` implements them by subclassing, so a
renamed method or a changed signature shows up on both sides, and the worker registers the
implementations under the same names (`tests/test_architecture.py` checks they agree).
"""

from __future__ import annotations

from temporalio import activity

from etl.workflows.flow_io import (
    BatchRef,
    ChunkInput,
    ChunkState,
    ExtractBatchInput,
    ExtractBatchResult,
    LoadResult,
    SplitInput,
    SplitResult,
    TransformResult,
)


class BatchActivities:
    """ETLFlow's steps: extract, transform and load one staged batch each, then clean up."""

    @activity.defn
    def extract_batch(self, inp: ExtractBatchInput) -> ExtractBatchResult:
        """Read pages from a cursor until a batch is full, staging each page."""
        raise NotImplementedError

    @activity.defn
    def transform_batch(self, ref: BatchRef) -> TransformResult:
        """Turn a staged raw batch into staged events and recorded rejects."""
        raise NotImplementedError

    @activity.defn
    def load_batch(self, ref: BatchRef) -> LoadResult:
        """Insert a staged batch into the events table, idempotently."""
        raise NotImplementedError

    @activity.defn
    def split_extract(self, inp: SplitInput) -> SplitResult:
        """Disjoint parts of the query, extracted in parallel (the query itself when it cannot split)."""
        raise NotImplementedError

    @activity.defn
    def finish_flow(self, flow_key: str) -> None:
        """Drop what the flow left in staging."""
        raise NotImplementedError


class StreamingActivities:
    """StreamingETLFlow's steps: split the query, then run chunks of pages end to end."""

    @activity.defn
    def split_query(self, inp: SplitInput) -> SplitResult:
        """Disjoint sub-queries for parallel chunks."""
        raise NotImplementedError

    @activity.defn
    def process_chunk(self, inp: ChunkInput) -> ChunkState:
        """Run a chunk from its cursor for up to `max_pages` pages."""
        raise NotImplementedError

    @activity.defn
    def finish_stream(self, flow_key: str) -> None:
        """Drop the flow's resume points and anything else it left in staging."""
        raise NotImplementedError
