"""`LoopbackServer`: the project's one small HTTP server, for fixture APIs and the codec server.

Subclasses answer `handle(request) -> Reply`; the server does the HTTP (keep-alive, lengths,
no logging to stderr), a daemon thread (`start`/`stop`, or `with`), and binds 127.0.0.1
unless told otherwise. A `Reply` can also misbehave on purpose, as real servers do: stall,
drop the connection before answering, or cut it halfway through the body.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"
MAX_BODY = 32 * 1024 * 1024
"""The largest request body read; a larger one is answered 413."""


@dataclass
class Request:
    method: str
    path: str
    """Path and query string, as sent."""
    headers: Message
    body: bytes = b""


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stall_s: float = 0.0
    """Sleep this long before answering (past a client's timeout, to test it)."""
    misbehave: str | None = None
    """`drop`: close the connection without answering; `cut`: close it halfway through the body."""


class LoopbackServer:
    """An HTTP server on `host:port` (port 0: any free one) answering with `handle`."""

    name = "loopback-server"

    def __init__(self, host: str = LOOPBACK, port: int = 0):
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    @property
    def address(self) -> tuple[str, int]:
        return self._httpd.server_address[:2]

    @property
    def url(self) -> str:
        return "http://%s:%d" % self.address

    def start(self) -> Any:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of a real API
        server_version = server.name
        disable_nagle_algorithm = True  # headers and body are two writes; don't wait 40 ms between

        def _serve(self, method: str) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                return self._reply(Reply(413 if length > 0 else 400, b'{"message": "bad Content-Length"}'))
            body = self.rfile.read(length) if length else b""
            self._reply(server.handle(Request(method, self.path, self.headers, body)))

        def _reply(self, reply: Reply) -> None:
            if reply.stall_s:
                time.sleep(reply.stall_s)
            if reply.misbehave == "drop":
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            if reply.misbehave == "cut":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(reply.body[: len(reply.body) // 2] if reply.misbehave == "cut" else reply.body)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's names
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_OPTIONS(self) -> None:  # noqa: N802
            self._serve("OPTIONS")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # tests read what a server recorded, not stderr

    return Handler
