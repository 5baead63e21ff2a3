"""The signed payload in a notice's QR code: "these inspectors were dispatched to this entity for this task".

Impersonating market-supervision officers is a known fraud. The inspection notice (检查通知书) and the
result notice (检查结果告知书) carry a QR code whose payload the bureau signs with Ed25519; anyone checks
it offline on the public site's notice-check.html (WebCrypto) with the public keys the site publishes by id.

Token: `SCN1.` + base64url(payload bytes) + `.` + base64url(signature), no padding. The signature covers
the payload bytes exactly as carried, so a checker never re-serialises; the issuer writes them canonical
(sorted keys, no spaces, ASCII) so equal payloads give equal tokens. The key id is inside the signed
payload: a token cannot be re-labelled to another key. A key id is derived from the public key itself,
so a rotation never reuses an id and an id never names two keys.

Pure: no I/O, no clock.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PREFIX = "SCN1"
FIELDS = ("kid", "task_id", "team", "uscc", "valid_until")


class NotGenuine(ValueError):
    """A token that is malformed, signed by no published key, or whose signature does not hold."""


@dataclass(frozen=True)
class Dispatch:
    """What a genuine token states: these inspectors, to this entity, for this task, until this day."""

    task_id: str
    uscc: str
    team: tuple[str, ...]
    valid_until: date
    kid: str

    def payload(self) -> dict:
        return {"kid": self.kid, "task_id": self.task_id, "team": list(self.team), "uscc": self.uscc,
                "valid_until": self.valid_until.isoformat()}


def canonical(payload: Mapping) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    """The id the site publishes a public key under: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise NotGenuine(f"not base64url: {error}") from None


def sign(*, task_id: str, uscc: str, team: list[str], valid_until: date, key: Ed25519PrivateKey) -> str:
    """The token for a notice; the key id is the signing key's own."""
    dispatch = Dispatch(task_id=task_id, uscc=uscc, team=tuple(team), valid_until=valid_until,
                        kid=key_id(raw_public_key(key.public_key())))
    body = canonical(dispatch.payload())
    return f"{PREFIX}.{b64url(body)}.{b64url(key.sign(body))}"


def verify(token: str, public_keys: Mapping[str, bytes]) -> Dispatch:
    """What the token states, when a published key signed it; NotGenuine otherwise. Validity in time is
    the caller's question (`Dispatch.valid_until`): an expired notice is genuine but no longer in force."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise NotGenuine(f"not a {PREFIX} token")
    body, signature = _unb64url(parts[1]), _unb64url(parts[2])
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise NotGenuine("payload is not JSON") from None
    if not isinstance(payload, dict) or sorted(payload) != sorted(FIELDS):
        raise NotGenuine(f"payload fields must be {', '.join(FIELDS)}")
    public_key = public_keys.get(payload["kid"]) if isinstance(payload["kid"], str) else None
    if public_key is None:
        raise NotGenuine(f"key {payload['kid']!r} is not a published notice key")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, body)
    except (InvalidSignature, ValueError):
        raise NotGenuine("the signature does not hold") from None
    team = payload["team"]
    if not (isinstance(team, list) and team and all(isinstance(m, str) for m in team)):
        raise NotGenuine("team must be a list of inspector ids")
    try:
        valid_until = date.fromisoformat(payload["valid_until"])
    except (TypeError, ValueError):
        raise NotGenuine("valid_until is not a date") from None
    return Dispatch(task_id=payload["task_id"], uscc=payload["uscc"], team=tuple(team),
                    valid_until=valid_until, kid=payload["kid"])
