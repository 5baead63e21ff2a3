"""The outbox and follow-ups: one outbox row per external effect, written with its domain row.

Each row is keyed by (workflow id, step); delivery is at least once, with the idempotency key
`workflow_id/step` that the receiving system de-duplicates on.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, select, update

from db import schema
from store.common import NotFound, canonical_json, insert_once, one_by

o, f = schema.outbox, schema.follow_ups


def enqueue(connection: Connection, workflow_id: str, step: str, kind: str, payload: dict, at: datetime) -> None:
    insert_once(connection, o, dict(workflow_id=workflow_id, step=step, kind=kind, payload=canonical_json(payload),
                                    created_at=at, attempts=0))


def take_for_delivery(connection: Connection, workflow_id: str, step: str) -> tuple[str, dict] | None:
    """(kind, payload) of the row, its attempt counted; None when it was delivered already."""
    row = one_by(connection, o, workflow_id=workflow_id, step=step)
    if row is None:
        raise NotFound(f"outbox row {workflow_id}/{step}")
    if row.delivered_at is not None:
        return None
    connection.execute(update(o).where(o.c.outbox_id == row.outbox_id).values(attempts=o.c.attempts + 1))
    return row.kind, json.loads(row.payload)


def delivered(connection: Connection, workflow_id: str, step: str, at: datetime) -> None:
    connection.execute(update(o).where(o.c.workflow_id == workflow_id, o.c.step == step).values(delivered_at=at))


def open_follow_up(connection: Connection, *, lead_id: str, kind: str, task_id: str, task_code: str, uscc: str,
                   entity_name: str, category: str, at: datetime, due_at: datetime | None, workflow_id: str,
                   step: str) -> datetime | None:
    """The follow-up, stored once; its due date as stored by the first attempt."""
    insert_once(connection, f, dict(
        lead_id=lead_id, kind=kind, task_id=task_id, task_code=task_code, uscc=uscc, entity_name=entity_name,
        category=category, state="open", opened_at=at, due_at=due_at, workflow_id=workflow_id, step=step))
    return one_by(connection, f, lead_id=lead_id).due_at


def follow_up_of(connection: Connection, workflow_id: str, step: str):
    """The follow-up an outbox row (workflow id, step) handed off; None for other deliveries."""
    return connection.execute(select(f).where(f.c.workflow_id == workflow_id, f.c.step == step)).mappings().first()


def close_follow_up(connection: Connection, lead_id: str, at: datetime, closed_by: str) -> None:
    connection.execute(update(f).where(f.c.lead_id == lead_id, f.c.state == "open")
                       .values(state="closed", closed_at=at, closed_by=closed_by))
