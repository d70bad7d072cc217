"""What sources build on, so a source is its settings, its query and its flows.

    http.py       SourceClient: an httpx client with auth, timeouts, retries and clear refusals
    auth.py       Bearer, TokenHeader, Basic: how the token travels (only to the base URL)
    answers.py    reading answers: Retry-After, rate-limit resets, refusals, secrets removed
    budget.py     Turns: each request drawn from the budget the fleet shares per source and credential
    paginate.py   LinkHeader, NextLink, BodyCursor, Offset, PageNumber: each yields a resume cursor
    keyset.py     KeySet: resume by the last (updated, id) seen, for lists sorted by a mutable field
    walk.py       walk: lists, then the collections under each entry, resumably (Launchpad's shape)
    events.py     Events: an event record's fields named once and checked; mapped: one bad record, one reject
    window.py     WindowQuery: `since < until` and `contains(at)` from a query's window_fields
    idle.py       Idle: a few costly clients kept between extract calls
    archive.py    through_archive: a client's requests recorded into, or answered from, the source archive
                  (archive_transport.py: SourceClient's httpx transport does it for every kit source)
    loopback.py   LoopbackServer: the one small HTTP server of the project (fixtures, codec server)
    fixture.py    FixtureServer: a source's routes and data served offline, with paging (fixture_paging.py),
                  token checks and injected faults (5xx, 429, rate limits, stalls, dropped connections)
    fixture_quota.py  Quota: a fixture's rate limit played as GitHub's (N per window, 429 beyond)

Times a source sends are read by `etl.core.times.read_time` (ISO 8601, RFC 2822, epoch).

    from etl.kit import Events, LinkHeader, SourceClient, TokenHeader, mapped

    with SourceClient(api.base_url, auth=TokenHeader(api.token, "X-Api-Key"), name="Acme") as acme:
        for items, cursor in acme.pages("/v1/widgets", {"owner": "ann"}, LinkHeader(), cursor=cursor):
            yield Page(mapped(items, lambda item: widget_events(query, item)), cursor=cursor)
"""

from etl.core.times import read_time
from etl.kit.auth import Basic, Bearer, TokenHeader
from etl.kit.events import Events, mapped
from etl.kit.http import SourceClient
from etl.kit.keyset import KeySet, keyset_walk
from etl.kit.paginate import BodyCursor, LinkHeader, NextLink, Offset, PageNumber, batched
from etl.kit.window import WindowQuery

__all__ = ["Basic", "Bearer", "BodyCursor", "Events", "KeySet", "LinkHeader", "NextLink", "Offset", "PageNumber",
           "SourceClient", "TokenHeader", "WindowQuery", "batched", "keyset_walk", "mapped", "read_time"]
