"""The annual plan workflow's messages (AnnualPlanWorkflow, plan/{plan_code})."""
from __future__ import annotations

from datetime import datetime

from pydantic import Field

from domain.messages.base import ID, HumanStep, Record, bounded


class PlanRun(Record):
    plan_code: str


class TaskSlot(Record):
    task_id: str
    unit: str
    start_at: datetime


class PlanPublished(Record):
    plan_code: str
    year: int
    published_at: datetime
    on_time: bool
    tasks: list[TaskSlot]


class Adjustment(HumanStep):
    """A published change to the plan (R5): add a task (already stored by the command line) or cancel one."""

    kind: str = Field(pattern="^(add|cancel)$")
    task_id: str
    reason: str = Field(min_length=1, pattern=r"\S")  # not blank
    approver: str = Field(pattern=ID)  # the supervisor who approved it, by their own act (the actor)
    task_document: str | None = None  # the added task line, validated by the command line, canonical JSON
    requested_by: str | None = Field(None, pattern=ID)  # the planner who asked for it; None in histories from before

    _bounds = bounded("task_id", "reason")


class AdjustmentStep(Record):
    plan_code: str
    adjustment: Adjustment
    seq: int


class AdjustmentPublished(Record):
    slot: TaskSlot | None  # the added task's start; None for a cancellation


class PlanOutcome(Record):
    plan_code: str
    tasks_closed: int
    tasks_cancelled: int
