"""Where to connect, from the environment: an explicit variable wins, then the embedded server's
`server.json` in the data dir, then the defaults (contract.md). Read in this one place only."""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TemporalAccess:
    """How a client or worker proves itself to a secured cluster: TLS (a CA to trust, and for mTLS a client
    certificate and key; file paths) and an API key. None of it set: plain gRPC, as the embedded server."""

    tls_ca: Path | None = None  # SPOTCHECK_TEMPORAL_TLS_CA
    tls_cert: Path | None = None  # SPOTCHECK_TEMPORAL_TLS_CERT
    tls_key: Path | None = None  # SPOTCHECK_TEMPORAL_TLS_KEY
    tls_server_name: str | None = None  # SPOTCHECK_TEMPORAL_TLS_SERVER_NAME: the name in the server's certificate
    api_key: str | None = field(default=None, repr=False)  # SPOTCHECK_TEMPORAL_API_KEY

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("SPOTCHECK_TEMPORAL_TLS_CERT and SPOTCHECK_TEMPORAL_TLS_KEY go together (mTLS)")

    @property
    def tls(self) -> bool:
        """TLS at all: any TLS setting, or an API key, which is never sent in clear."""
        return bool(self.tls_ca or self.tls_cert or self.tls_server_name or self.api_key)

    @classmethod
    def from_env(cls) -> TemporalAccess:
        def path(name: str) -> Path | None:
            value = os.environ.get(name)
            return Path(value) if value else None
        return cls(tls_ca=path("SPOTCHECK_TEMPORAL_TLS_CA"), tls_cert=path("SPOTCHECK_TEMPORAL_TLS_CERT"),
                   tls_key=path("SPOTCHECK_TEMPORAL_TLS_KEY"),
                   tls_server_name=os.environ.get("SPOTCHECK_TEMPORAL_TLS_SERVER_NAME") or None,
                   api_key=os.environ.get("SPOTCHECK_TEMPORAL_API_KEY") or None)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    temporal_address: str
    namespace: str
    database_url: str
    workday_seconds: float | None  # demo only: a working day lasts this many real seconds
    handoff_url: str | None
    ui_address: str | None
    metrics_address: str | None = None  # SPOTCHECK_METRICS_ADDRESS host:port: the workers' Prometheus endpoint
    # SPOTCHECK_STOP_PUBLICATION_MIN_DAYS as set (read by `stop_publication_min_days`, so that a bad value
    # refuses the applications, not every command)
    stop_publication_period: str | None = None
    # SPOTCHECK_CODEC_KEYS "id1:base64key,id2:base64key" (runtime/codec.py); never in the repr or logs
    codec_keys: str | None = field(default=None, repr=False)
    codec_token: str | None = field(default=None, repr=False)  # SPOTCHECK_CODEC_TOKEN: the codec server's bearer
    temporal: TemporalAccess = field(default_factory=lambda: TemporalAccess())

    @property
    def outbox_file(self) -> Path:
        return self.data_dir / "outbox.jsonl"

    @property
    def stop_publication_min_days(self) -> int | None:
        """The province's minimum publication period of a result before its entity may have it withdrawn
        (R27, calendar days). No default: None while unset, and every application is then refused."""
        text = self.stop_publication_period
        if not text:
            return None
        if not text.isdigit():
            raise ValueError(f"{STOP_PUBLICATION_MIN_DAYS}={text!r}: not a whole number of days")
        return int(text)


# The data dir holds draw secrets (unrevealed nonces, population salts in spotcheck.db), every workflow's history
# (temporal.db) and the outbox: readable by its owner alone. Files are created 0600 in a 0700 directory.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
PRIVATE_UMASK = 0o077  # for a child process (the Temporal server) that creates its own files there


STOP_PUBLICATION_MIN_DAYS = "SPOTCHECK_STOP_PUBLICATION_MIN_DAYS"


def private_dir(path: Path) -> Path:
    """`path` created if need be, and made readable by its owner alone (also when it existed before)."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR)
    return path


def open_private(path: Path, mode: str = "ab"):
    """`path` opened for appending or writing, created 0600 if it is new."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, PRIVATE_FILE), mode)


def token_secret(data_dir: Path) -> bytes:
    """The key that signs local access tokens (the API's and the CLI's logins): SPOTCHECK_API_SECRET, else one
    made once and kept 0600 in the data dir, so tokens outlive a restart."""
    if given := os.environ.get("SPOTCHECK_API_SECRET"):
        return given.encode()
    path = data_dir / "api-secret"
    if not path.exists():
        private_dir(data_dir)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE), "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def server_file(data_dir: Path) -> Path:
    return data_dir / "server.json"


def read_server_file(data_dir: Path) -> dict | None:
    try:
        return json.loads(server_file(data_dir).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def load(data_dir: str | os.PathLike | None = None) -> Settings:
    data = Path(data_dir or os.environ.get("SPOTCHECK_DATA_DIR", ".data")).resolve()
    server = read_server_file(data) or {}
    scale = os.environ.get("SPOTCHECK_DEMO_WORKDAY_SECONDS")
    return Settings(
        data_dir=data,
        temporal_address=os.environ.get("TEMPORAL_ADDRESS") or server.get("address") or "localhost:7233",
        namespace=os.environ.get("TEMPORAL_NAMESPACE") or server.get("namespace") or "default",
        database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{data / 'spotcheck.db'}",
        workday_seconds=float(scale) if scale else None,
        handoff_url=os.environ.get("SPOTCHECK_HANDOFF_URL"),
        ui_address=server.get("ui") if server else None,
        metrics_address=os.environ.get("SPOTCHECK_METRICS_ADDRESS") or None,
        codec_keys=os.environ.get("SPOTCHECK_CODEC_KEYS") or None,
        codec_token=os.environ.get("SPOTCHECK_CODEC_TOKEN") or None,
        temporal=TemporalAccess.from_env(),
        stop_publication_period=os.environ.get(STOP_PUBLICATION_MIN_DAYS) or None,
    )
