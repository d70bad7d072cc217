"""Connecting to Temporal with the project's settings: its data converter and its TLS.

`connect` raises `TemporalUnreachable` (one line, exit status 1) when the server does not answer
or refuses our TLS, naming the address and the setting to look at; `unreachable` turns an RPC
that failed because the server went away mid-command into the same error.
"""

from __future__ import annotations

import asyncio
import re

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from etl.core.errors import ConfigError, TemporalUnreachable
from etl.core.settings import Settings

START_HINT = "start it with `python scripts/dev.py up`, or set TEMPORAL_HOST to where it runs"


def data_converter(settings: Settings):
    """The default converter, with payload encryption when a key is configured."""
    from temporalio.converter import DataConverter

    if settings.encryption_key:
        import dataclasses

        from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

        from etl.runtime.codec import EncryptionCodec

        # Failure messages and stack traces are encrypted too: they can quote a record or a path.
        return dataclasses.replace(DataConverter.default, payload_codec=EncryptionCodec(settings.encryption_key),
                                   failure_converter_class=DefaultFailureConverterWithEncodedAttributes)
    return DataConverter.default


def uses_mtls(settings: Settings) -> bool:
    return bool(settings.temporal_tls_cert or settings.temporal_tls_ca or settings.temporal_tls_server_name)


def tls_config(settings: Settings) -> TLSConfig | bool:
    """What `Client.connect(tls=...)` takes: a `TLSConfig` with the PEM files read now (the key
    stays in memory, never in a message), or whether to use TLS with the system's CAs."""
    if not uses_mtls(settings):
        return settings.temporal_tls or bool(settings.temporal_api_key)

    def read(variable: str, path) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:  # checked when the settings were read, but it may have changed since
            raise ConfigError(variable, str(path), f"the path of a readable PEM file "
                                                   f"({exc.strerror or type(exc).__name__})") from None

    return TLSConfig(server_root_ca_cert=read("TEMPORAL_TLS_CA", settings.temporal_tls_ca),
                     domain=settings.temporal_tls_server_name,
                     client_cert=read("TEMPORAL_TLS_CERT", settings.temporal_tls_cert),
                     client_private_key=read("TEMPORAL_TLS_KEY", settings.temporal_tls_key))


#: What the transport says when TLS itself failed: retrying cannot help, a setting is wrong.
_TLS_FAILURE = re.compile(r"(?i)certificate|handshake|tls|ssl|alert|invalid ?peer|unknown ?issuer|"
                          r"http2 error|frame with invalid size|protocol error")


def _reason(exc: BaseException) -> str:
    """The transport's reason, short: the last readable phrase of the SDK's nested error text."""
    text = str(exc)
    for pattern in (r'error: "([^"]{1,300})"', r'message: "([^"]{1,200})"', r'\bmessage: (\w[\w ]{0,80})'):
        found = re.findall(pattern, text)
        if found:
            return found[-1].split(": http")[0]
    return text[:200]


def _connect_failure(exc: BaseException, settings: Settings) -> tuple[TemporalUnreachable, bool]:
    """The error to raise for a failed connect, and whether a retry could help."""
    host, text = settings.temporal_host, str(exc)
    # Connected, then cut off: a TLS server that our plain client cannot talk to (or the reverse).
    after_connect = "after connection" in text and "transport error" in text
    if (_TLS_FAILURE.search(text) or after_connect) and "connection refused" not in text.lower():
        if settings.temporal_tls_cert:
            what = ("check that TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY hold a certificate the server's CA signed, "
                    "that TEMPORAL_TLS_CA is the CA of the server's certificate and TEMPORAL_TLS_SERVER_NAME "
                    "the name in it")
            setting = "TEMPORAL_TLS_CERT"
        elif uses_mtls(settings) or settings.temporal_tls or settings.temporal_api_key:
            what = ("if the server asks for a client certificate, set TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY; "
                    "check TEMPORAL_TLS_CA and TEMPORAL_TLS_SERVER_NAME against the server's certificate")
            setting = "TEMPORAL_TLS_CERT"
        else:
            what = ("if the server speaks TLS, set TEMPORAL_TLS=true (or TEMPORAL_TLS_CA and, for a client "
                    "certificate, TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY)")
            setting = "TEMPORAL_TLS"
        return TemporalUnreachable(f"Temporal at {host} refused the TLS connection ({_reason(exc)}): {what}",
                                   address=host, setting=setting), False
    return TemporalUnreachable(f"cannot reach Temporal at {host} ({_reason(exc)}); {START_HINT}",
                               address=host, setting="TEMPORAL_HOST"), True


async def connect(settings: Settings, *, wait_s: float = 0.0) -> Client:
    """A client for `settings.temporal_host`. A server that does not answer is tried again for
    `wait_s` seconds (a worker started beside its server waits for it; a command fails at once);
    then, or at once for a TLS refusal, `TemporalUnreachable`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    tls = tls_config(settings)
    while True:
        try:
            return await Client.connect(
                settings.temporal_host,
                namespace=settings.temporal_namespace,
                api_key=settings.temporal_api_key,
                tls=tls,
                data_converter=data_converter(settings),
            )
        except RuntimeError as exc:
            error, retry = _connect_failure(exc, settings)
            if not retry or loop.time() > deadline:
                raise error from None
            await asyncio.sleep(0.5)


def unreachable(exc: BaseException, settings: Settings) -> TemporalUnreachable | None:
    """`TemporalUnreachable` when `exc` is an RPC that failed because the server went away (or never
    answered), else None."""
    if isinstance(exc, RPCError) and exc.status == RPCStatusCode.UNAVAILABLE:
        return TemporalUnreachable(f"Temporal at {settings.temporal_host} went away ({exc.message[:200]}); "
                                   f"{START_HINT}, then run the command again",
                                   address=settings.temporal_host, setting="TEMPORAL_HOST")
    return None
