"""The plans, their tasks and the plan templates (tables plans, plan_tasks, plan_templates), and the
directory facts a plan is checked against.

A plan file is loaded once (`load_plan`); after that it changes only by adjustments (R5), which the
plan workflow stores as it publishes them (`add_task`, `cancel_task`). The rules are domain/plan.py.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import Connection, Engine, Row, RowMapping, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from db import schema
from domain.plan import (
    ItemFacts,
    PlanDirectory,
    PlanFile,
    PlanInvalid,
    PlanTask,
    canonical_json,
    check_plan,
    check_task,
    plan_document,
    task_taken,
)
from domain.plan_file import parse_plan, parse_task
from store.common import insert_once, one_by


class PlanConflict(ValueError):
    """The plan named is not the stored one: another content under its code, or not loaded at all."""


# --- loading plans -------------------------------------------------------------------------------
def load_plan(engine: Engine, raw: bytes, source: str, *, today: date | None = None,
              allow_past: bool = False) -> tuple[PlanFile, bool]:
    """Validate and store the plan; (plan, False) when the same plan was stored before.

    The same code with other content is refused: a published plan changes only by adjustments (R5).
    `today` (the door's date) refuses a task whose window has ended, unless `allow_past` (domain.plan.check_plan).
    """
    plan = parse_plan(raw, source)
    document, digest = plan_document(plan)
    with engine.begin() as connection:
        stored = connection.execute(select(schema.plans.c.document_sha256).where(
            schema.plans.c.plan_code == plan.plan_code)).first()
        if stored is not None:  # checked when it was loaded; the same plan again is reported, not judged anew
            if stored.document_sha256 != digest:
                raise PlanConflict(f"{source}: plan {plan.plan_code} is already loaded with other content; "
                                   "change a published plan with `spotcheck plan adjust`")
            return plan, False
        check_plan(plan, _directory(connection), today=today, allow_past=allow_past)
        clash = connection.execute(select(schema.plan_tasks.c.task_id, schema.plan_tasks.c.plan_code).where(
            schema.plan_tasks.c.task_id.in_([t.task_id for t in plan.tasks]))).all()
        if clash:
            raise PlanInvalid([task_taken(r.task_id, r.plan_code) for r in clash], source)
        connection.execute(insert(schema.plans).values(
            plan_code=plan.plan_code, year=plan.year, owner_unit=plan.owner_unit, document=document,
            document_sha256=digest, loaded_at=datetime.now(timezone.utc)))
        connection.execute(insert(schema.plan_tasks), [
            dict(task_id=t.task_id, plan_code=plan.plan_code, document=canonical_json(t), origin="plan")
            for t in plan.tasks])
    return plan, True


def validate_added_task(engine: Engine, plan_code: str, raw: bytes, source: str, *,
                        today: date | None = None) -> PlanTask:
    """An added task, checked like a planned one (against `today` too); the plan workflow stores it when it
    publishes it."""
    task = parse_task(raw, source)
    with engine.connect() as connection:
        plan = connection.execute(select(schema.plans.c.year).where(schema.plans.c.plan_code == plan_code)).first()
        if plan is None:
            raise PlanConflict(f"plan {plan_code} is not loaded")
        check_task(task, plan.year, _directory(connection), today=today)
        used = connection.execute(select(schema.plan_tasks.c.plan_code).where(
            schema.plan_tasks.c.task_id == task.task_id)).first()
        if used is not None:
            raise PlanInvalid([task_taken(task.task_id, used.plan_code)], source)
    return task


def planned_task_count(engine: Engine, plan_code: str) -> int:
    """How many tasks the stored plan file has (the launcher's report of a plan loaded by hand)."""
    with engine.connect() as connection:
        return len(planned_tasks(connection, plan_code))


def plan_directory(engine: Engine) -> PlanDirectory:
    """The current item list and unit codes."""
    with engine.connect() as connection:
        return _directory(connection)


def _directory(connection: Connection) -> PlanDirectory:
    items = {
        r["item_code"]: ItemFacts(
            item_code=r["item_code"], category=r["category"], effective_from=r["effective_from"],
            effective_to=r["effective_to"], public_info_check=r["public_info_check"], ratio_cap=r["ratio_cap"],
            qualification=r["qualification"], methods=tuple(_listed(r["methods"])),
            checklist=tuple(_listed(r["checklist"])))
        for r in connection.execute(select(schema.items).where(schema.items.c.valid_to.is_(None))).mappings()
    }
    units = frozenset(r.unit_code for r in connection.execute(
        select(schema.units.c.unit_code).where(schema.units.c.valid_to.is_(None))))
    return PlanDirectory(items=items, units=units)


def _listed(value: str) -> list[str]:
    """A directory column that holds a list, stored ';'-joined."""
    return [v for v in value.split(";") if v]


# --- the plan workflow's reads and writes --------------------------------------------------------
# They take the caller's connection: the activity writes the register row in the same transaction.
def stored_plan(connection: Connection, plan_code: str) -> RowMapping | None:
    """The plans row: plan_code, year, owner_unit, document, document_sha256, loaded_at."""
    return one_by(connection, schema.plans, plan_code=plan_code)


def planned_tasks(connection: Connection, plan_code: str) -> list[Row]:
    """The tasks of the plan file as loaded (not those added by adjustments), by task id: task_id, document."""
    t = schema.plan_tasks
    return connection.execute(select(t.c.task_id, t.c.document)
                              .where(t.c.plan_code == plan_code, t.c.origin == "plan").order_by(t.c.task_id)).all()


def add_task(connection: Connection, plan_code: str, task_id: str, document: str) -> None:
    """Store a task added by an adjustment (a retry stores nothing more)."""
    insert_once(connection, schema.plan_tasks, dict(
        task_id=task_id, plan_code=plan_code, document=document, origin="adjustment"), keys=("task_id",))


def cancel_task(connection: Connection, task_id: str, at: datetime, reason: str) -> None:
    """Mark the task cancelled, unless it is already (a retry keeps the first instant and reason)."""
    t = schema.plan_tasks
    connection.execute(update(t).where(t.c.task_id == task_id, t.c.cancelled_at.is_(None))
                       .values(cancelled_at=at, cancel_reason=reason))


def task_document(connection: Connection, task_id: str) -> str:
    """The task's line as stored (canonical JSON)."""
    return one_by(connection, schema.plan_tasks, task_id=task_id).document


def published_at(connection: Connection, workflow_id: str, step: str) -> datetime:
    """When the register row of this workflow step was written (by its first attempt, on a retry)."""
    return one_by(connection, schema.publications, workflow_id=workflow_id, step=step).published_at


# --- templates (`spotcheck plan schedule --file`) ------------------------------------------------
def stored_template(engine: Engine, name: str) -> bytes | None:
    """The template file stored as NAME, byte for byte; None when there is none."""
    with engine.connect() as connection:
        document = connection.execute(select(schema.plan_templates.c.document).where(
            schema.plan_templates.c.name == name)).scalar_one_or_none()
    return None if document is None else document.encode("utf-8")


def put_template(engine: Engine, name: str, document: str, document_sha256: str) -> bool:
    """Store the template as NAME, replacing an older one of that name.

    One statement (insert, or update on the name), so a launch reads the old template or the new
    one, never half of one. The same content again changes nothing (not even `stored_at`); True
    when the row was inserted or replaced.
    """
    table = schema.plan_templates
    values = {"name": name, "document": document, "document_sha256": document_sha256,
              "stored_at": datetime.now(timezone.utc)}
    with engine.begin() as connection:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(table).values(**values)
        statement = upsert.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={k: upsert.excluded[k] for k in ("document", "document_sha256", "stored_at")},
            where=table.c.document_sha256 != upsert.excluded.document_sha256)
        return connection.execute(statement).rowcount == 1


def plan_of_task(connection: Connection, task_id: str) -> str | None:
    """The plan a task (planned or added) belongs to."""
    return connection.execute(select(schema.plan_tasks.c.plan_code)
                              .where(schema.plan_tasks.c.task_id == task_id)).scalar()
