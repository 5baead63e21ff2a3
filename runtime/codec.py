"""Payload encryption: an AES-GCM `PayloadCodec` under the pydantic data converter (temporal-notes §4.8).

Every payload the SDK hands to Temporal (workflow and activity inputs and results, update and
signal arguments, query results, failures' messages and stack traces, summaries) is replaced by

    metadata: encoding=binary/encrypted, encryption-key-id=<id>
    data:     nonce (12 bytes) + AES-GCM ciphertext and tag of the original `Payload.SerializeToString()`

which is the wire format of Temporal's samples (`encryption/codec.py`), so their codec servers and
tools interoperate. What Temporal itself must read stays plain: workflow/activity ids and types,
task queues, search attributes (never anything sensitive: workflows/common.py).

Keys come from the environment, `SPOTCHECK_CODEC_KEYS="id1:base64key,id2:base64key"` (runtime/config.py):
the FIRST key encrypts, every listed key decrypts, so a key is rotated by putting a new id in
front and keeping the old ids as long as any history encrypted with them is kept (docs/codec.md).
Decoding passes payloads that are not encrypted through unchanged, so switching encryption on keeps
the histories written before readable; a payload encrypted under an id that is not configured is a
`CodecKeyError` that names the id.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

ENV_VAR = "SPOTCHECK_CODEC_KEYS"
ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = (16, 24, 32)  # AES-128/192/256; generate 32 (docs/codec.md)
_KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class CodecKeyError(ValueError):
    """A key that is missing, malformed or wrong for a payload. Never carries key material."""


def parse_keys(spec: str) -> dict[str, bytes]:
    """`"id1:base64key,id2:base64key"` → `{id: key}` in the given order (the first one encrypts)."""
    keys: dict[str, bytes] = {}
    for n, entry in enumerate(spec.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id, encoded = key_id.strip(), encoded.strip()
        where = f"{ENV_VAR} entry {n}" + (f" ({key_id!r})" if sep and _KEY_ID_PATTERN.fullmatch(key_id) else "")
        if not sep or not _KEY_ID_PATTERN.fullmatch(key_id):
            raise CodecKeyError(f"{where}: expected id:base64key with an id of letters, digits, '.', '_' or '-'")
        if key_id in keys:
            raise CodecKeyError(f"{where}: key id {key_id!r} listed twice")
        try:
            key = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise CodecKeyError(f"{where}: the key is not valid base64") from None
        if len(key) not in KEY_BYTES:
            raise CodecKeyError(f"{where}: the key is {len(key)} bytes; AES-GCM needs 16, 24 or 32 (use 32)")
        keys[key_id] = key
    if not keys:
        raise CodecKeyError(f"{ENV_VAR} names no key")
    return keys


def new_key() -> str:
    """A fresh 256-bit key, base64, for `SPOTCHECK_CODEC_KEYS`."""
    return base64.b64encode(os.urandom(32)).decode()


class AesGcmCodec(PayloadCodec):
    """AES-GCM over whole serialized payloads; the first key encrypts, every key decrypts."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise CodecKeyError("an encryption codec needs at least one key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.encrypt_key_id = next(iter(self._ciphers))

    @classmethod
    def from_spec(cls, spec: str) -> AesGcmCodec:
        return cls(parse_keys(spec))

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    # The SDK's interface. The work is CPU-only and small, so it runs inline.
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.encode_sync(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.decode_sync(payloads)

    # The same, for callers without an event loop (the codec server's threads).
    def encode_sync(self, payloads: Iterable[Payload]) -> list[Payload]:
        cipher, key_id = self._ciphers[self.encrypt_key_id], self.encrypt_key_id.encode()
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            encoded.append(Payload(
                metadata={"encoding": ENCODING, KEY_ID: key_id},
                data=nonce + cipher.encrypt(nonce, payload.SerializeToString(), None),
            ))
        return encoded

    def decode_sync(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self._decode_one(p) if is_encrypted(p) else p for p in payloads]

    def _decode_one(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        if not key_id:
            raise CodecKeyError(f"encrypted payload without an {KEY_ID} in its metadata: cannot tell which key")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecKeyError(
                f"payload encrypted with key id {key_id!r}, which is not configured "
                f"({ENV_VAR} has {', '.join(map(repr, self._ciphers))}): add that key to decrypt it")
        data = payload.data
        try:
            return Payload.FromString(cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None))
        except InvalidTag:
            raise CodecKeyError(f"payload with key id {key_id!r} does not decrypt: the configured key for that "
                                "id is not the one it was encrypted with, or the data was altered") from None
        except (DecodeError, ValueError) as error:
            raise CodecKeyError(f"payload with key id {key_id!r} decrypted to no valid payload: {error}") from None


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


def codec_for(settings) -> AesGcmCodec | None:
    """The codec the settings configure, or None when SPOTCHECK_CODEC_KEYS is unset."""
    spec = getattr(settings, "codec_keys", None)
    return AesGcmCodec.from_spec(spec) if spec else None


def converter_with(codec: PayloadCodec | None) -> DataConverter:
    """The pydantic converter, with the codec and failure messages/stack traces moved into encoded attributes."""
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec,
                               failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def data_converter(settings) -> DataConverter:
    """THE data converter of every client, worker and replayer: encrypting when keys are configured."""
    return converter_with(codec_for(settings))


# --- raw histories ---------------------------------------------------------------------------------
_PAYLOAD = Payload.DESCRIPTOR.full_name


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every `Payload` message anywhere inside a protobuf message (a history event, a whole history)."""
    for fd, value in message.ListFields():
        if fd.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if fd.message_type.GetOptions().map_entry:
            if fd.message_type.fields_by_name["value"].type != FieldDescriptor.TYPE_MESSAGE:
                continue
            items: Iterable[Message] = value.values()
        elif fd.is_repeated:
            items = value
        else:
            items = (value,)
        for item in items:
            if item.DESCRIPTOR.full_name == _PAYLOAD:
                yield item
            else:
                yield from payloads_in(item)


def decrypt_in_place(message: Message, codec: AesGcmCodec) -> int:
    """Decrypt every encrypted payload inside `message` (e.g. a fetched history before it joins the
    plain replay corpus); returns how many were decrypted."""
    found = [p for p in payloads_in(message) if is_encrypted(p)]
    for payload in found:
        payload.CopyFrom(codec.decode_sync([payload])[0])
    return len(found)


__all__ = ["AesGcmCodec", "CodecKeyError", "ENCODING", "ENV_VAR", "KEY_ID", "codec_for", "converter_with",
           "data_converter", "decrypt_in_place", "is_encrypted", "new_key", "parse_keys", "payloads_in"]
