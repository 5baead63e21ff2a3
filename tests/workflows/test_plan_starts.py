"""The plan starts each task when a timer for its start fires (patch `plan-starts-tasks-by-timer`).

Before, the plan compared each task's start with `workflow.now()` and started a task whose start had passed
at once, and waited on a condition that read the clock: a live task whose clock lagged its replay's (seen by
the chaos test on a target: tests/replay/lagged/) would start a timer where the replay starts the task. Now
every start is a timer (a millisecond when the start has passed) and the wait wakes early only when an
adjustment puts another task first. On the time-skipping server, with the plan's activities and its tasks
replaced by stand-ins of the same names: a task whose start has passed and one far ahead; a task added with
an earlier start than the one waited for starts first, the other at its own time; the history replays, and
without the patch does not.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from domain.messages.plan import (
    Adjustment,
    AdjustmentPublished,
    AdjustmentStep,
    PlanPublished,
    PlanRun,
    TaskSlot,
)
from domain.messages.task import TaskRun
from tests.workflows.support import wait_for
from workflows.common import plan_workflow_id, task_workflow_id
from workflows.plan import STARTS_BY_TIMER, AnnualPlanWorkflow

UNIT = "360200-SCJ"


@workflow.defn(name="InspectionTaskWorkflow", sandboxed=False)
class TaskStandIn:
    """The task workflow's name and input; it reports its start time and closes at once (its parent is told
    by the plan's `task_closed` signal, as the real task does)."""

    @workflow.run
    async def run(self, run: TaskRun) -> str:
        parent = workflow.info().parent
        assert parent is not None
        await workflow.get_external_workflow_handle(parent.workflow_id).signal("task_closed", run.task_id)
        return workflow.now().isoformat()


class PlanStandIns:
    def __init__(self, slots: list[TaskSlot], added: TaskSlot) -> None:
        self._slots, self._added = slots, added

    @activity.defn(name="publish_plan")
    def publish_plan(self, run: PlanRun) -> PlanPublished:
        return PlanPublished(plan_code=run.plan_code, year=2026, published_at=self._slots[0].start_at,
                             on_time=True, tasks=self._slots)

    @activity.defn(name="publish_adjustment")
    def publish_adjustment(self, step: AdjustmentStep) -> AdjustmentPublished:
        return AdjustmentPublished(slot=self._added)


def child_starts(history: WorkflowHistory) -> list[tuple[int, str]]:
    """(event id, task id) of each task the plan started, in order."""
    return [(e.event_id, e.start_child_workflow_execution_initiated_event_attributes.workflow_id)
            for e in history.events if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED]


def timers(history: WorkflowHistory) -> list[int]:
    return [e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]


async def test_every_task_starts_by_a_timer_and_an_earlier_task_added_starts_first(ts_env, monkeypatch):
    env = ts_env
    code = f"PS-{uuid.uuid4().hex[:6].upper()}"
    now = await env.get_current_time()
    passed = TaskSlot(task_id=f"{code}-T1", unit=UNIT, start_at=now - timedelta(days=2))
    far = TaskSlot(task_id=f"{code}-T2", unit=UNIT, start_at=now + timedelta(days=60))
    added = TaskSlot(task_id=f"{code}-ADD", unit=UNIT, start_at=now + timedelta(days=10))
    queue = f"plan-starts-{uuid.uuid4().hex[:6]}"
    stand_ins = PlanStandIns([passed, far], added)
    async with Worker(env.client, task_queue=queue, workflows=[AnnualPlanWorkflow, TaskStandIn],
                      activities=[stand_ins.publish_plan, stand_ins.publish_adjustment],
                      activity_executor=ThreadPoolExecutor(2)):
        handle = await env.client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code),
                                                 id=plan_workflow_id(code), task_queue=queue)
        # The passed task starts (after its millisecond's timer); the plan then waits 60 days for the next.
        with env.auto_time_skipping_disabled():
            async def passed_closed() -> bool:
                return (await handle.query(AnnualPlanWorkflow.tasks)).get(passed.task_id) == "closed"
            await wait_for(passed_closed, timeout=10, env=env, skip=timedelta(milliseconds=100),
                           what=f"task {passed.task_id} closed")
            assert await handle.query(AnnualPlanWorkflow.tasks) == {passed.task_id: "closed", far.task_id: "pending"}
            await handle.execute_update(AnnualPlanWorkflow.adjust, Adjustment(
                kind="add", task_id=added.task_id, reason="省局专项部署", approver="JDZ-I011"))
        outcome = await handle.result()
        assert (outcome.tasks_closed, outcome.tasks_cancelled) == (3, 0)

        history = await handle.fetch_history()
        started = child_starts(history)
        assert [task for _, task in started] == [task_workflow_id(t.task_id) for t in (passed, added, far)]
        # Each start follows a timer of its own (the last timer before it was started after the one before).
        ticks = timers(history)
        for n, (event_id, _) in enumerate(started):
            before = [t for t in ticks if t < event_id and (n == 0 or t > started[n - 1][0])]
            assert before, f"task {started[n][1]} started with no timer before it"
        for slot in (added, far):
            task = env.client.get_workflow_handle(task_workflow_id(slot.task_id))
            began = datetime.fromisoformat(await task.result())
            assert began >= slot.start_at

    replayer = Replayer(workflows=[AnnualPlanWorkflow, TaskStandIn], data_converter=pydantic_data_converter,
                        workflow_runner=UnsandboxedWorkflowRunner())
    await replayer.replay_workflow(history)
    guarded = workflow.patched
    monkeypatch.setattr(workflow, "patched", lambda name: name != STARTS_BY_TIMER and guarded(name))
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(history)
