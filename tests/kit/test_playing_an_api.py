"""The fixture server plays an API that is not GitHub: its own token header and refusal, offset and
limit over `Link` headers with a total header and a bare list, every 5xx, and waits said as an HTTP
date or a rate-limit reset. The kit's client reads it all (real httpx over loopback)."""

from __future__ import annotations

import pytest

from etl.core.errors import SourceError
from etl.kit import LinkHeader, SourceClient, TokenHeader
from etl.kit.fixture import Answer, FixtureServer, Listing

KEY = "board-key-0b1e"
CARDS = [{"id": i} for i in range(12)]


class Board(FixtureServer):
    def __init__(self, **options):
        super().__init__([(r"/api/cards", lambda m, p: Listing(CARDS))], token=KEY, token_header="X-Api-Key",
                         refusal=Answer(403, {"error": "invalid api key"}), paging="offset", links=True,
                         params={"limit": "count", "offset": "start"}, items_field=None, total_header="X-Total-Count",
                         max_per_page=5, **options)


@pytest.fixture
def board():
    with Board() as api:
        yield api


def client(api, key: str = KEY, waits: list | None = None) -> SourceClient:
    return SourceClient(api.url, auth=TokenHeader(key, "X-Api-Key"), name="Board",
                        sleep=(waits if waits is not None else []).append)


def test_offset_paging_over_link_headers_with_a_total_and_a_bare_list(board):
    with client(board) as api:
        pages = list(api.pages("/api/cards", {"count": 5}, LinkHeader()))
        assert [c["id"] for page, _ in pages for c in page] == list(range(12))
        rest = list(api.pages("/api/cards", {"count": 5}, LinkHeader(), cursor=pages[0][1]))
        assert [c["id"] for page, _ in rest for c in page] == list(range(5, 12))
        answer = api.get("/api/cards", {"count": 5, "start": 10})
    assert pages[0][1] == "/api/cards?count=5&start=5" and pages[-1][1] is None
    assert answer.headers["X-Total-Count"] == "12" and 'rel="prev"' in answer.headers["Link"]
    assert [s.authorization for s in board.requests] == [KEY] * len(board.requests), "the key in its own header"


def test_a_bad_key_is_refused_with_the_apis_own_status_and_body(board):
    with client(board, key="wrong"), pytest.raises(SourceError, match=r"refused GET .* \(403 invalid api key\)") \
            as caught:
        client(board, key="wrong").json("/api/cards")
    assert caught.value.status == 403


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_every_5xx_is_injected_and_retried(board, status):
    board.inject("5xx", status=status)
    with client(board) as api:
        assert len(api.json("/api/cards")) == 5
    assert [r.status for r in board.requests] == [status, 200]


@pytest.mark.parametrize("wait_as", ["date", "reset"])
def test_a_wait_said_as_an_http_date_or_a_reset_is_waited(board, wait_as):
    board.inject("429", seconds=20, wait_as=wait_as)
    board.inject("5xx", status=503, seconds=20, wait_as="date", after=1)  # a 503's wait is a Retry-After
    waits: list[float] = []
    with client(board, waits=waits) as api:
        assert len(api.json("/api/cards")) == 5
    assert [r.status for r in board.requests] == [429, 503, 200]
    assert len(waits) == 2 and all(17 <= w <= 22 for w in waits), waits


def test_an_unknown_paging_parameter_or_5xx_is_refused_naming_it():
    with pytest.raises(ValueError, match="'size' is not a paging parameter"):
        FixtureServer([], params={"size": "n"})
    with Board() as api, pytest.raises(ValueError, match="status=418"):
        api.inject("5xx", status=418)
