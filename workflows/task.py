"""One inspection task (抽查任务): announce → freeze → (entropy) → draw → dispatch → one child per target.

The task owns the draw and the dispatch because both need the whole population; each target
gets its own workflow because each has its own people, deadlines and outcome. Target ids never
travel in bulk: children are started page by page from the database, and the task continues as
new with counters and a cursor before its history grows large.
"""
from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.draws import SYSTEM_APPROVER, DrawActivities, conflict_reason
    from activities.starts import StartActivities
    from activities.targets import TargetActivities
    from domain import alert_texts
    from domain.draw import DrawError, check_entropy_value
    from domain.messages.target import Alert, TargetRun, TargetsShard, TargetsStarted
    from domain.messages.task import (
        Announcement,
        DispatchSummary,
        DrawSummary,
        EntropyEntry,
        FreezeSummary,
        Redraw,
        TargetCounts,
        TargetedEntity,
        TargetedStep,
        TargetsPage,
        TaskClosing,
        TaskRun,
        TaskStatus,
        TaskStep,
        TaskTargets,
        WaitFor,
        WorkingDaysLater,
    )
    from domain.results import Refused
    from domain.stages import Stage
    from domain.uscc import uscc_problem
    from workflows.common import (
        CHILD_BATCH,
        CHILDREN_PER_RUN,
        HEAVY,
        LIGHT,
        MAX_SHARDS,
        OVERDUE,
        PLAN_YEAR,
        SHARD_TARGETS,
        STAGE,
        STARTS,
        TASK_ID,
        UNIT,
        plan_workflow_id,
        signal_unless_closed,
        target_workflow_id,
        wait_until,
    )
    from workflows.target import TargetInspectionWorkflow

# Announcement-to-freeze and draw-to-dispatch windows of one working day (targeted entities; redraws).
WINDOWS_PATCH = "targeting-and-redraw-windows"
SIGNALS_BEFORE_RUN_PATCH = "signals-before-run-counted"
# The task counts its closed targets in the projection, woken by the last one's signal, instead of one signal
# per target: a burst of signals (targets sharing a deadline) filled the history and kept continue-as-new out.
COUNTED_PATCH = "targets-counted-in-projection"
# Tasks awaiting entropy since this patch wait for it until a deadline.
ENTROPY_DEADLINE = "entropy-deadline"
# Since this patch the targets are started by activities, in shards that run side by side on the workers,
# not as children one page at a time through this history.
SHARDED_STARTS = "targets-started-in-shards"

# How the entropy validator names the source in a refusal: it holds the stage, not the announcement (the door
# names the source itself). Validators do not run on replay, so refusing more changes no accepted history.
ANNOUNCED_SOURCE = "announced for this draw"


@workflow.defn
class InspectionTaskWorkflow:
    @workflow.init
    def __init__(self, run: TaskRun) -> None:
        # The input's state before any handler runs: a signal in a run's first workflow task (a target
        # finishing just as the task continued as new) is handled before `run` starts, and counts.
        self._run = run
        self._progress = run.progress
        self._entropy: str | None = None
        self._redraw: Redraw | None = None
        self._targeting_open = False
        self._lock = asyncio.Lock()
        self._counted = False  # runs before COUNTED_PATCH count a signal per target
        self._recount = False  # a target reported finishing since the last count

    @workflow.run
    async def run(self, run: TaskRun) -> str:
        if not workflow.patched(SIGNALS_BEFORE_RUN_PATCH):
            self._progress = run.progress  # histories from before: such a signal was dropped here
        self._counted = workflow.patched(COUNTED_PATCH)
        self._set_stage(self._progress.stage, initial=True)
        if self._progress.stage == Stage.ANNOUNCED and not self._cancelled():
            await self._draw_and_dispatch()
        if self._progress.stage == Stage.DISPATCHED and not self._cancelled():
            await self._start_targets()
        if self._progress.stage in (Stage.DISPATCHED, Stage.IN_PROGRESS):
            if not self._cancelled():
                self._set_stage(Stage.IN_PROGRESS)
            await self._wait_for_targets()

        cancelled = self._cancelled()
        await workflow.execute_activity_method(
            DrawActivities.close_task,
            TaskClosing(task_id=run.task_id, cancelled=cancelled, reason=self._progress.cancel_reason), **LIGHT,
        )
        self._set_stage(Stage.CANCELLED if cancelled else Stage.CLOSED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.get_external_workflow_handle(plan_workflow_id(run.plan_code)).signal(
            "task_closed", run.task_id
        )
        return self._progress.stage.value

    async def _draw_and_dispatch(self) -> None:
        """announce → (targeting window) → freeze → (entropy) → draw → (redraw window) → dispatch."""
        while True:
            step = TaskStep(task_id=self._run.task_id, draw_seq=self._progress.draw_seq,
                            reason=self._redraw.reason if self._redraw else None,
                            approver=self._redraw.approver if self._redraw else None)
            self._redraw = None
            announcement: Announcement = await workflow.execute_activity_method(
                DrawActivities.announce, step, **LIGHT
            )
            if workflow.patched(WINDOWS_PATCH):
                # One working day between the announcement and the freeze: targeted entities go in now.
                self._targeting_open = True
                await self._wait_working_days(1, self._cancelled, "freeze of the population")
                self._targeting_open = False
                if self._cancelled():
                    return
            freeze: FreezeSummary = await workflow.execute_activity_method(DrawActivities.freeze, step, **HEAVY)
            self._set_stage(Stage.FROZEN)
            workflow.logger.info("frozen: %d entities, digest %s", freeze.population, freeze.population_digest)
            if announcement.entropy_source != "none":
                self._set_stage(Stage.AWAITING_ENTROPY)
                entered = lambda: self._entropy is not None or self._cancelled()  # noqa: E731
                if workflow.patched(ENTROPY_DEADLINE):
                    await self._entropy_deadline(entered, announcement.entropy_source)
                await workflow.wait_condition(entered)
            if self._cancelled():
                return
            drawn: DrawSummary = await workflow.execute_activity_method(
                DrawActivities.draw, step.model_copy(update={"entropy": self._entropy or ""}), **HEAVY
            )
            if drawn.conflicts:
                # Another task drew some of these entities after this freeze (R12, R14): the activity
                # recorded this draw as superseded; a new announcement and freeze follow.
                self._redraw = Redraw(reason=conflict_reason(drawn.conflicts), approver=SYSTEM_APPROVER)
                self._entropy = None
                self._progress = self._progress.model_copy(update={"draw_seq": step.draw_seq + 1})
                self._set_stage(Stage.ANNOUNCED)
                continue
            self._set_stage(Stage.DRAWN)
            if workflow.patched(WINDOWS_PATCH):
                # One working day in which the published draw can be challenged and redrawn (R19).
                await self._wait_working_days(1, lambda: self._redraw is not None or self._cancelled(),
                                              "dispatch (redraws until then)")
                if self._cancelled():
                    return
                if self._redraw is not None:
                    await workflow.execute_activity_method(
                        DrawActivities.supersede_draw,
                        step.model_copy(update={"reason": self._redraw.reason, "approver": self._redraw.approver}),
                        **LIGHT,
                    )
                    self._entropy = None  # a redraw takes a later entropy value
                    self._progress = self._progress.model_copy(update={"draw_seq": step.draw_seq + 1})
                    self._set_stage(Stage.ANNOUNCED)
                    continue
            dispatched: DispatchSummary = await workflow.execute_activity_method(
                DrawActivities.dispatch, step, **HEAVY
            )
            workflow.logger.info("drawn %d (+%d targeted), %d unstaffed",
                                 drawn.selected, drawn.targeted, dispatched.unstaffed)
            self._progress = self._progress.model_copy(
                update={"targets_total": drawn.selected + drawn.targeted, "stage": Stage.DISPATCHED}
            )
            self._set_stage(Stage.DISPATCHED)
            return

    async def _entropy_deadline(self, entered, source: str) -> None:
        """Wait for the announced entropy value: a reminder, then an escalation that marks the task overdue."""
        deadline = await workflow.execute_activity_method(
            TargetActivities.wait_deadline,
            WaitFor(task_id=self._run.task_id, wait="entropy", start=workflow.now()), **LIGHT,
        )
        if not await wait_until(entered, deadline.reminder_at, "entropy reminder"):
            await self._alert("reminder", f"entropy-reminder-{self._progress.draw_seq}",
                              alert_texts.entropy_reminder(source), deadline.supervisors)
        if not await wait_until(entered, deadline.due_at, "entropy due"):
            workflow.upsert_search_attributes([OVERDUE.value_set(True)])
            await self._alert("escalation", f"entropy-escalation-{self._progress.draw_seq}",
                              alert_texts.entropy_due(source),
                              deadline.supervisors)

    async def _alert(self, kind: str, step: str, details: str, notify: list[str]) -> None:
        await workflow.execute_activity_method(
            TargetActivities.alert,
            Alert(task_id=self._run.task_id, uscc=None, kind=kind, step=step, at=workflow.now(), details=details,
                  notify=sorted(notify)),
            **LIGHT,
        )

    async def _wait_working_days(self, days: int, done, summary: str) -> None:
        until = await workflow.execute_activity_method(
            TargetActivities.working_days_later,
            WorkingDaysLater(task_id=self._run.task_id, start=workflow.now(), working_days=days), **LIGHT,
        )
        await wait_until(done, until, summary)

    async def _start_targets(self) -> None:
        """Start the target children page by page, continuing as new every CHILDREN_PER_RUN starts."""
        if workflow.patched(SHARDED_STARTS):
            await self._start_in_shards()
            return
        started_here = 0
        while True:
            page: list[str] = await workflow.execute_activity_method(
                DrawActivities.targets_page,
                TargetsPage(task_id=self._run.task_id, after=self._progress.cursor, limit=CHILD_BATCH), **LIGHT,
            )
            if not page or self._cancelled():
                break
            await asyncio.gather(*(self._start_target(uscc) for uscc in page))
            self._progress = self._progress.model_copy(
                update={"started": self._progress.started + len(page), "cursor": page[-1]}
            )
            started_here += len(page)
            if started_here >= CHILDREN_PER_RUN or workflow.info().is_continue_as_new_suggested():
                self._continue_as_new()
        self._progress = self._progress.model_copy(update={"stage": Stage.IN_PROGRESS})

    async def _start_in_shards(self) -> None:
        """The targets not started yet (after the cursor), in consecutive slices of USCC order, each started by
        an activity of its own: a few events here whatever the task's size, and every worker takes part."""
        remaining = max(0, self._progress.targets_total - self._progress.started)
        shards = max(1, min(MAX_SHARDS, -(-remaining // SHARD_TARGETS)))
        template = TargetRun(task_id=self._run.task_id, uscc="", plan_code=self._run.plan_code,
                             plan_year=self._run.plan_year, finish_signal="last" if self._counted else "each")
        bounds = [remaining * i // shards for i in range(shards + 1)]
        done: list[TargetsStarted] = await asyncio.gather(*(
            workflow.execute_activity_method(
                StartActivities.start_targets,
                TargetsShard(run=template, workflow=TargetInspectionWorkflow.__name__,
                             id_prefix=target_workflow_id(self._run.task_id, ""), after=self._progress.cursor,
                             skip=bounds[i], count=bounds[i + 1] - bounds[i]),
                **STARTS)
            for i in range(shards)
        ))
        lasts = [d.last for d in done if d.last is not None]
        self._progress = self._progress.model_copy(update={
            "started": self._progress.started + sum(d.handled for d in done),
            "cursor": max(lasts) if lasts else self._progress.cursor, "stage": Stage.IN_PROGRESS})

    async def _start_target(self, uscc: str) -> None:
        try:
            await workflow.start_child_workflow(
                TargetInspectionWorkflow.run,
                TargetRun(task_id=self._run.task_id, uscc=uscc, plan_code=self._run.plan_code,
                          plan_year=self._run.plan_year, finish_signal="last" if self._counted else "each"),
                id=target_workflow_id(self._run.task_id, uscc),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"{self._run.task_id} · {uscc}",
            )
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier run of this task: already there, not a failure

    async def _wait_for_targets(self) -> None:
        if self._counted:
            await self._count_targets()
            return
        told = False
        while self._progress.finished < self._progress.targets_total:
            await workflow.wait_condition(
                lambda: self._progress.finished >= self._progress.targets_total
                or workflow.info().is_continue_as_new_suggested()
                or (self._cancelled() and not told)
            )
            if self._cancelled() and not told:
                await self._cancel_targets()
                told = True
            elif self._progress.finished < self._progress.targets_total:
                self._continue_as_new()

    async def _count_targets(self) -> None:
        """Count the closed targets in the projection until all are, recounting when the last one says so.

        The flag is cleared before each count: a signal that comes while the count runs wakes a recount."""
        while True:
            if self._cancelled() and not self._progress.all_told:
                await self._cancel_targets()
            self._recount = False
            counts: TargetCounts = await workflow.execute_activity_method(
                DrawActivities.finished_targets, TaskTargets(task_id=self._run.task_id), **LIGHT
            )
            self._progress = self._progress.model_copy(update={"finished": counts.finished})
            if counts.finished >= counts.total:  # as the last target's finish decides
                return
            await workflow.wait_condition(
                lambda: self._recount or workflow.info().is_continue_as_new_suggested()
                or (self._cancelled() and not self._progress.all_told)
            )
            if workflow.info().is_continue_as_new_suggested():
                self._continue_as_new()

    async def _cancel_targets(self) -> None:
        """Tell every started target; each stops unless its result is already approved, then reports back.

        Counted runs tell them page by page across continue-as-new (a signal is two events in this history)
        and then record the targets never started as cancelled; before, the total became the started count."""
        assert self._progress.cancel_reason
        if not self._counted:
            self._progress = self._progress.model_copy(update={"targets_total": self._progress.started})
        told_here = 0
        while True:
            page: list[str] = await workflow.execute_activity_method(
                DrawActivities.targets_page,
                TargetsPage(task_id=self._run.task_id, after=self._progress.told, limit=CHILD_BATCH), **LIGHT,
            )
            started = [uscc for uscc in page if self._progress.cursor is not None and uscc <= self._progress.cursor]
            # A target already closed has reported itself (signalling it failed the task before this).
            await asyncio.gather(*(
                signal_unless_closed(target_workflow_id(self._run.task_id, uscc), "cancel", self._progress.cancel_reason)
                for uscc in started
            ))
            if started:
                self._progress = self._progress.model_copy(update={"told": started[-1]})
            if not page or len(started) < len(page):
                break  # targets are started in USCC order: the rest never started
            told_here += len(started)
            if self._counted and told_here >= CHILDREN_PER_RUN:
                self._continue_as_new()
        if self._counted:
            await workflow.execute_activity_method(
                DrawActivities.cancel_unstarted,
                TaskTargets(task_id=self._run.task_id, after=self._progress.cursor, at=workflow.now()), **LIGHT,
            )
            self._progress = self._progress.model_copy(update={"all_told": True})

    def _continue_as_new(self) -> None:
        # Signals that arrived are counted in _progress; handlers must be done before the state is carried over.
        workflow.continue_as_new(self._run.model_copy(update={"progress": self._progress}))

    # --- messages ------------------------------------------------------------------------------
    @workflow.signal
    def target_finished(self, uscc: str) -> None:
        """A target started by a run before COUNTED_PATCH finished (counted runs recount)."""
        self._progress = self._progress.model_copy(update={"finished": self._progress.finished + 1})
        self._recount = True

    @workflow.signal
    def targets_finished(self, uscc: str) -> None:
        """The task's last open target finished (`uscc`): time to count them."""
        self._recount = True

    @workflow.signal
    def cancel(self, reason: str) -> None:
        if self._progress.cancel_reason is None:
            self._progress = self._progress.model_copy(update={"cancel_reason": reason})

    @workflow.update
    def enter_entropy(self, entry: EntropyEntry) -> str:
        self._entropy = entry.value
        return "entropy recorded; drawing"

    @enter_entropy.validator
    def _validate_entropy(self, entry: EntropyEntry) -> None:
        if self._progress.stage != Stage.AWAITING_ENTROPY:
            raise Refused(f"the task is not waiting for entropy (stage {self._progress.stage.value})")
        # A task awaits entropy only when its announced source is not "none": the value must be that source's
        # published one (domain.draw.check_entropy_value); the door checks it first, naming the source.
        try:
            check_entropy_value(ANNOUNCED_SOURCE, entry.value)
        except DrawError as error:
            raise Refused(str(error)) from None

    @workflow.update
    async def add_target(self, entity: TargetedEntity) -> str:
        async with self._lock:
            await workflow.execute_activity_method(
                DrawActivities.record_targeted,
                TargetedStep(task_id=self._run.task_id, uscc=entity.uscc, reason=entity.reason, at=workflow.now(),
                             legal_basis=entity.legal_basis),
                **LIGHT,
            )
        basis = f"; legal basis: {entity.legal_basis}" if entity.legal_basis else ""
        return f"{entity.uscc} will be inspected in task {self._run.task_id} ({entity.reason}{basis})"

    @add_target.validator
    def _validate_target(self, entity: TargetedEntity) -> None:
        if not self._targeting_open:
            raise Refused(f"targeted entities are added before the freeze (stage {self._progress.stage.value})")
        problem = uscc_problem(entity.uscc)
        if problem:
            raise Refused(f"USCC {entity.uscc!r}: {problem}")

    @workflow.update
    def redraw(self, redraw: Redraw) -> str:
        self._redraw = redraw
        return f"redraw approved by {redraw.approver}: a new announcement follows (draw {self._progress.draw_seq + 1})"

    @redraw.validator
    def _validate_redraw(self, redraw: Redraw) -> None:
        if self._progress.stage != Stage.DRAWN or self._redraw is not None:
            raise Refused(f"a redraw is only possible after a draw and before dispatch (stage {self._progress.stage.value})")

    @workflow.query
    def status(self) -> TaskStatus:
        p = self._progress
        return TaskStatus(task_id=self._run.task_id, stage=p.stage, draw_seq=p.draw_seq,
                          targets_total=p.targets_total, started=p.started, finished=p.finished,
                          cancel_reason=p.cancel_reason)

    def _cancelled(self) -> bool:
        return self._progress.cancel_reason is not None

    def _set_stage(self, stage: Stage, initial: bool = False) -> None:
        self._progress = self._progress.model_copy(update={"stage": stage})
        attributes = [STAGE.value_set(stage.value)]
        if initial:
            attributes += [TASK_ID.value_set(self._run.task_id), UNIT.value_set(self._run.unit),
                           PLAN_YEAR.value_set(self._run.plan_year)]
        workflow.upsert_search_attributes(attributes)
