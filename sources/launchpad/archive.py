"""launchpadlib through the source archive (`etl.kit.archive`): every request a `Launchpad` object
makes, its login's WADL and service root included, goes through its HTTP object's `request`
(lazr.restfulclient's `Browser` calls nothing else), so that is where answers are recorded or
given from the archive. The OAuth signature is added below it (`RestfulHttp._request`), so it
never reaches the archive; a replay never reaches httplib2 at all: no connection, no cache.
"""

from __future__ import annotations

from typing import Any

from httplib2 import Response
from launchpadlib.launchpad import Launchpad

from etl.kit.archive import Answer, in_use, through_archive


class ArchivedLaunchpad(Launchpad):
    """A `Launchpad` whose HTTP object goes through the archive in use (when there is one)."""

    def httpFactory(self, credentials, cache, timeout, proxy_info):  # noqa: N802 - launchpadlib's name
        http = super().httpFactory(credentials, cache, timeout, proxy_info)
        http.request = _through_archive(http.request)
        return http


def _through_archive(request):
    def archived(uri: str, method: str = "GET", body: Any = None, headers: dict | None = None, *args: Any,
                 **kwargs: Any):
        if in_use() is None:
            return request(uri, method, body, headers, *args, **kwargs)
        live: list[tuple[Response, bytes]] = []

        def fetch() -> Answer:
            response, content = request(uri, method, body, headers, *args, **kwargs)
            live.append((response, content))
            fields = {k: str(v) for k, v in response.items() if k != "status"}
            return Answer(response.status, fields, content if isinstance(content, bytes) else str(content).encode())

        accept = next((v for k, v in (headers or {}).items() if k.lower() == "accept"), "")
        answer = through_archive(method, uri, accept, fetch)
        if live:
            return live[0]
        replayed = Response({**answer.headers, "status": str(answer.status)})
        replayed.reason = "OK" if answer.status < 400 else "Not Found"
        return replayed, answer.body

    return archived
