"""A source's budget shared by the fleet: the limits a source declares and settings override, the
budget table in the events database (real PostgreSQL), and clients of different workers (real
httpx against the fixture GitHub API) that collect one refusal per reset between them.

The whole fleet (worker processes, flows, the storm without the shared budget) is in
tests/fleet/test_budget_fleet.py."""

from __future__ import annotations

import threading
import time

import pytest
from psycopg2 import sql

from etl import metrics
from etl.activities.budgets import ActivityBudget
from etl.core.errors import ConfigError
from etl.core.limits import BudgetKey, Limits, Rate, parse_rate
from etl.core.settings import settings_from_env
from etl.kit import Bearer, SourceClient
from etl.kit.budget import using
from etl.kit.fixture_quota import Quota
from etl.store.budgets import FleetBudgets
from sources.github.client import github
from sources.github.fixture.server import GitHubFixture
from sources.github.settings import GitHubSettings
from sources.launchpad.settings import LaunchpadSettings

TOKEN = "budget-token-6f1e0c9a"


@pytest.mark.parametrize("text, rate", [("5000/h", Rate(5000, 3600)), ("120/min", Rate(120, 60)),
                                        ("20/10s", Rate(20, 10)), ("1/day", Rate(1, 86400)), (" 7/2h ", Rate(7, 7200))])
def test_a_rate_is_requests_per_period(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", ["5000", "0/h", "-1/h", "5000/week", "5000/h\n", "1e3/h", "5000 per hour", "/h", "9/0s"])
def test_a_bad_rate_setting_names_the_variable_and_the_format(bad):
    with pytest.raises(ConfigError) as raised:
        settings_from_env({"GITHUB_RATE_LIMIT": bad}).source(GitHubSettings)
    assert raised.value.variable == "GITHUB_RATE_LIMIT" and "5000/h" in str(raised.value)


def test_sources_declare_their_limits_and_settings_override_them():
    assert settings_from_env({}).source(GitHubSettings).limits() == Limits(Rate(5000, 3600), 100)
    assert settings_from_env({}).source(LaunchpadSettings).limits() == Limits()
    s = settings_from_env({"GITHUB_RATE_LIMIT": "120/min", "GITHUB_MAX_CONCURRENT": "4", "LP_RATE_LIMIT": "10/s"})
    assert s.source(GitHubSettings).limits() == Limits(Rate(120, 60), 4)
    assert s.source(LaunchpadSettings).limits() == Limits(Rate(10, 1), 0)
    assert settings_from_env({"GITHUB_RATE_LIMIT": "off"}).source(GitHubSettings).limits() == Limits(None, 100)
    with pytest.raises(ConfigError) as raised:
        settings_from_env({"GITHUB_MAX_CONCURRENT": "-3"}).source(GitHubSettings)
    assert raised.value.variable == "GITHUB_MAX_CONCURRENT"


def test_the_budget_key_names_the_source_and_hides_the_credential():
    key = BudgetKey.of("GitHub", "https://api.github.com/", [TOKEN])
    assert key == BudgetKey.of("GitHub", "https://api.github.com", [TOKEN])
    assert key.id.startswith("github:") and TOKEN not in key.id and TOKEN not in repr(key)
    assert key != BudgetKey.of("GitHub", "https://api.github.com", ["another-token"])
    assert key != BudgetKey.of("GitHub", "https://github.example.com/api/v3", [TOKEN])


def test_the_rate_holds_over_any_stretch_of_its_period(db):
    budgets, key = FleetBudgets(db), BudgetKey.of("Acme", "http://acme", ["k"])
    limits = Limits(Rate(5, 2.0))
    grants = [budgets.take(key, limits, 5.0) for _ in range(6)]
    assert [g.granted for g in grants] == [True] * 5 + [False]
    assert grants[-1].why == "rate" and 0 < grants[-1].wait_s <= 2.0 * (1 + 2 / 20) + 0.05
    time.sleep(grants[-1].wait_s)
    assert budgets.take(key, limits, 5.0).granted  # the oldest turns left the count
    other = BudgetKey.of("Acme", "http://acme", ["another credential"])
    assert budgets.take(other, limits, 5.0).granted  # a budget per credential


def test_at_most_n_at_once_and_a_lease_lapses_when_its_worker_is_gone(db):
    budgets, key = FleetBudgets(db), BudgetKey.of("Acme", "http://acme", ["k"])
    limits = Limits(max_concurrent=2)
    first, second = budgets.take(key, limits, 60.0), budgets.take(key, limits, 0.3)
    third = budgets.take(key, limits, 60.0)
    assert first.lease and second.lease and not third.granted and third.why == "concurrent"
    budgets.give_back(key, first)
    assert budgets.take(key, limits, 60.0).granted
    assert not budgets.take(key, limits, 60.0).granted
    time.sleep(0.35)  # `second`'s worker was killed mid-request: its lease lapses
    assert budgets.take(key, limits, 60.0).granted


def _row_text(db) -> str:
    def read(cur):
        cur.execute(sql.SQL("SELECT t::text FROM {} t").format(db.tables.budgets))
        return "\n".join(r[0] for r in cur.fetchall())
    return db.run(read)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "each-on-its-own"])
def test_workers_collect_one_refusal_per_reset_between_them(db, shared):
    """The quota is spent (by someone else); a first worker's request meets a 429 with the reset
    time. With the shared budget, a second worker waits for the reset instead of collecting its own."""
    store = FleetBudgets(db) if shared else None
    with GitHubFixture(require_token=TOKEN) as gh:
        settings = settings_from_env({"GITHUB_API_URL": gh.url, "GITHUB_TOKEN": TOKEN})
        gh.quota = Quota(2, 3.0)
        with github(settings) as elsewhere:  # another program with the same token, outside the fleet
            elsewhere.json("/repos/octo-org/hello-world")
            elsewhere.json("/repos/octo-org/hello-world")
        refused_before = metrics.value(metrics.SOURCE_RATE_LIMITED, source="GitHub")
        answers: dict[str, object] = {}

        def worker(name: str) -> None:  # a worker's activity: its own client, the budget installed
            with using(ActivityBudget(store)), github(settings) as client:
                answers[name] = client.json("/repos/octo-org/hello-world")

        first = threading.Thread(target=worker, args=("first",))
        first.start()
        while metrics.value(metrics.SOURCE_RATE_LIMITED, source="GitHub") == refused_before:
            time.sleep(0.01)  # the first worker met the spent quota (and, shared, recorded it)
        second = threading.Thread(target=worker, args=("second",))
        second.start()
        first.join(30)
        second.join(30)
        windows = gh.quota.windows
    assert answers["first"] == answers["second"] and answers["first"]["full_name"] == "octo-org/hello-world"
    assert [w.refused for w in windows] == ([1, 0] if shared else [2, 0]), windows
    assert metrics.value(metrics.SOURCE_RATE_LIMITED, source="GitHub") - refused_before == windows[0].refused
    if shared:
        assert TOKEN not in _row_text(db) and "github:" in _row_text(db)


def test_a_wait_longer_than_the_client_waits_goes_to_temporal_with_its_delay(db):
    from etl.core.errors import SourceUnavailable

    def client(url: str) -> SourceClient:
        return SourceClient(url, auth=Bearer(TOKEN), name="Acme", limits=Limits(Rate(1, 3600)), max_wait=5)

    with GitHubFixture() as gh, using(ActivityBudget(FleetBudgets(db))):
        with client(gh.url) as one_worker:
            one_worker.json("/repos/octo-org/hello-world")
        with client(gh.url) as another, pytest.raises(SourceUnavailable) as raised:
            another.json("/repos/octo-org/hello-world")
        assert len(gh.requests) == 1  # the second request was never sent
    assert "Acme's budget, shared by the fleet, is used up at its declared rate for" in str(raised.value)
    assert raised.value.retry_after_s > 3000


def _budget_rows(db) -> list[tuple]:
    def read(cur):
        cur.execute(sql.SQL("SELECT source, sent, refused, extract(epoch FROM spent_until - clock_timestamp()) "
                            "FROM {} ORDER BY source").format(db.tables.budgets))
        return cur.fetchall()
    return db.run(read)


def test_launchpad_requests_draw_from_the_budget_and_its_429_stops_the_fleet(db, tmp_path):
    """Every request launchpadlib sends after login is a turn of the fleet's budget for Launchpad;
    a 429 with Retry-After is recorded for the fleet, and another worker does not send before it."""
    from etl.core.errors import SourceUnavailable
    from sources.launchpad.fixture import FixtureService
    from sources.launchpad.fixture.server import Faults
    from tests.sources.test_launchpad import pages

    store = FleetBudgets(db)
    with FixtureService(seed=0) as lp:
        settings = settings_from_env({"LP_WEB_ROOT": lp.root, "LP_CACHE_DIR": str(tmp_path / "lp"),
                                      "LP_RATE_LIMIT": "100000/min", "LP_MAX_CONCURRENT": "2"})
        with using(ActivityBudget(store)):
            got = pages("launchpad-bugs", "alice", settings)
        [(source, sent, refused, spent_for)] = _budget_rows(db)
        assert source == "Launchpad" and refused == 0 and spent_for is None and got
        logging_in = lp.stats["requests"] - sent
        assert sent > 10 and 0 < logging_in <= 3, (sent, lp.stats)  # all but login (the service root, its WADL)

        lp.faults = Faults(rate=1.0, statuses=(429,), retry_after=30)
        for worker in ("first", "second"):
            with using(ActivityBudget(store)), pytest.raises(SourceUnavailable) as raised:
                pages("launchpad-bugs", "alice", settings)
            assert raised.value.retry_after_s > 25, worker
        assert lp.stats["fault_429"] == 1  # the second worker waited for the reset instead of asking
        assert "Launchpad's budget, shared by the fleet, is spent" in str(raised.value)
    [(_, _, refused, spent_for)] = _budget_rows(db)
    assert refused == 1 and 25 < spent_for <= 30.5
