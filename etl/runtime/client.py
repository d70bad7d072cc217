"""Connecting to Temporal with the project's settings and data converter."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from etl.core.settings import Settings


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


async def connect(settings: Settings, *, wait_s: float = 30.0) -> Client:
    """A client for `settings.temporal_host`; waits up to `wait_s` for a server that is still starting."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            return await Client.connect(
                settings.temporal_host,
                namespace=settings.temporal_namespace,
                api_key=settings.temporal_api_key,
                tls=settings.temporal_tls or bool(settings.temporal_api_key),
                data_converter=data_converter(settings),
            )
        except RuntimeError as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"cannot reach Temporal at {settings.temporal_host} ({exc}); start it with "
                    f"`python scripts/dev.py up` or set TEMPORAL_HOST"
                ) from exc
            await asyncio.sleep(0.5)
