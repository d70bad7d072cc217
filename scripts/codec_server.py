#!/usr/bin/env python3
"""A codec server, so the Temporal UI and CLI can show flows whose payloads are encrypted.

    ETL_ENCRYPTION_KEY=... python scripts/codec_server.py [--port 8081] [--origin URL ...]
    temporal server start-dev ... --ui-codec-endpoint http://127.0.0.1:8081
    temporal workflow show -w ID --codec-endpoint http://127.0.0.1:8081

It speaks the remote codec protocol: `POST /decode` and `POST /encode` (also under
`/{namespace}/`), with a JSON `Payloads` body in and out. The UI's browser calls it directly,
so it answers CORS preflights for the UI's origin (and only that origin). It binds 127.0.0.1
by default: anyone who can reach it can read every payload, so put authentication in front of
it before exposing it beyond your own machine. See RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("codec_server")

MAX_BODY = 32 * 1024 * 1024
"""Largest request accepted (a history page of payloads is far smaller)."""


class CodecServer:
    """`codec`'s encode and decode over HTTP on host:port, from a daemon thread (`start`/`stop`)."""

    def __init__(self, codec, host: str = "127.0.0.1", port: int = 8081, origins: tuple[str, ...] = ()):
        self.codec = codec
        self.origins = tuple(o.rstrip("/") for o in origins)
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self._httpd.server_address[:2]

    @property
    def url(self) -> str:
        return "http://%s:%d" % self.address

    def start(self) -> "CodecServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="codec-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def transcode(self, operation: str, body: bytes) -> bytes:
        """`body` (JSON Payloads) encoded or decoded by the codec, as JSON Payloads."""
        from google.protobuf import json_format
        from temporalio.api.common.v1 import Payloads

        payloads = json_format.Parse(body, Payloads())
        run = self.codec.encode if operation == "encode" else self.codec.decode
        # The codec is pure computation: a private loop per request is enough.
        result = asyncio.run(run(list(payloads.payloads)))
        return json_format.MessageToJson(Payloads(payloads=result)).encode()


def _handler(server: CodecServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ETLCodecServer"

        def _operation(self) -> str | None:
            last = self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            return last if last in ("encode", "decode") else None

        def _cors(self) -> None:
            origin = self.headers.get("Origin")
            if origin and origin.rstrip("/") in server.origins:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
                self.send_header("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Access-Control-Max-Age", "600")
                self.send_header("Vary", "Origin")

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            self._send(status, json.dumps({"message": message}).encode())

        def do_OPTIONS(self) -> None:  # noqa: N802 - the stdlib's name
            origin = self.headers.get("Origin")
            if origin and origin.rstrip("/") not in server.origins:
                return self._error(403, f"origin {origin} is not allowed; start the server with --origin {origin}")
            self._send(204, b"", "text/plain")

        def do_POST(self) -> None:  # noqa: N802
            operation = self._operation()
            if operation is None:
                return self._error(404, "POST /encode or /decode (optionally under /{namespace}/)")
            origin = self.headers.get("Origin")
            if origin and origin.rstrip("/") not in server.origins:
                return self._error(403, f"origin {origin} is not allowed; start the server with --origin {origin}")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self._error(400, "Content-Length is not a number")
            if length > MAX_BODY:
                return self._error(413, f"body of {length} bytes is over the {MAX_BODY} byte limit")
            body = self.rfile.read(length)
            try:
                answer = server.transcode(operation, body)
            except Exception as exc:  # noqa: BLE001 - a bad request or a wrong key: say which
                log.warning("%s failed: %s", operation, exc)
                return self._error(400, f"cannot {operation}: {exc}")
            self._send(200, answer)

        def do_GET(self) -> None:  # noqa: N802
            self._error(405, "the codec server answers POST /encode and POST /decode")

        def log_message(self, format: str, *args) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


def main(argv: list[str] | None = None) -> int:
    from etl.core.errors import EtlError
    from etl.core.settings import load_settings

    try:
        settings = load_settings()
    except EtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    default_origins = [f"http://localhost:{settings.temporal_ui_port}", f"http://127.0.0.1:{settings.temporal_ui_port}"]
    parser = argparse.ArgumentParser(
        prog="python scripts/codec_server.py",
        description="Serve /encode and /decode with the payload encryption codec (key from ETL_ENCRYPTION_KEY), "
                    "so the Temporal UI and CLI can show encrypted flows.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; anything else exposes decrypted payloads "
                             "to whoever can reach it)")
    parser.add_argument("--port", type=int, default=8081, help="TCP port (default 8081)")
    parser.add_argument("--origin", action="append", metavar="URL",
                        help="a browser origin allowed to call the server (the Temporal UI's address); repeatable "
                             f"(default: {', '.join(default_origins)}, from TEMPORAL_UI_PORT)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not 0 < args.port <= 65535:
        parser.error(f"--port {args.port}: give a TCP port between 1 and 65535")
    for origin in args.origin or ():
        if not origin.startswith(("http://", "https://")) or origin.count("/") > 3:
            parser.error(f"--origin {origin!r}: give the UI's origin, e.g. http://localhost:8233")
    if not settings.encryption_key:
        print("error: ETL_ENCRYPTION_KEY is not set; give the codec server the key the workers use",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from etl.runtime.codec import EncryptionCodec

    codec = EncryptionCodec(settings.encryption_key)
    try:
        server = CodecServer(codec, args.host, args.port, tuple(args.origin or default_origins))
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; choose another --port",
              file=sys.stderr)
        return 2
    print(f"codec server for key id {codec.key_id} on {server.url} (CORS for {', '.join(server.origins)})",
          flush=True)
    print(f"  UI:  temporal server start-dev ... --ui-codec-endpoint {server.url}", flush=True)
    print(f"  CLI: temporal workflow show -w WORKFLOW_ID --codec-endpoint {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
