"""The public register (公示): append-only rows of what was published, by whom and when."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

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


def result_publication(connection: Connection, task_id: str, uscc: str):
    """The target's published result row, or None: never published, or withdrawn since (R27)."""
    p = schema.publications
    rows = connection.execute(select(p).where(p.c.task_id == task_id, p.c.uscc == uscc,
                                              p.c.kind.in_(("result", "withdrawal")))
                              .order_by(p.c.published_at, p.c.publication_id)).mappings().all()
    if not rows or rows[-1]["kind"] == "withdrawal" or rows[0]["kind"] != "result":
        return None
    return rows[0]


def corrections(connection: Connection, task_id: str, uscc: str) -> list:
    """The target's published corrections (their payloads hold the corrected fields), oldest first."""
    p = schema.publications
    return connection.execute(select(p).where(p.c.task_id == task_id, p.c.uscc == uscc, p.c.kind == "correction")
                              .order_by(p.c.published_at, p.c.publication_id)).mappings().all()


def record_decision(connection: Connection, *, workflow_id: str, step: str, **values) -> bool:
    """A correction's or a stop-publication application's row, once per (workflow, step)."""
    return insert_once(connection, schema.register_decisions, dict(workflow_id=workflow_id, step=step, **values))


def update_decision(connection: Connection, *, workflow_id: str, step: str, **values) -> None:
    d = schema.register_decisions
    connection.execute(update(d).where(d.c.workflow_id == workflow_id, d.c.step == step).values(**values))


def decisions(connection: Connection, task_id: str | None = None) -> list[dict]:
    """Every correction and stop-publication application with its decision and dates, oldest first."""
    d = schema.register_decisions
    query = select(d).order_by(d.c.requested_at, d.c.workflow_id, d.c.step)
    if task_id is not None:
        query = query.where(d.c.task_id == task_id)
    return [dict(row) for row in connection.execute(query).mappings()]
