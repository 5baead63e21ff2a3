"""The public register (公示): append-only rows of what was published, by whom and when."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from db import schema
from domain import public
from store.common import canonical_json, insert_once


def publish(connection: Connection, *, workflow_id: str, step: str, kind: str, at: datetime, year: int,
            payload: dict, **columns) -> bool:
    """One register row per (workflow, step); the payload passes the never-public check first (R23, R29)."""
    return insert_once(connection, schema.publications, dict(
        workflow_id=workflow_id, step=step, kind=kind, published_at=at, year=year,
        payload=canonical_json(public.check(payload)), **columns,
    ))
