"""SourceClient against the kit's fixture server on loopback: real httpx over real HTTP."""

from __future__ import annotations

import time

import pytest

from etl.core.errors import SourceError, SourceUnavailable
from etl.kit import Basic, Bearer, SourceClient, TokenHeader
from tests.kit.conftest import TOKEN, Widgets

NO_SLEEP = []


def client(api, token: str | None = TOKEN, **options) -> SourceClient:
    """A client whose waits are recorded instead of slept (what it waits is what is checked)."""
    options.setdefault("sleep", NO_SLEEP.append)
    return SourceClient(api.url, auth=Bearer(token) if token else None, name="Widgets", **options)


@pytest.fixture(autouse=True)
def forget_waits():
    NO_SLEEP.clear()


def test_transient_failures_are_retried_waiting_what_the_api_asks(widgets):
    widgets.inject("5xx", count=2)
    widgets.inject("429", after=2, seconds=7)
    with client(widgets) as api:
        assert api.json("/v1/widgets/3")["id"] == 3
    assert [r.status for r in widgets.requests] == [502, 502, 429, 200]
    assert NO_SLEEP == [0.5, 1.0, 7.0], "backoff, then Retry-After"


@pytest.mark.parametrize("fault", ["drop", "cut", "stall"])
def test_dropped_cut_and_stalled_answers_are_retried(widgets, fault):
    widgets.inject(fault, seconds=1.0)
    with client(widgets, timeout=0.3) as api:
        assert api.json("/v1/widgets/4") == {"id": 4, "updated_at": "2024-01-02T00:00:00Z"}
    assert len(NO_SLEEP) == 1 and len(widgets.requests) == 2


def test_too_many_failures_go_to_temporal_without_a_delay(widgets):
    widgets.inject("5xx", count=10)
    with client(widgets) as api, pytest.raises(SourceUnavailable, match="answered 502") as caught:
        api.json("/v1/widgets/1")
    assert caught.value.retry_after_s is None and caught.value.status == 502
    assert len(widgets.requests) == 4, "three retries here, then Temporal's"


def test_a_rate_limit_reset_hours_away_goes_to_temporal_as_the_delay(widgets):
    widgets.inject("rate_limit", seconds=5 * 3600, announce=False)
    with client(widgets) as api, pytest.raises(SourceUnavailable, match="rate limited") as caught:
        api.json("/v1/widgets/1")
    assert 5 * 3600 - 5 < caught.value.retry_after_s < 5 * 3600 + 5
    assert NO_SLEEP == [] and len(widgets.requests) == 1, "no sleeping through hours in a worker thread"


def test_a_spent_quota_is_waited_for_before_the_next_request(widgets):
    widgets.inject("rate_limit", seconds=2)  # this answer spends it: X-RateLimit-Remaining: 0
    with client(widgets, sleep=lambda s: (NO_SLEEP.append(s), time.sleep(s))) as api:  # the reset must come
        api.json("/v1/widgets/1")
        api.json("/v1/widgets/2")
    assert [r.status for r in widgets.requests] == [200, 200]
    assert len(NO_SLEEP) == 1 and 1 <= NO_SLEEP[0] <= 3.5

    widgets.inject("rate_limit", seconds=3600)
    with client(widgets) as api:
        api.json("/v1/widgets/1")
        with pytest.raises(SourceUnavailable, match="rate limit is spent") as caught:
            api.json("/v1/widgets/2")
    assert caught.value.retry_after_s > 3500


@pytest.mark.parametrize("status, token, path", [(401, "wrong", "/v1/widgets/1"), (401, None, "/v1/widgets/1"),
                                                 (404, TOKEN, "/v1/widgets/99")])
def test_refusals_are_source_errors_with_status_and_url_and_no_retry(widgets, status, token, path):
    with client(widgets, token=token) as api, pytest.raises(SourceError) as caught:
        api.json(path + "?api_key=hush-hush-1")
    assert caught.value.status == status and len(widgets.requests) == 1
    message = str(caught.value)
    assert f"Widgets refused GET {widgets.url}{path}?api_key=***" in message and f"({status} " in message
    assert "hush-hush" not in message and (token is None or token not in message)


def test_auth_kinds_send_the_right_header(widgets):
    seen = []
    for auth in (Bearer(TOKEN), Bearer(TOKEN, scheme="token"), TokenHeader(TOKEN, header="Authorization")):
        with SourceClient(widgets.url, auth=auth) as api:
            api.json("/v1/widgets/1")
        seen.append(widgets.requests[-1].authorization)
    assert seen == [f"Bearer {TOKEN}", f"token {TOKEN}", TOKEN]
    assert Basic("ann", "pw").headers() == {"Authorization": "Basic YW5uOnB3"}
    assert TOKEN not in repr(Bearer(TOKEN)) + repr(TokenHeader(TOKEN)) and "pw" not in repr(Basic("ann", "pw"))


def test_links_and_cursors_off_the_base_url_are_refused(widgets):
    with client(widgets) as api:
        for ref in ("//evil.example/v1/widgets", "https://evil.example/v1/widgets", "v1/widgets"):
            with pytest.raises(SourceError, match="not a Widgets cursor or link"):
                api.get(ref)
    assert widgets.requests == []


def test_the_fixture_binds_loopback_only():
    with Widgets() as api:
        assert api.address[0] == "127.0.0.1" and api.url.startswith("http://127.0.0.1:")
