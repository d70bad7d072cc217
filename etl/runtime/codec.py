"""Optional payload encryption: what the Temporal UI and CLI show of a flow is unreadable
without the key.

Set `ETL_ENCRYPTION_KEY` on every worker and launcher (`etl.runtime.client.data_converter` then adds
this codec), and run `scripts/codec_server.py` with the same key for the UI (RELIABILITY.md).
Make a key with `python -c "import secrets; print(secrets.token_urlsafe(32))"`.

Each payload is serialised whole (metadata and data) and sealed with AES-256-GCM under a
fresh 96-bit nonce; the result is a payload whose `encoding` is `binary/encrypted` and whose
`encryption-key-id` names the key (a hash, not the key), so a process with a different key
fails with a message that says so instead of with garbage. Payloads that are not encrypted
pass through `decode` unchanged, so histories from before the key was set still read.

What it does not hide: search attributes (the server indexes them), workflow and activity
ids and types, task queues, failure messages, and the static summary a flow is started with.
None of these hold row data or secrets (see SPEC, "Workflows").
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE_BYTES = 12
_INFO = b"temporal-etl-fleet payload codec v1"


class EncryptionKeyMismatch(ValueError):
    """A payload was sealed with another key than this codec's."""

    def __init__(self, payload_key_id: str, codec_key_id: str):
        self.payload_key_id = payload_key_id
        self.codec_key_id = codec_key_id
        super().__init__(
            f"payload encrypted with key id {payload_key_id!r}, but ETL_ENCRYPTION_KEY has key id "
            f"{codec_key_id!r}: give this process the key the flow was started with")


def _aesgcm():
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # a clear message beats an ImportError deep in a worker
        raise RuntimeError("ETL_ENCRYPTION_KEY is set but the `cryptography` package is missing; "
                           "install the project again (pip install -e .)") from exc
    return AESGCM


def derive_key(secret: str) -> bytes:
    """A 256-bit AES key from the configured secret (HKDF-SHA256): any string works, a long
    random one (32 bytes or more) is what makes it safe."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if not secret:
        raise ValueError("an encryption key must not be empty")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode("utf-8"))


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads, keyed by `key` (the value of ETL_ENCRYPTION_KEY)."""

    def __init__(self, key: str):
        self._cipher = _aesgcm()(derive_key(key))
        self.key_id = hashlib.sha256(b"key-id:" + derive_key(key)).hexdigest()[:16]
        """Names the key in every payload without revealing it."""

    def __repr__(self) -> str:  # never the key
        return f"EncryptionCodec(key_id={self.key_id!r})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE_BYTES)
        # The key id is authenticated data: a payload cannot be relabelled to another key.
        sealed = self._cipher.encrypt(nonce, payload.SerializeToString(), self.key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        if key_id != self.key_id:
            raise EncryptionKeyMismatch(key_id, self.key_id)
        data = payload.data
        plain = self._cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], key_id.encode())
        inner = Payload()
        inner.ParseFromString(plain)
        return inner
