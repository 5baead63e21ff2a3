"""Requests waiting for a second person's approval: a planner's redraw or plan adjustment, a supervisor's act."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update

from db import schema
from db.engine import Engine
from store.common import NotFound, canonical_json

_r = schema.approval_requests


def request(engine: Engine, *, kind: str, subject: str, owner_unit: str, command: dict, requested_by: str,
            now: datetime) -> int:
    with engine.begin() as connection:
        return connection.execute(insert(_r).values(
            kind=kind, subject=subject, owner_unit=owner_unit, command=canonical_json(command),
            requested_by=requested_by, requested_at=now, state="pending").returning(_r.c.request_id)).scalar_one()


def get(engine: Engine, request_id: int) -> RowMapping:
    with engine.connect() as connection:
        row = connection.execute(select(_r).where(_r.c.request_id == request_id)).mappings().first()
    if row is None:
        raise NotFound(f"approval request {request_id}")
    return row


def command(row: RowMapping) -> dict:
    return json.loads(row["command"])


def approved(engine: Engine, request_id: int, approved_by: str, now: datetime, answer: str) -> None:
    """The approval carried out (a retry of the same approval writes the same)."""
    with engine.begin() as connection:
        connection.execute(update(_r).where(_r.c.request_id == request_id).values(
            state="approved", approved_by=approved_by, approved_at=now, answer=answer))


def pending(engine: Engine) -> list[RowMapping]:
    with engine.connect() as connection:
        return connection.execute(select(_r).where(_r.c.state == "pending").order_by(_r.c.request_id)).mappings().all()
