"""Loading a plan file (and an added task) into the database, validated against the directories."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, insert, select

from store.directory import split
from db import schema
from domain.plan import (
    ItemFacts,
    PlanDirectory,
    PlanFile,
    PlanInvalid,
    PlanProblem,
    PlanTask,
    canonical_json,
    check_plan,
    check_task,
    parse_plan,
    parse_task,
)


class PlanConflict(ValueError):
    pass


def plan_directory(connection: Connection) -> PlanDirectory:
    """The current item list and unit codes."""
    items = {
        r["item_code"]: ItemFacts(
            item_code=r["item_code"], category=r["category"], effective_from=r["effective_from"],
            effective_to=r["effective_to"], public_info_check=r["public_info_check"], ratio_cap=r["ratio_cap"],
            qualification=r["qualification"], methods=tuple(split(r["methods"])),
            checklist=tuple(split(r["checklist"])))
        for r in connection.execute(select(schema.items).where(schema.items.c.valid_to.is_(None))).mappings()
    }
    units = frozenset(r.unit_code for r in connection.execute(
        select(schema.units.c.unit_code).where(schema.units.c.valid_to.is_(None))))
    return PlanDirectory(items=items, units=units)


def load_plan(engine: Engine, raw: bytes, source: str) -> tuple[PlanFile, bool]:
    """Validate and store the plan; (plan, False) when the same plan was stored before.

    The same code with other content is refused: a published plan changes only by adjustments (R5).
    """
    plan = parse_plan(raw, source)
    document = canonical_json(plan)
    digest = hashlib.sha256(document.encode()).hexdigest()
    with engine.begin() as connection:
        check_plan(plan, plan_directory(connection))
        stored = connection.execute(select(schema.plans.c.document_sha256).where(
            schema.plans.c.plan_code == plan.plan_code)).first()
        if stored is not None:
            if stored.document_sha256 != digest:
                raise PlanConflict(f"{source}: plan {plan.plan_code} is already loaded with other content; "
                                   "change a published plan with `spotcheck plan adjust`")
            return plan, False
        clash = connection.execute(select(schema.plan_tasks.c.task_id, schema.plan_tasks.c.plan_code).where(
            schema.plan_tasks.c.task_id.in_([t.task_id for t in plan.tasks]))).all()
        if clash:
            raise PlanInvalid([PlanProblem(f"task {r.task_id}", "task_id", None, f"already used by plan {r.plan_code}")
                               for r in clash], source)
        connection.execute(insert(schema.plans).values(
            plan_code=plan.plan_code, year=plan.year, owner_unit=plan.owner_unit, document=document,
            document_sha256=digest, loaded_at=datetime.now(timezone.utc)))
        connection.execute(insert(schema.plan_tasks), [
            dict(task_id=t.task_id, plan_code=plan.plan_code, document=canonical_json(t), origin="plan")
            for t in plan.tasks])
    return plan, True


def validate_added_task(engine: Engine, plan_code: str, raw: bytes, source: str) -> PlanTask:
    """An added task, checked like a planned one; the plan workflow stores it when it publishes it."""
    task = parse_task(raw, source)
    with engine.connect() as connection:
        plan = connection.execute(select(schema.plans.c.year).where(schema.plans.c.plan_code == plan_code)).first()
        if plan is None:
            raise PlanConflict(f"plan {plan_code} is not loaded")
        check_task(task, plan.year, plan_directory(connection))
        used = connection.execute(select(schema.plan_tasks.c.plan_code).where(
            schema.plan_tasks.c.task_id == task.task_id)).first()
        if used is not None:
            raise PlanInvalid([PlanProblem(f"task {task.task_id}", "task_id", None,
                                           f"already used by plan {used.plan_code}")], source)
    return task
