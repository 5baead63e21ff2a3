"""The public site as files, for both of its doors: `spotcheck public build` writes them into a directory and
`spotcheck api` serves them under /public. One function makes them (`files`): the register's pages
(read.public_site) and the two checkers, verify.html as it is and notice-check.html with the published notice
keys written in.

The notice signing key is configured, never in the repository: SPOTCHECK_NOTICE_KEY_FILE names a PEM
(PKCS#8) Ed25519 private key (`openssl genpkey -algorithm ed25519`). After a rotation the retired keys'
public halves stay published, so notices already handed out still check: SPOTCHECK_NOTICE_PUBLIC_KEYS
names a directory of PEM public keys (`openssl pkey -pubout`). Key ids are derived from the keys.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from db.engine import Connection
from domain.notices import key_id, raw_public_key
from read.public_site import notice_check_page, site

KEY_FILE = "SPOTCHECK_NOTICE_KEY_FILE"
PUBLIC_KEYS = "SPOTCHECK_NOTICE_PUBLIC_KEYS"
CHECKERS = ("verify.html", "notice-check.html")


class NoticeKeyError(ValueError):
    """The configured notice key is missing or is not an Ed25519 key: the operator corrects the setting."""


def files(connection: Connection, keys: dict[str, bytes]) -> dict[str, str]:
    """{relative path: text}: every page of the register and the two checkers, `keys` the published notice keys."""
    out = site(connection)
    assets = resources.files("public") / "assets"
    out["verify.html"] = (assets / "verify.html").read_text(encoding="utf-8")
    out["notice-check.html"] = notice_check_page((assets / "notice-check.html").read_text(encoding="utf-8"), keys)
    return out


def signing_key() -> Ed25519PrivateKey:
    path = os.environ.get(KEY_FILE)
    if not path:
        raise NoticeKeyError(f"no notice signing key: set {KEY_FILE} to a PEM Ed25519 private key "
                             "(openssl genpkey -algorithm ed25519 -out notice-key.pem)")
    key = load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise NoticeKeyError(f"{KEY_FILE} {path}: not an Ed25519 private key")
    return key


def notice_public_keys() -> dict[str, bytes]:
    """{key id: raw public key}: the signing key's and every retired key's still published."""
    raws = []
    if os.environ.get(KEY_FILE):
        raws.append(raw_public_key(signing_key().public_key()))
    directory = os.environ.get(PUBLIC_KEYS)
    if directory:
        for path in sorted(Path(directory).glob("*.pem")):
            key = load_pem_public_key(path.read_bytes())
            if not isinstance(key, Ed25519PublicKey):
                raise NoticeKeyError(f"{PUBLIC_KEYS}: {path} is not an Ed25519 public key")
            raws.append(raw_public_key(key))
    return {key_id(raw): raw for raw in raws}
