"""The history archive's hash chain (pure): how an entry's hashes are computed.

    history_sha256 = sha256(history)          history: the run's history as archived (JSON text)
    entry_hash     = sha256(prev_hash "\\n" workflow_id "\\n" run_id "\\n" history_sha256)
    prev_hash      = the entry_hash of the entry before it; GENESIS for the first entry

Storing and reading the chain is store/archive.py; what is archived and when, activities/archive.py.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

GENESIS = "0" * 64  # the first entry's prev_hash


@dataclass(frozen=True, slots=True)
class ClosedRun:
    workflow_id: str
    run_id: str
    workflow_type: str
    closed_at: datetime


def history_digest(history: str) -> str:
    return hashlib.sha256(history.encode("utf-8")).hexdigest()


def entry_digest(prev_hash: str, workflow_id: str, run_id: str, history_sha256: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{workflow_id}\n{run_id}\n{history_sha256}".encode("utf-8")).hexdigest()
