"""`ArchiveTransport`: the httpx transport of `SourceClient`, through the source archive (`etl.kit.archive`).

With no archive in use it is httpx's own transport (the environment's HTTP(S)_PROXY and NO_PROXY
honoured, as httpx does when it makes the transport itself). Recording, each answer is read whole
and kept; replaying, the archived answer is returned and no connection is opened.
"""

from __future__ import annotations

from typing import Iterable
from urllib.request import getproxies, proxy_bypass

import httpx

from etl.kit.archive import Answer, in_use, through_archive

#: Headers that described the bytes on the wire, not the body a replay gives (decoded already).
_WIRE_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


class ArchiveTransport(httpx.BaseTransport):
    """httpx's transport, recording into or answering from the archive in use."""

    def __init__(self, secrets: Iterable[str | None] = ()):
        self.secrets = tuple(s for s in secrets if s)
        self._direct = httpx.HTTPTransport()
        self._proxied = {scheme: httpx.HTTPTransport(proxy=url) for scheme, url in getproxies().items()
                         if scheme in ("http", "https")}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if in_use() is None:
            return self._inner(request).handle_request(request)
        live: list[httpx.Response] = []

        def fetch() -> Answer:
            response = self._inner(request).handle_request(request)
            try:
                body = response.read()
            finally:
                response.close()
            # Read whole (and decoded): the caller gets the same body, without the wire's encoding headers.
            headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
            live.append(httpx.Response(response.status_code, headers=headers, content=body, request=request,
                                       extensions=response.extensions))
            return Answer(response.status_code, dict(live[0].headers), body)

        answer = through_archive(request.method, str(request.url), request.headers.get("Accept", ""), fetch,
                                 self.secrets)
        if live:
            return live[0]
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)

    def _inner(self, request: httpx.Request) -> httpx.HTTPTransport:
        proxied = self._proxied.get(request.url.scheme)
        return proxied if proxied and not proxy_bypass(request.url.host) else self._direct

    def close(self) -> None:
        for transport in (self._direct, *self._proxied.values()):
            transport.close()

