"""Targets: the projection row of each drawn or targeted entity, its teams and its alerts."""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Connection, delete, exists, func, select, update

from db import schema
from domain.messages.target import Team
from domain.messages.task import TargetCounts
from domain.stages import Stage
from store.common import insert_once, one_by
from store.draws import insert_rows

FINAL_STAGES = (Stage.CLOSED.value, Stage.CANCELLED.value)
t = schema.targets


def add_drawn(connection: Connection, task_id: str, selected: list[str], at: datetime,
              refused: Collection[str] = ()) -> int:
    """Rows for the drawn entities and for targeted ones that were not drawn (but those `refused`: the frequency
    cap excluded them, store.draws.refused_targeted); how many of the latter."""
    chosen = set(selected) | set(refused)
    extra = [r.uscc for r in connection.execute(
        select(schema.targeted.c.uscc).where(schema.targeted.c.task_id == task_id).order_by(schema.targeted.c.uscc)
    ) if r.uscc not in chosen]
    rows = [dict(task_id=task_id, uscc=u, workflow_id="", kind=kind, stage="drawn", overdue=False, updated_at=at)
            for kind, usccs in (("random", selected), ("targeted", extra)) for u in usccs]
    insert_rows(connection, t, rows)
    return len(extra)


def remove_unstarted(connection: Connection, task_id: str) -> None:
    """A superseded draw's targets that no target workflow has taken up yet."""
    connection.execute(delete(t).where(t.c.task_id == task_id, t.c.workflow_id == ""))


def unopened(connection: Connection, task_id: str, usccs: Collection[str]) -> list[str]:
    """Those of these targets no workflow has opened yet (its first activity names the workflow on the row)."""
    return list(connection.execute(select(t.c.uscc).where(
        t.c.task_id == task_id, t.c.uscc.in_(list(usccs)), t.c.workflow_id == "")).scalars())


def target(connection: Connection, task_id: str, uscc: str):
    return one_by(connection, t, task_id=task_id, uscc=uscc)


def project(connection: Connection, task_id: str, uscc: str, at: datetime, **values) -> None:
    """A step of the target's workflow onto its row."""
    connection.execute(update(t).where(t.c.task_id == task_id, t.c.uscc == uscc).values(updated_at=at, **values))


def page(connection: Connection, task_id: str, after: str | None, limit: int, skip: int = 0) -> list[str]:
    """The task's targets after `after` (and after the `skip` first of those), in USCC order."""
    query = select(t.c.uscc).where(t.c.task_id == task_id).order_by(t.c.uscc).limit(limit)
    if after is not None:
        query = query.where(t.c.uscc > after)
    if skip:
        query = query.offset(skip)
    return [r.uscc for r in connection.execute(query)]


def dispatched_rows(connection: Connection, task_id: str, unit: str) -> int:
    """How many of the unit's dispatch rows of the task are stored (a paged dispatch resumes after them)."""
    m = schema.teams
    return connection.execute(select(func.count()).select_from(m).where(
        m.c.task_id == task_id, m.c.unit_code == unit, m.c.step == "dispatch")).scalar_one()


def task_targets(connection: Connection, task_id: str) -> list[str]:
    return [r.uscc for r in connection.execute(select(t.c.uscc).where(t.c.task_id == task_id).order_by(t.c.uscc))]


def randomly_selected(connection: Connection, task_id: str) -> list[str]:
    """The task's drawn targets (not the targeted ones), in USCC order."""
    return [r.uscc for r in connection.execute(
        select(t.c.uscc).where(t.c.task_id == task_id, t.c.kind == "random").order_by(t.c.uscc))]


def _open(task_id: str) -> list:
    """The condition on `targets` of the task's targets not in a final stage."""
    return [t.c.task_id == task_id, t.c.stage.not_in(FINAL_STAGES)]


def cancel_open(connection: Connection, task_id: str, after: str | None, at: datetime) -> None:
    """The task's open targets (after `after`, in USCC order) cancelled."""
    condition = _open(task_id)
    if after is not None:
        condition.append(t.c.uscc > after)
    connection.execute(update(t).where(*condition).values(stage=Stage.CANCELLED.value, updated_at=at))


def none_open(connection: Connection, task_id: str) -> bool:
    """Whether no target of the task is open, asked in turn: the task's row stays locked until the commit."""
    connection.execute(select(schema.plan_tasks.c.task_id)
                       .where(schema.plan_tasks.c.task_id == task_id).with_for_update())
    # Whether one is open, not how many: the lock is held while this runs, for each of a burst.
    return not connection.execute(select(exists().where(*_open(task_id)))).scalar()


def counts(connection: Connection, task_id: str) -> TargetCounts:
    """How many of the task's targets are in a final stage, of how many."""
    finished, total = connection.execute(
        select(func.count().filter(t.c.stage.in_(FINAL_STAGES)), func.count()).where(t.c.task_id == task_id)
    ).one()
    return TargetCounts(finished=finished, total=total)


def current_teams(connection: Connection, task_id: str, uscc: str) -> tuple[list[Team], list[str]]:
    """Each unit's latest team for the target (a manual assignment supersedes the draw); units left unstaffed."""
    teams = schema.teams
    latest = (select(teams.c.unit_code, func.max(teams.c.team_id).label("team_id"))
              .where(teams.c.task_id == task_id, teams.c.uscc == uscc).group_by(teams.c.unit_code).subquery())
    rows = connection.execute(
        select(teams.c.unit_code, teams.c.inspectors).join(latest, latest.c.team_id == teams.c.team_id)
        .order_by(teams.c.unit_code)
    ).all()
    return ([Team(unit=r.unit_code, inspectors=r.inspectors.split(";")) for r in rows if r.inspectors],
            [r.unit_code for r in rows if not r.inspectors])


def team_loads(connection: Connection, task_id: str, unit: str, *, besides: str) -> dict[str, int]:
    """How many of the task's targets other than `besides` each inspector is on the unit's current team of."""
    teams = schema.teams
    latest = (select(func.max(teams.c.team_id).label("team_id"))
              .where(teams.c.task_id == task_id, teams.c.unit_code == unit, teams.c.uscc != besides)
              .group_by(teams.c.uscc).subquery())
    loads: dict[str, int] = {}
    for row in connection.execute(select(teams.c.inspectors).join(latest, latest.c.team_id == teams.c.team_id)):
        for inspector in filter(None, row.inspectors.split(";")):
            loads[inspector] = loads.get(inspector, 0) + 1
    return loads


def assign_team(connection: Connection, *, task_id: str, uscc: str, unit: str, inspectors: list[str], reason: str,
                by: str, at: datetime, workflow_id: str, step: str) -> None:
    """A supervisor's recorded manual assignment (once per workflow step and unit)."""
    insert_once(connection, schema.teams, dict(
        task_id=task_id, uscc=uscc, unit_code=unit, inspectors=";".join(inspectors), source="manual", reason=reason,
        assigned_by=by, at=at, workflow_id=workflow_id, step=step,
    ), keys=("workflow_id", "step", "uscc", "unit_code"))


def team_recorded(connection: Connection, *, workflow_id: str, step: str, uscc: str, unit: str) -> bool:
    """Whether the manual assignment of this workflow step is recorded already (a retried activity)."""
    teams = schema.teams
    return connection.execute(select(teams.c.team_id).where(
        teams.c.workflow_id == workflow_id, teams.c.step == step, teams.c.uscc == uscc,
        teams.c.unit_code == unit).limit(1)).first() is not None


def staffed(connection: Connection, task_id: str, uscc: str, at: datetime) -> None:
    """An unstaffed target's row once its last unit has a team: dispatched, as its workflow's stage is. A later
    substitution changes no stage."""
    connection.execute(update(t).where(t.c.task_id == task_id, t.c.uscc == uscc, t.c.stage == Stage.UNSTAFFED.value)
                       .values(stage=Stage.DISPATCHED.value, updated_at=at))


def record_alert(connection: Connection, *, workflow_id: str, step: str, kind: str, task_id: str, uscc: str | None,
                 at: datetime, details: str) -> None:
    insert_once(connection, schema.alerts, dict(
        workflow_id=workflow_id, step=step, kind=kind, task_id=task_id, uscc=uscc, at=at, details=details))


# --- what the demo watches ---------------------------------------------------------------------
def opened_targets(connection: Connection) -> list[tuple[str, str]]:
    """(task_id, uscc) of every target whose workflow has started, in order."""
    t = schema.targets
    return [tuple(r) for r in connection.execute(
        select(t.c.task_id, t.c.uscc).where(t.c.workflow_id != "").order_by(t.c.task_id, t.c.uscc))]


def first_targets(connection: Connection, plan_code: str, n: int) -> list[tuple[str, str]]:
    """(task_id, uscc) of the first `n` targets, in USCC order, of the plan's first task (by id) once it has drawn;
    none before: its draw adds them all at once, so the answer never changes once given."""
    p = schema.plan_tasks
    first = select(func.min(p.c.task_id)).where(p.c.plan_code == plan_code).scalar_subquery()
    return [tuple(r) for r in connection.execute(
        select(t.c.task_id, t.c.uscc).where(t.c.task_id == first).order_by(t.c.uscc).limit(n))]


def alerted(connection: Connection, task_id: str, uscc: str, step: str) -> bool:
    """Whether the target has an alert of this step (its notice to the team, an escalation)."""
    a = schema.alerts
    return connection.execute(select(func.count()).where(
        a.c.task_id == task_id, a.c.uscc == uscc, a.c.step == step)).scalar() > 0


def stage_and_alert_counts(connection: Connection) -> tuple[dict[str, int], dict[str, int]]:
    """Targets per stage and alerts per kind, over the whole database."""
    t, a = schema.targets, schema.alerts
    stages = dict(connection.execute(select(t.c.stage, func.count()).group_by(t.c.stage)).all())
    alerts = dict(connection.execute(select(a.c.kind, func.count()).group_by(a.c.kind)).all())
    return stages, alerts
