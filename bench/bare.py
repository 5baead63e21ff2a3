"""The bare baseline of bench/throughput.py: a task and a target workflow with the real ones' history shape, no work.

`BareTargetWorkflow` mirrors workflows/target.py on the happy path the bench drives (open and notice in one
activity → field-work timers → check → continue as new → result → review → publication timer →
publish → credit feedback and one non-order follow-up → closed, the last one signalling the parent):
the same runs, the same activities (no-ops and an in-memory count), the same update handlers with the
same locks and waits, the same timers, the same search-attribute upserts and the same external signal,
so each of its runs' histories has the same count of each event type as the real one's. Its updates
only set flags; its status query returns a three-field dict. `BareTaskWorkflow` mirrors the
dispatched part of workflows/task.py: pages of children (a no-op page activity), continue-as-new
every CHILDREN_PER_RUN starts, then counting the finished targets (in memory) whenever the last one
signals, a no-op close and a signal to the plan.

`PlanStub` stands in for the annual plan workflow in both runs: it takes the task's `task_closed`
signal. This module imports only temporalio, bare_types and workflows.common (both passed through), so
the sandbox re-imports nothing heavy for it.
"""
from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from typing import NoReturn

from temporalio import activity, workflow
from temporalio.common import WorkflowIDReusePolicy

with workflow.unsafe.imports_passed_through():
    from bare_types import BarePage, BareTargetRun, BareTaskRun
    from workflows.common import (
        CHILD_BATCH,
        CHILDREN_PER_RUN,
        LIGHT,
        OVERDUE,
        PLAN_YEAR,
        REGION,
        STAGE,
        TASK_ID,
        UNIT,
        signal_unless_closed,
        wait_until,
    )


@activity.defn
def bare_noop(step: str) -> None:
    """Every activity of the bare target and task: nothing."""


# Targets finished per task workflow id, in the bare worker's process: what the projection counts for the real one.
_finished: Counter[str] = Counter()
_finished_lock = threading.Lock()


@activity.defn
def bare_finish(run: BareTargetRun) -> bool:
    """The target's finish: True for the task's last one."""
    with _finished_lock:
        _finished[run.task_wf] += 1
        return _finished[run.task_wf] == run.total


@activity.defn
def bare_count(task_wf: str) -> int:
    with _finished_lock:
        return _finished[task_wf]


@activity.defn
def bare_page(page: BarePage) -> list[str]:
    return [f"{i:06d}" for i in range(page.after, min(page.after + page.limit, page.total))]


def bare_target_id(task_id: str, key: str) -> str:
    return f"bare-target/{task_id}/{key}"


@workflow.defn(sandboxed=False)  # as the real target
class BareTargetWorkflow:
    @workflow.init
    def __init__(self, run: BareTargetRun) -> None:
        self._run = run
        self._opened = bool(run.wait)
        self._stage = {"": "dispatched", "check": "dispatched", "result": "checked"}[run.wait]
        self._checked = self._due = run.wait == "result"
        self._approved = False
        self._commands = run.commands
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, run: BareTargetRun) -> str:
        if not run.wait:
            workflow.patched("target-opens-in-one-run")  # the real one's marker: it opens and tells the team at once
            await workflow.execute_activity(bare_noop, "open", **LIGHT)
            self._opened = True
            self._set_stage("dispatched", initial=True)
            await workflow.wait_condition(lambda: True)  # the real one waits for unstaffed units: none here
        if run.wait in ("", "check"):  # the first run goes on to wait for the check (since that patch)
            checked = lambda: self._checked  # noqa: E731
            far = workflow.now() + timedelta(days=30)
            if not await wait_until(checked, far, "field-work reminder"):
                await workflow.execute_activity(bare_noop, "reminder", **LIGHT)
            if not await wait_until(checked, far + timedelta(days=3), "task window end"):
                await workflow.execute_activity(bare_noop, "escalation", **LIGHT)
                await workflow.wait_condition(checked)
            await workflow.wait_condition(lambda: self._due)
            await self._continue_at("result")
        approved = lambda: self._approved  # noqa: E731
        if not await wait_until(approved, workflow.now() + timedelta(days=28), "publication due"):
            await workflow.execute_activity(bare_noop, "publication-escalation", **LIGHT)
            await workflow.wait_condition(approved)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.execute_activity(bare_noop, "publish-result", **LIGHT)
        self._set_stage("approved")
        await self._hand_off("credit-feedback")
        if run.follow_up:
            self._set_stage("follow_up")
            await self._hand_off("follow-up")
        self._set_stage("closed")
        if await workflow.execute_activity(bare_finish, run, **LIGHT):
            await signal_unless_closed(run.task_wf, "targets_finished", run.key)
        return self._stage

    async def _continue_at(self, wait: str) -> NoReturn:
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(replace(self._run, wait=wait, commands=self._commands))

    async def _hand_off(self, step: str) -> None:
        await workflow.execute_activity(bare_noop, f"open-{step}", **LIGHT)
        await workflow.execute_activity(bare_noop, f"deliver-{step}", **LIGHT)

    def _set_stage(self, stage: str, initial: bool = False) -> None:
        self._stage = stage
        attributes = [STAGE.value_set(stage)]
        if initial:
            attributes += [TASK_ID.value_set("bare"), UNIT.value_set("bare"), REGION.value_set("000000"),
                           PLAN_YEAR.value_set(2026), OVERDUE.value_set(False)]
        workflow.upsert_search_attributes(attributes)

    @workflow.update
    async def record_check(self, _: dict) -> str:
        async with self._lock:
            self._checked = True
            self._commands += 1
            self._set_stage("checked")
            await workflow.execute_activity(bare_noop, "check", **LIGHT)
            self._due = True
        return "ok"

    @record_check.validator
    def _validate_check(self, _: dict) -> None:
        if not self._opened or self._stage != "dispatched":
            raise ValueError(f"cannot check in stage {self._stage}")

    @workflow.update
    async def enter_result(self, _: dict) -> str:
        async with self._lock:
            self._commands += 1
            self._set_stage("entered")
            await workflow.execute_activity(bare_noop, "result", **LIGHT)
            self._approved = False
        return "ok"

    @enter_result.validator
    def _validate_result(self, _: dict) -> None:
        if self._stage != "checked":
            raise ValueError(f"cannot enter a result in stage {self._stage}")

    @workflow.update
    async def review_result(self, _: dict) -> str:
        async with self._lock:
            self._commands += 1
            self._set_stage("approved")
            await workflow.execute_activity(bare_noop, "review", **LIGHT)
            self._approved = True
        return "ok"

    @review_result.validator
    def _validate_review(self, _: dict) -> None:
        if self._stage != "entered":
            raise ValueError(f"cannot review in stage {self._stage}")

    @workflow.query
    def status(self) -> dict:
        return {"opened": self._opened, "stage": self._stage, "commands": self._commands}


@workflow.defn
class BareTaskWorkflow:
    @workflow.init
    def __init__(self, run: BareTaskRun) -> None:
        # Set before any handler runs: a target's signal can come in the first workflow task of a new run,
        # and the SDK applies signals before it starts the run method.
        self._run = run
        self._recount = False

    @workflow.run
    async def run(self, run: BareTaskRun) -> str:
        run = self._run
        # The real task's markers, so that the histories match.
        workflow.patched("signals-before-run-counted")
        workflow.patched("targets-counted-in-projection")
        self._set_stage(run.stage, initial=True)
        if run.stage == "dispatched":
            await self._start_targets()
            run.stage = "in_progress"
        self._set_stage("in_progress")
        while True:
            self._recount = False
            run.finished = await workflow.execute_activity(bare_count, workflow.info().workflow_id, **LIGHT)
            if run.finished >= run.total:
                break
            await workflow.wait_condition(lambda: self._recount or workflow.info().is_continue_as_new_suggested())
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(run)
        await workflow.execute_activity(bare_noop, "close", **LIGHT)
        self._set_stage("closed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.get_external_workflow_handle(run.plan_wf).signal("task_closed", run.task_id)
        return "closed"

    async def _start_targets(self) -> None:
        run = self._run
        started_here = 0
        while True:
            page = await workflow.execute_activity(
                bare_page, BarePage(after=run.cursor, limit=CHILD_BATCH, total=run.total), **LIGHT)
            if not page:
                break
            await asyncio.gather(*(self._start_target(key) for key in page))
            run.started += len(page)
            run.cursor += len(page)
            started_here += len(page)
            if started_here >= CHILDREN_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(run)

    async def _start_target(self, key: str) -> None:
        run = self._run
        await workflow.start_child_workflow(
            BareTargetWorkflow.run, BareTargetRun(task_wf=workflow.info().workflow_id, key=key, total=run.total,
                                                  follow_up=run.follow_up),
            id=bare_target_id(run.task_id, key), id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON, static_summary=f"{run.task_id} · {key}",
        )

    @workflow.signal
    def targets_finished(self, key: str) -> None:
        self._recount = True

    def _set_stage(self, stage: str, initial: bool = False) -> None:
        attributes = [STAGE.value_set(stage)]
        if initial:
            attributes += [TASK_ID.value_set("bare"), UNIT.value_set("bare"), PLAN_YEAR.value_set(2026)]
        workflow.upsert_search_attributes(attributes)


@workflow.defn
class PlanStub:
    """Takes the place of plan/<code>: the task's closing signal needs a receiver."""

    def __init__(self) -> None:
        self._closed: list[str] = []

    @workflow.run
    async def run(self, expected: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self._closed) >= expected)
        return self._closed

    @workflow.signal
    def task_closed(self, task_id: str) -> None:
        self._closed.append(task_id)
