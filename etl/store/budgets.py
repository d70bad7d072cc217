"""`FleetBudgets`: each source's budget, shared by every worker of the fleet, in the events database.

A row of `events_budgets` per source and credential hash (`etl.core.limits.BudgetKey`; the
credential itself is never known here) holds:

    slots        requests granted, counted per slot of 1/SLOTS of the rate's period
    leases       requests in flight: lease id -> when it lapses (a worker killed mid-request)
    spent_until  the source said the budget is spent until then (429, X-RateLimit-Remaining: 0)
    sent, refused  requests granted, and answers that said the budget was spent, ever

A turn is one short transaction on that row (`SELECT ... FOR UPDATE`, then an `UPDATE`); the
connection goes back to the pool before anyone waits, so waiting workers hold nothing. Times
are the database's, so the clocks of the fleet's machines need not agree.

The rate holds over any stretch of the period, not only over windows the source might count in:
a grant counts every request granted in the last SLOTS + 1 whole slots (a period and one slot
more), so a source counting fixed windows from whenever it likes sees at most the rate.
"""

from __future__ import annotations

import json
import math
import uuid

from psycopg2 import sql

from etl.core.limits import BudgetKey, Grant, Limits
from etl.store.db import Database

SLOTS = 20
"""Slots per period of a rate: a turn refused for the rate waits at most a slot longer than needed."""
POLL_S = 0.2
"""How soon to ask again when enough requests are in flight (a lease given back wakes nobody)."""


class FleetBudgets:
    """The `Budget` store of `etl.kit.budget`: `take`, `give_back`, `spent` (see the module docstring)."""

    def __init__(self, db: Database):
        self.db = db
        self.table = db.tables.budgets

    def take(self, key: BudgetKey, limits: Limits, lease_s: float) -> Grant:
        return self.db.run(lambda cur: self._take(cur, key, limits, lease_s), what=f"a turn of {key.source}'s budget")

    def _take(self, cur, key: BudgetKey, limits: Limits, lease_s: float) -> Grant:
        row = self._row(cur, key, lock=limits.any)
        slots, leases, spent_until, now = row
        if spent_until is not None and spent_until > now:
            return Grant(None, spent_until - now, "spent")
        if not limits.any:
            return Grant("")
        leases = {lease: lapses for lease, lapses in leases.items() if lapses > now}
        if limits.max_concurrent and len(leases) >= limits.max_concurrent:
            return Grant(None, max(0.01, min(POLL_S, min(leases.values()) - now)), "concurrent")
        if limits.rate:
            width = limits.rate.seconds / SLOTS
            here = math.floor(now / width)
            slots = {slot: n for slot, n in slots.items() if int(slot) >= here - SLOTS - 1 and n > 0}
            if sum(slots.values()) >= limits.rate.count:
                oldest = min(int(slot) for slot in slots)  # the turn comes when it leaves the count
                return Grant(None, max(0.01, (oldest + SLOTS + 2) * width - now), "rate")
            slots[str(here)] = slots.get(str(here), 0) + 1
        lease = ""
        if limits.max_concurrent:
            lease = uuid.uuid4().hex
            leases[lease] = now + lease_s
        cur.execute(sql.SQL("UPDATE {t} SET slots = %s, leases = %s, sent = sent + 1, updated_at = now() "
                            "WHERE budget_key = %s").format(t=self.table),
                    (json.dumps(slots), json.dumps(leases), key.id))
        return Grant(lease)

    def _row(self, cur, key: BudgetKey, lock: bool) -> tuple[dict, dict, float | None, float]:
        query = sql.SQL("SELECT slots, leases, extract(epoch FROM spent_until)::float8, "
                        "extract(epoch FROM clock_timestamp())::float8 FROM {t} WHERE budget_key = %s"
                        + (" FOR UPDATE" if lock else "")).format(t=self.table)
        cur.execute(query, (key.id,))
        row = cur.fetchone()
        if row is None:
            cur.execute(sql.SQL("INSERT INTO {t} (budget_key, source) VALUES (%s, %s) ON CONFLICT DO NOTHING"
                                ).format(t=self.table), (key.id, key.source[:100]))
            cur.execute(query, (key.id,))
            row = cur.fetchone()
        return row

    def give_back(self, key: BudgetKey, grant: Grant) -> None:
        if grant.lease:
            self.db.run(lambda cur: cur.execute(sql.SQL("UPDATE {t} SET leases = leases - %s WHERE budget_key = %s"
                                                        ).format(t=self.table), (grant.lease, key.id)),
                        what=f"giving back a turn of {key.source}'s budget")

    def spent(self, key: BudgetKey, seconds: float, status: int) -> None:
        def record(cur) -> None:
            self._row(cur, key, lock=False)
            cur.execute(sql.SQL(
                "UPDATE {t} SET spent_until = greatest(coalesce(spent_until, '-infinity'), "
                "clock_timestamp() + make_interval(secs => %s)), refused = refused + %s, updated_at = now() "
                "WHERE budget_key = %s").format(t=self.table), (min(seconds, 7 * 86400.0), int(status >= 400), key.id))

        self.db.run(record, what=f"recording that {key.source}'s budget is spent")
