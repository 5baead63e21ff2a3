"""Plan activities: publish the plan and its adjustments in the public register (R3, R5)."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timezone

from temporalio import activity

from activities.common import no_retry_cures, not_found, workflow_id
from db.engine import Engine
from domain import public
from domain.messages.plan import AdjustmentPublished, AdjustmentStep, PlanPublished, PlanRun, TaskSlot
from domain.workdays import SHANGHAI
from store import plans
from store.register import publish

MARCH_31 = (3, 31)  # R3: provincial plans are published by the end of March


def task_slot(task_id: str, document: str) -> TaskSlot:
    line = json.loads(document)
    starts = date.fromisoformat(line["starts"])
    return TaskSlot(task_id=task_id, unit=line["unit"], start_at=datetime.combine(starts, time(0), SHANGHAI))


def special_campaigns(tasks) -> dict[str, dict]:
    """The tasks flagged as special campaigns (R7), by task id, from their stored lines."""
    lines = {t.task_id: json.loads(t.document) for t in tasks}
    return {task_id: line["special_campaign"] for task_id, line in lines.items() if "special_campaign" in line}


class PlanActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    @no_retry_cures
    def publish_plan(self, run: PlanRun) -> PlanPublished:
        with self._engine.begin() as connection:
            plan = plans.stored_plan(connection, run.plan_code)
            if plan is None:
                raise not_found(f"plan {run.plan_code}")
            tasks = plans.planned_tasks(connection, run.plan_code)
            now = datetime.now(timezone.utc)
            due = datetime.combine(date(plan.year, *MARCH_31), time(23, 59, 59), SHANGHAI)
            publish(connection, workflow_id=workflow_id(), step="publish-plan", kind="plan", at=now,
                    year=plan.year, plan_code=run.plan_code, unit=plan.owner_unit, due_at=due, on_time=now <= due,
                    payload=public.plan(plan_code=run.plan_code, year=plan.year, owner_unit=plan.owner_unit,
                                        tasks=[t.task_id for t in tasks], document_sha256=plan.document_sha256,
                                        filed_with=json.loads(plan.document).get("filed_with"),
                                        special_campaigns=special_campaigns(tasks)))
            published_at = plans.published_at(connection, workflow_id(), "publish-plan")
        on_time = published_at.astimezone(SHANGHAI).date() <= date(plan.year, *MARCH_31)
        return PlanPublished(plan_code=run.plan_code, year=plan.year, published_at=published_at, on_time=on_time,
                             tasks=[task_slot(t.task_id, t.document) for t in tasks])

    @activity.defn
    @no_retry_cures
    def publish_adjustment(self, step: AdjustmentStep) -> AdjustmentPublished:
        adjustment = step.adjustment
        with self._engine.begin() as connection:
            plan = plans.stored_plan(connection, step.plan_code)
            if plan is None:
                raise not_found(f"plan {step.plan_code}")
            now = datetime.now(timezone.utc)
            if adjustment.kind == "add":
                if adjustment.task_document is None:
                    raise not_found(f"the document of added task {adjustment.task_id}")
                plans.add_task(connection, step.plan_code, adjustment.task_id, adjustment.task_document)
            else:
                plans.cancel_task(connection, adjustment.task_id, now, adjustment.reason)
            publish(connection, workflow_id=workflow_id(), step=f"adjustment-{step.seq}", kind="adjustment", at=now,
                    year=plan.year, plan_code=step.plan_code, task_id=adjustment.task_id,
                    payload={"plan_code": step.plan_code, "adjustment": adjustment.kind,
                             "task_id": adjustment.task_id, "reason": adjustment.reason,
                             "approver": adjustment.approver})
            document = plans.task_document(connection, adjustment.task_id)
        slot = task_slot(adjustment.task_id, document) if adjustment.kind == "add" else None
        return AdjustmentPublished(slot=slot)
