"""The directories as in force at an instant (entities, items, inspectors, units) and the plan's task lines."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, and_, literal, or_, select

from db import schema
from store.common import NotFound


def task_line(connection: Connection, task_id: str) -> tuple[dict, int]:
    """The task's plan line and its plan year."""
    row = connection.execute(
        select(schema.plan_tasks.c.document, schema.plans.c.year)
        .join(schema.plans, schema.plans.c.plan_code == schema.plan_tasks.c.plan_code)
        .where(schema.plan_tasks.c.task_id == task_id)
    ).first()
    if row is None:
        raise NotFound(f"task {task_id}")
    return json.loads(row.document), row.year


def unit_names(connection: Connection) -> dict[str, str]:
    """{unit code: name} of every unit the directory has known, each by its newest version: a unit's pages and
    notices name it as it is called now, or was last called."""
    u = schema.units
    return {row.unit_code: row.name
            for row in connection.execute(select(u.c.unit_code, u.c.name).order_by(u.c.valid_from))}


def in_force(table, at: datetime):
    """The directory version in force at instant `at`."""
    return and_(table.c.valid_from <= at, or_(table.c.valid_to.is_(None), table.c.valid_to > at))


def has_any_label(column, labels: list[str]):
    padded = literal(";") + column + literal(";")
    return or_(*(padded.like(f"%;{label};%") for label in labels))


def items_of(connection: Connection, codes: list[str], at: datetime) -> list:
    return connection.execute(
        select(schema.items).where(schema.items.c.item_code.in_(codes), in_force(schema.items, at))
        .order_by(schema.items.c.item_code)
    ).mappings().all()


def split(value: str) -> list[str]:
    """A directory column's `;`-joined list."""
    return [v for v in value.split(";") if v]


def people_with_role(connection: Connection, unit: str, role: str, at: datetime) -> list[str]:
    i = schema.inspectors
    return [r.inspector_id for r in connection.execute(
        select(i.c.inspector_id).where(i.c.unit_code == unit, in_force(i, at), i.c.status == "active",
                                       has_any_label(i.c.roles, [role])).order_by(i.c.inspector_id))]


def inspectors_of(connection: Connection, unit: str, at: datetime) -> list:
    """The unit's inspectors (the role, whatever their status) in force at `at`."""
    i = schema.inspectors
    return connection.execute(
        select(i).where(i.c.unit_code == unit, in_force(i, at), has_any_label(i.c.roles, ["inspector"]))
    ).mappings().all()


def review_required(connection: Connection, unit: str, at: datetime) -> bool:
    row = connection.execute(select(schema.units.c.review_required).where(
        schema.units.c.unit_code == unit, in_force(schema.units, at))).first()
    return True if row is None else bool(row.review_required)


def entity_name(connection: Connection, uscc: str) -> str:
    row = connection.execute(select(schema.entities.c.name).where(
        schema.entities.c.uscc == uscc, schema.entities.c.valid_to.is_(None))).first()
    return row.name if row else ""


def entity_region(connection: Connection, uscc: str, at: datetime) -> str | None:
    """The entity's region in force at `at`; None when it is not in the directory then."""
    return connection.execute(select(schema.entities.c.region).where(
        schema.entities.c.uscc == uscc, in_force(schema.entities, at))).scalar()


def everyone(connection: Connection, at: datetime) -> list[str]:
    """The ids of every person in the inspectors directory in force at `at` (any unit, role or status)."""
    i = schema.inspectors
    return list(connection.execute(select(i.c.inspector_id).where(in_force(i, at)).order_by(i.c.inspector_id))
                .scalars())


def people(connection: Connection, ids: list[str], at: datetime) -> list:
    """The directory's records of `ids` (any unit, role or status) in force at `at`."""
    i = schema.inspectors
    return connection.execute(select(i).where(i.c.inspector_id.in_(ids), in_force(i, at))).mappings().all()


def unknown_inspectors(connection: Connection, ids: list[str], at: datetime) -> list[str]:
    """Those of `ids` who are not inspectors in force at `at`, sorted."""
    i = schema.inspectors
    found = connection.execute(select(i.c.inspector_id).where(i.c.inspector_id.in_(ids), in_force(i, at)))
    return sorted(set(ids) - {r.inspector_id for r in found})
