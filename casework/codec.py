"""Encrypted payloads: a Temporal payload codec with AES-GCM and rotatable keys.

Every payload a casework client or worker sends (case input, activity arguments and results,
updates, signals, queries, failure messages) is encrypted before it leaves the process, so the
Temporal server, its database and the Web UI hold ciphertext. People who hold the key read cases
through ``casework show``/``audit`` or the Web UI pointed at the codec server
(``casework.codec_server``).

Keys live in a key ring: a JSON document ``{"current": "<key id>", "keys": {"<key id>":
"<base64 of 32 bytes>"}}``, read from the file named by ``CASEWORK_CODEC_KEYS_FILE`` or, inline,
from ``CASEWORK_CODEC_KEYS``. New payloads use the current key; every key in the ring can still
decrypt, so rotating is: add a key, make it current, keep the old ones as long as histories
encrypted with them are kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_RING_FILE = "codec-keys.json"
"""Where ``casework up`` keeps the embedded stack's generated key ring, under its state dir."""


class CodecKeyError(Exception):
    """The key ring is missing, malformed, or lacks the key a payload was encrypted with."""


class KeyRing(BaseModel):
    current: str = Field(min_length=1)
    keys: dict[str, str]
    """Key ID to the base64 of a 32-byte AES-256 key."""

    @field_validator("keys")
    @classmethod
    def _keys_are_aes_256(cls, keys: dict[str, str]) -> dict[str, str]:
        for key_id, encoded in keys.items():
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error as error:
                raise ValueError(f"key {key_id!r} is not valid base64") from error
            if len(raw) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes, got {len(raw)}")
        return keys

    @model_validator(mode="after")
    def _current_is_in_the_ring(self) -> KeyRing:
        if self.current not in self.keys:
            raise ValueError(f"current key {self.current!r} is not among the keys")
        return self

    def key(self, key_id: str) -> bytes:
        return base64.b64decode(self.keys[key_id])

    @classmethod
    def generate(cls) -> KeyRing:
        key_id = f"k-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
        return cls(
            current=key_id, keys={key_id: base64.b64encode(AESGCM.generate_key(256)).decode()}
        )

    @classmethod
    def parse(cls, text: str, source: str) -> KeyRing:
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or '(document)'}: {item['msg']}"
                for item in error.errors()
            )
            raise CodecKeyError(f"codec key ring {source} is invalid: {problems}") from error


def load_key_ring(state_dir: Path, env: Mapping[str, str] = os.environ) -> KeyRing | None:
    """The key ring this process should use, or None when payloads are not to be encrypted.

    ``CASEWORK_CODEC_KEYS`` (inline JSON) wins over ``CASEWORK_CODEC_KEYS_FILE``; without
    either, the ring ``casework up`` generated under the state directory is used if present.
    """
    if inline := env.get("CASEWORK_CODEC_KEYS"):
        return KeyRing.parse(inline, "CASEWORK_CODEC_KEYS")
    named = env.get("CASEWORK_CODEC_KEYS_FILE")
    path = Path(named) if named else state_dir / KEY_RING_FILE
    if not path.is_file():
        if named:
            raise CodecKeyError(f"CASEWORK_CODEC_KEYS_FILE names {path}, which does not exist")
        return None
    return KeyRing.parse(path.read_text(), str(path))


def ensure_key_ring(state_dir: Path) -> Path:
    """Generate the embedded stack's key ring on first run; readable by this user only."""
    path = state_dir / KEY_RING_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(json.dumps(KeyRing.generate().model_dump(), indent=2) + "\n")
    return path


class EncryptionCodec(PayloadCodec):
    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._ciphers = {key_id: AESGCM(ring.key(key_id)) for key_id in ring.keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id = self._ring.current
        cipher = self._ciphers[key_id]
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            # The key ID is authenticated data: swapping it on a stored payload fails to decrypt.
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id.encode())
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
                    data=nonce + sealed,
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                # Written before encryption was on, or by a tool without the codec.
                decoded.append(payload)
                continue
            key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise CodecKeyError(
                    f"payload encrypted with key {key_id!r}, which is not in this key ring "
                    f"(it has: {', '.join(sorted(self._ciphers))})"
                )
            nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            try:
                plain = cipher.decrypt(nonce, sealed, key_id.encode())
            except InvalidTag as error:
                raise CodecKeyError(
                    f"payload under key {key_id!r} failed authentication: altered or wrong key"
                ) from error
            decoded.append(Payload.FromString(plain))
        return decoded
