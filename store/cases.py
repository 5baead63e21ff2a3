"""Follow-ups as cases (case leads, listings, orders, corrections): the case list, one case, and the
penalty decision number a case lead led to.

The case shape (contract.md, `case list`) lives here because both sides return it: the read side's
case list and the command that links a decision.
"""
from __future__ import annotations

from sqlalchemy import Connection, select, update

from db import schema
from store.views import instant

f = schema.follow_ups


def _case(row) -> dict:
    return {
        "lead_id": row["lead_id"], "kind": row["kind"], "task_id": row["task_id"], "task_code": row["task_code"],
        "uscc": row["uscc"], "entity_name": row["entity_name"], "category": row["category"], "state": row["state"],
        "opened_at": instant(row["opened_at"]), "closed_at": instant(row["closed_at"]),
        "due_at": instant(row["due_at"]), "closed_by": row["closed_by"], "decision_no": row["decision_no"],
    }


def cases(connection: Connection, task_id: str | None = None, state: str | None = None) -> list[dict]:
    """The follow-ups of a task or all, in a state or any, oldest first."""
    query = select(f).order_by(f.c.opened_at, f.c.lead_id)
    if task_id is not None:
        query = query.where(f.c.task_id == task_id)
    if state is not None:
        query = query.where(f.c.state == state)
    return [_case(row) for row in connection.execute(query).mappings()]


def case(connection: Connection, lead_id: str) -> dict | None:
    row = connection.execute(select(f).where(f.c.lead_id == lead_id)).mappings().first()
    return None if row is None else _case(row)


def record_decision(connection: Connection, lead_id: str, decision_no: str) -> bool:
    """Record the number unless the lead carries one; True when this call recorded it.

    A conditional write: of two concurrent links, one records and the other re-reads and compares.
    """
    return connection.execute(
        update(f).where(f.c.lead_id == lead_id, f.c.decision_no.is_(None)).values(decision_no=decision_no)
    ).rowcount == 1
