"""The budget an activity installs while it reads a source: the fleet's (`etl.store.budgets`), or
with SHARED_BUDGETS=false one that only counts, so each client finds the limits on its own.

    pages = self.budgets.around(strategy.pages(query, cursor, settings), unit)

Each request counts on `/metrics` (`etl_source_requests_total`, and the seconds it waited for its
turn in `etl_source_budget_wait_seconds_total`, the refusals in `etl_source_rate_limited_total`),
and while it waits the activity's heartbeat details say so: the UI shows an activity waiting on
the fleet's budget, not on the source.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Iterator

from etl import metrics
from etl.activities.pages import PageLoop
from etl.core.extract import Page
from etl.core.limits import BudgetKey, Grant, Limits
from etl.core.settings import Settings
from etl.kit.budget import using, why_text
from etl.store.budgets import FleetBudgets
from etl.store.db import Database

log = logging.getLogger(__name__)


class SourceBudgets:
    """Built once per worker, beside the activities."""

    def __init__(self, settings: Settings, db: Database):
        self.store = FleetBudgets(db) if settings.shared_budgets else None

    def around(self, pages: Iterator[Page], unit: PageLoop) -> Iterator[Page]:
        """`pages`, each read with the budget installed (and only then: the page's commit is not the source's)."""
        budget = ActivityBudget(self.store, unit)
        it = iter(pages)
        try:
            while True:
                with using(budget):
                    page = next(it, None)
                if page is None:
                    return
                yield page
        finally:
            close = getattr(it, "close", None)
            if close:
                with using(budget):
                    close()


class ActivityBudget:
    """The `etl.kit.budget.Budget` of one activity: the fleet's store (None: grant every turn), the
    metrics, and the heartbeat's word on waiting."""

    def __init__(self, store: FleetBudgets | None, unit: PageLoop | None = None):
        self.store = store
        self.unit = unit
        self._said = False

    def take(self, key: BudgetKey, limits: Limits, lease_s: float) -> Grant:
        grant = self.store.take(key, limits, lease_s) if self.store else Grant("")
        if grant.granted:
            metrics.SOURCE_REQUESTS.labels(source=key.source).inc()
            if self._said:
                self._said = False
                self._note(None)
        return grant

    def give_back(self, key: BudgetKey, grant: Grant) -> None:
        if self.store:
            self.store.give_back(key, grant)

    def spent(self, key: BudgetKey, seconds: float, status: int) -> None:
        if self.store:
            self.store.spent(key, seconds, status)
            log.warning("%s says its budget is spent for %.0f s (HTTP %d): every worker of the fleet waits for the "
                        "reset", key.source, seconds, status)
        if status >= 400:
            metrics.SOURCE_RATE_LIMITED.labels(source=key.source).inc()

    def waiting(self, key: BudgetKey, seconds: float, why: str) -> None:
        metrics.SOURCE_BUDGET_WAIT.labels(source=key.source).inc(seconds)
        until = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%H:%M:%S")
        self._said = True
        self._note(f"waiting on {key.source}'s budget, shared by the fleet ({why_text(why)}), until {until} UTC")

    def _note(self, text: str | None) -> None:
        if self.unit is not None and self.unit.heartbeat is not None:
            self.unit.heartbeat.waiting(text)
