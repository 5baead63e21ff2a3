"""The annual plan (年度抽查工作计划): publish it, start each task at its window, take adjustments.

Adjustments are updates: each is published before it takes effect (R5) and stays in the plan's
history. Tasks are children with deterministic ids, started with REJECT_DUPLICATE and ABANDON,
and report back by signal, so a task outlives anything that happens to the plan run.
"""
from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.plans import PlanActivities
    from domain.messages.plan import (
        Adjustment,
        AdjustmentPublished,
        AdjustmentStep,
        PlanOutcome,
        PlanPublished,
        PlanRun,
        TaskSlot,
    )
    from domain.messages.task import TaskRun
    from domain.results import Refused
    from domain.stages import Stage
    from workflows.common import LIGHT, MOMENT, PLAN_YEAR, STAGE, task_workflow_id, wait_at_most, wait_until
    from workflows.task import InspectionTaskWorkflow


# A task starts when its timer fires, not when a reading of the clock says its start has passed (see
# _wait_for_start); plans started before this patch keep the comparison.
STARTS_BY_TIMER = "plan-starts-tasks-by-timer"


@workflow.defn
class AnnualPlanWorkflow:
    def __init__(self) -> None:
        self._plan: PlanPublished | None = None
        self._pending: list[TaskSlot] = []  # planned, not started yet, ordered by start
        self._started: set[str] = set()
        self._closed: set[str] = set()
        self._cancelled: dict[str, str] = {}
        self._adjustments = 0
        self._last_adjustment: Adjustment | None = None
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, run: PlanRun) -> PlanOutcome:
        self._plan = await workflow.execute_activity_method(PlanActivities.publish_plan, run, **LIGHT)
        workflow.upsert_search_attributes([STAGE.value_set(Stage.PUBLISHED.value),
                                           PLAN_YEAR.value_set(self._plan.year)])
        self._pending = sorted(self._plan.tasks, key=lambda s: (s.start_at, s.task_id))
        while self._pending or len(self._closed) < len(self._started):
            if self._pending:
                first = self._pending[0]
                if workflow.patched(STARTS_BY_TIMER):
                    if await self._wait_for_start(first):
                        continue  # an adjustment put an earlier task first
                    await self._start_task(self._pending.pop(0))
                    continue
                if first.start_at > workflow.now():
                    # Wake early for an adjustment that adds an earlier task.
                    await wait_until(lambda: bool(self._pending) and self._pending[0].start_at <= workflow.now(),
                                     first.start_at, f"start of task {first.task_id}")
                    continue
                await self._start_task(self._pending.pop(0))
            else:
                await workflow.wait_condition(
                    lambda: bool(self._pending) or len(self._closed) >= len(self._started)
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.upsert_search_attributes([STAGE.value_set(Stage.CLOSED.value)])
        return PlanOutcome(plan_code=run.plan_code, tasks_closed=len(self._closed - set(self._cancelled)),
                           tasks_cancelled=len(self._cancelled))

    async def _wait_for_start(self, first: TaskSlot) -> bool:
        """Wait for the first task's start (a timer, a millisecond once it has passed); True when an adjustment
        put another task first meanwhile. Never a comparison with the clock: a live task's clock can lag its
        replay's, and a branch on it would start a timer in one and the task in the other."""
        moved = lambda: not self._pending or self._pending[0].task_id != first.task_id  # noqa: E731
        return await wait_at_most(moved, max(first.start_at - workflow.now(), MOMENT), f"start of task {first.task_id}")

    async def _start_task(self, slot: TaskSlot) -> None:
        assert self._plan
        self._started.add(slot.task_id)
        if slot.task_id in self._cancelled:
            self._closed.add(slot.task_id)  # cancelled before its start: it never runs
            return
        try:
            await workflow.start_child_workflow(
                InspectionTaskWorkflow.run,
                TaskRun(task_id=slot.task_id, plan_code=self._plan.plan_code, plan_year=self._plan.year,
                        unit=slot.unit),
                id=task_workflow_id(slot.task_id),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"task {slot.task_id}",
            )
        except WorkflowAlreadyStartedError:
            pass  # already there from an earlier run of this plan

    @workflow.signal
    def task_closed(self, task_id: str) -> None:
        self._closed.add(task_id)

    @workflow.update
    async def adjust(self, adjustment: Adjustment) -> str:
        async with self._lock:
            self._adjustments += 1
            self._last_adjustment = adjustment
            assert self._plan
            published: AdjustmentPublished = await workflow.execute_activity_method(
                PlanActivities.publish_adjustment,
                AdjustmentStep(plan_code=self._plan.plan_code, adjustment=adjustment, seq=self._adjustments),
                **LIGHT,
            )
            if adjustment.kind == "add":
                assert published.slot is not None
                self._pending = sorted([*self._pending, published.slot], key=lambda s: (s.start_at, s.task_id))
                return f"task {adjustment.task_id} added and published; starts {published.slot.start_at.isoformat()}"
            self._cancelled[adjustment.task_id] = adjustment.reason
            if adjustment.task_id in self._started:
                await workflow.get_external_workflow_handle(task_workflow_id(adjustment.task_id)).signal(
                    InspectionTaskWorkflow.cancel, adjustment.reason
                )
            return f"task {adjustment.task_id} cancelled and published"

    @adjust.validator
    def _validate_adjustment(self, adjustment: Adjustment) -> None:
        if self._plan is None:
            raise Refused("the plan is still being published; try again in a moment")
        known = {s.task_id for s in self._plan.tasks} | {s.task_id for s in self._pending} | self._started
        if adjustment.kind == "add" and adjustment.task_id in known:
            raise Refused(f"task {adjustment.task_id} is already in plan {self._plan.plan_code}")
        if adjustment.kind == "cancel":
            if adjustment.task_id not in known:
                raise Refused(f"task {adjustment.task_id} is not in plan {self._plan.plan_code}")
            if adjustment.task_id in self._cancelled or adjustment.task_id in self._closed:
                raise Refused(f"task {adjustment.task_id} is already cancelled or closed")

    @workflow.query
    def last_adjustment(self) -> Adjustment | None:
        """The last accepted adjustment: the same command again is reported as already recorded."""
        return self._last_adjustment

    @workflow.query
    def tasks(self) -> dict[str, str]:
        """Each task's state as the plan sees it; none before the plan is published."""
        state = {s.task_id: "pending" for s in self._pending}
        state |= {t: "started" for t in self._started}
        state |= {t: "closed" for t in self._closed}
        state |= {t: "cancelled" for t in self._cancelled}
        return dict(sorted(state.items()))
