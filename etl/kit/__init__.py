"""What sources build on, so a source is its settings, its query and its flows.

    http.py       SourceClient: an httpx client with auth, timeouts, retries and clear refusals
    auth.py       Bearer, TokenHeader, Basic: how the token travels (only to the base URL)
    answers.py    reading answers: Retry-After, rate-limit resets, refusals, secrets removed
    paginate.py   LinkHeader, NextLink, BodyCursor, Offset, PageNumber: each yields a resume cursor
    keyset.py     KeySet: resume by the last (updated, id) seen, for lists sorted by a mutable field
    loopback.py   LoopbackServer: the one small HTTP server of the project (fixtures, codec server)
    fixture.py    FixtureServer: a source's routes and data served offline, with paging, token
                  checks and injected faults (5xx, 429, rate limits, stalls, dropped connections)

    from etl.kit import Bearer, LinkHeader, SourceClient

    with SourceClient(api.base_url, auth=Bearer(api.token), name="Acme") as acme:
        for items, cursor in acme.pages("/v1/widgets", {"owner": "ann"}, LinkHeader(), cursor=cursor):
            yield Page([record(i) for i in items], cursor=cursor)
"""

from etl.kit.auth import Basic, Bearer, TokenHeader
from etl.kit.http import SourceClient
from etl.kit.keyset import KeySet, keyset_walk
from etl.kit.paginate import BodyCursor, LinkHeader, NextLink, Offset, PageNumber, batched

__all__ = ["Basic", "Bearer", "BodyCursor", "KeySet", "LinkHeader", "NextLink", "Offset", "PageNumber",
           "SourceClient", "TokenHeader", "batched", "keyset_walk"]
