"""What a person of the directory may see: a target's units and team, the units above a unit, the targets of
a team member or of units, their alerts; and the public draw records. The rules are domain/access.py's."""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, and_, func, literal, select, tuple_

from db import schema
from store.targets import current_teams

_t, _tm = schema.targets, schema.teams


@dataclass(frozen=True)
class TargetScope:
    """Who a target concerns: the task's unit (its reviewers'), every unit with a team on it, the team."""

    task_id: str
    uscc: str
    unit: str
    units: frozenset[str]
    team: frozenset[str]
    stage: str


def target_scope(connection: Connection, task_id: str, uscc: str) -> TargetScope | None:
    row = connection.execute(
        select(_t.c.stage, schema.plan_tasks.c.document)
        .join(schema.plan_tasks, schema.plan_tasks.c.task_id == _t.c.task_id)
        .where(_t.c.task_id == task_id, _t.c.uscc == uscc, _t.c.workflow_id != "")
    ).first()
    if row is None:
        return None
    teams, unstaffed = current_teams(connection, task_id, uscc)
    unit = json.loads(row.document)["unit"]
    return TargetScope(task_id=task_id, uscc=uscc, unit=unit,
                       units=frozenset({unit, *unstaffed, *(t.unit for t in teams)}),
                       team=frozenset(i for t in teams for i in t.inspectors), stage=row.stage)


def units_above(connection: Connection, unit: str) -> list[str]:
    """The unit's parent, its parent's parent, …, as the units directory stands now."""
    u = schema.units
    above: list[str] = []
    current = unit
    while True:
        parent = connection.execute(select(u.c.parent_code).where(
            u.c.unit_code == current, u.c.valid_to.is_(None))).scalar()
        if not parent or parent in above or parent == unit:  # a cycle in the directory ends the walk
            return above
        above.append(parent)
        current = parent


def units_below(connection: Connection, unit: str) -> set[str]:
    """The unit and every unit under it, as the units directory stands now."""
    u = schema.units
    below, frontier = {unit}, [unit]
    while frontier:
        children = set(connection.execute(select(u.c.unit_code).where(
            u.c.parent_code.in_(frontier), u.c.valid_to.is_(None))).scalars()) - below
        below |= children
        frontier = list(children)
    return below


def targets(connection: Connection, *, member: str | None = None, units: Iterable[str] | None = None,
            stage: str | None = None, uscc: str | None = None) -> list[dict]:
    """Open or closed targets whose current team has `member`, or that have a team of one of `units`."""
    latest = select(func.max(_tm.c.team_id)).group_by(_tm.c.task_id, _tm.c.uscc, _tm.c.unit_code)
    where = [_tm.c.team_id.in_(latest), _t.c.workflow_id != ""]
    if member is not None:
        where.append((literal(";") + _tm.c.inspectors + literal(";")).like(f"%;{member};%"))
    if units is not None:
        where.append(_tm.c.unit_code.in_(list(units)))
    if stage is not None:
        where.append(_t.c.stage == stage)
    if uscc is not None:
        where.append(_t.c.uscc == uscc)
    e = schema.entities
    rows = connection.execute(
        select(_t.c.task_id, _t.c.uscc, e.c.name, _t.c.stage, _t.c.publication_due, _t.c.overdue, _t.c.kind,
               _t.c.check_date, _t.c.method, _t.c.category, _t.c.published_at)
        .distinct()
        .join(_tm, and_(_tm.c.task_id == _t.c.task_id, _tm.c.uscc == _t.c.uscc))
        .outerjoin(e, and_(e.c.uscc == _t.c.uscc, e.c.valid_to.is_(None)))
        .where(*where).order_by(_t.c.task_id, _t.c.uscc)
    ).all()
    return [dict(task_id=r.task_id, uscc=r.uscc, entity_name=r.name or "", stage=r.stage, due=r.publication_due,
                 overdue=bool(r.overdue), kind=r.kind, check_date=r.check_date, method=r.method,
                 category=r.category, published_at=r.published_at) for r in rows]


def alerts(connection: Connection, keys: Iterable[tuple[str, str]], limit: int = 500) -> list[dict]:
    """The latest alerts (reminders, escalations, notices) of these (task_id, uscc) targets."""
    keys = list(keys)
    if not keys:
        return []
    a = schema.alerts
    rows = connection.execute(
        select(a.c.kind, a.c.task_id, a.c.uscc, a.c.step, a.c.at, a.c.details)
        .where(tuple_(a.c.task_id, a.c.uscc).in_(keys)).order_by(a.c.at.desc(), a.c.alert_id.desc()).limit(limit)
    ).all()
    return [dict(kind=r.kind, task_id=r.task_id, uscc=r.uscc, step=r.step, at=r.at, details=r.details) for r in rows]


def public_draws(connection: Connection, task_id: str) -> list[dict]:
    """A task's public draw records, superseded ones included, in draw order."""
    d = schema.draws
    rows = connection.execute(
        select(d.c.draw_seq, d.c.state, d.c.record).where(d.c.task_id == task_id, d.c.record.is_not(None))
        .order_by(d.c.draw_seq)
    ).all()
    return [dict(draw_seq=r.draw_seq, state=r.state, record=json.loads(r.record)) for r in rows]

