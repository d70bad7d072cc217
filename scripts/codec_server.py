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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etl.kit.loopback import LoopbackServer, Reply, Request  # noqa: E402 - after the path is set

log = logging.getLogger("codec_server")


class CodecServer(LoopbackServer):
    """`codec`'s encode and decode over HTTP on host:port, from a daemon thread (`start`/`stop`)."""

    name = "ETLCodecServer"

    def __init__(self, codec, host: str = "127.0.0.1", port: int = 8081, origins: tuple[str, ...] = ()):
        self.codec = codec
        self.origins = tuple(o.rstrip("/") for o in origins)
        super().__init__(host, port)

    def transcode(self, operation: str, body: bytes) -> bytes:
        """`body` (JSON Payloads) encoded or decoded by the codec, as JSON Payloads."""
        from google.protobuf import json_format
        from temporalio.api.common.v1 import Payloads

        payloads = json_format.Parse(body, Payloads())
        run = self.codec.encode if operation == "encode" else self.codec.decode
        # The codec is pure computation: a private loop per request is enough.
        result = asyncio.run(run(list(payloads.payloads)))
        return json_format.MessageToJson(Payloads(payloads=result)).encode()

    def handle(self, request: Request) -> Reply:
        reply = self._answer(request)
        origin = request.headers.get("Origin")
        if origin and origin.rstrip("/") in self.origins:
            reply.headers.update({
                "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, X-Namespace, Authorization",
                "Access-Control-Allow-Credentials": "true", "Access-Control-Max-Age": "600", "Vary": "Origin"})
        log.debug("%s %s -> %d", request.method, request.path, reply.status)
        return reply

    def _answer(self, request: Request) -> Reply:
        origin = request.headers.get("Origin")
        if origin and origin.rstrip("/") not in self.origins:
            return _error(403, f"origin {origin} is not allowed; start the server with --origin {origin}")
        if request.method == "OPTIONS":
            return Reply(204, b"", {"Content-Type": "text/plain"})
        if request.method != "POST":
            return _error(405, "the codec server answers POST /encode and POST /decode")
        operation = request.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if operation not in ("encode", "decode"):
            return _error(404, "POST /encode or /decode (optionally under /{namespace}/)")
        try:
            answer = self.transcode(operation, request.body)
        except Exception as exc:  # noqa: BLE001 - a bad request or a wrong key: say which
            log.warning("%s failed: %s", operation, exc)
            return _error(400, f"cannot {operation}: {exc}")
        return Reply(200, answer, {"Content-Type": "application/json"})


def _error(status: int, message: str) -> Reply:
    return Reply(status, json.dumps({"message": message}).encode(), {"Content-Type": "application/json"})


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
