"""The public register (公示) and the case list.

Each takes a `Connection` (the caller owns the transaction). Outputs follow contract.md
("JSON outputs"); extra keys are allowed there and used sparingly.
"""
from __future__ import annotations

import json
from typing import Any

from db.engine import Connection
from store import cases, views

# Keys never shown in the public register, at any depth: an entity's credit-risk class (R29).
PRIVATE_KEYS = frozenset({"risk_class", "stratum"})


def _public(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if k not in PRIVATE_KEYS}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def publication_register(connection: Connection, year: int | None = None) -> list[dict]:
    """The register (公示) rows of `year` (all years when None), by publication time then id.

    Each row is the contract's keys from the columns, plus the published payload's own keys
    (the columns win on a clash), except a field the payload withholds (R23): its column reads None. Never
    an entity's credit-risk class (R29): such keys are
    dropped at any depth, whatever a writer put in the payload. The internal timeliness columns
    (`due_at`, `on_time`) are for the metrics, not the public, and are left out.
    """
    register = []
    for row in views.publications(connection, year):
        payload = _public(json.loads(row["payload"]))
        entry = dict(payload) if isinstance(payload, dict) else {"payload": payload}
        entry.update(
            publication_id=row["publication_id"], kind=row["kind"], published_at=views.instant(row["published_at"]),
            year=row["year"], plan_code=row["plan_code"], task_id=row["task_id"], uscc=row["uscc"],
            category=row["category"], unit=row["unit"],
        )
        for name in entry.get("withheld", []):
            if name in entry:
                entry[name] = None
        register.append(entry)
    return register


def case_list(connection: Connection, task_id: str | None = None, state: str | None = None) -> list[dict]:
    """Follow-ups (case leads, listings, orders, corrections), oldest first."""
    if state is not None and state not in views.FOLLOW_UP_STATES:
        raise ValueError(f"unknown case state {state!r}; one of: {', '.join(views.FOLLOW_UP_STATES)}")
    return cases.cases(connection, task_id=task_id, state=state)
