"""One drawn (or targeted) entity's inspection: check → result → review → publication → follow-up.

Human steps are updates whose validators apply the rules of domain.results, so a refused command
leaves no event and no row (R22). Every wait has a deadline: a missed one reminds or escalates, never passes
silently. Handlers write their projection row before returning, under one lock, so the
projection follows the order in which the history accepted the commands.
"""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.handoff import HandoffActivities
    from activities.targets import TargetActivities
    from domain import alert_texts, public, results
    from domain.categories import ORDER_KINDS, category
    from domain.commands import command_text
    from domain.messages.target import (
        KEPT_ANSWERS,
        KEPT_SIGNALS,
        Alert,
        CheckRecord,
        CheckRecorded,
        Delivery,
        FieldSignal,
        FollowUpClosing,
        FollowUpOpened,
        FollowUpStep,
        ManualAssignment,
        Recheck,
        ResultEntry,
        Review,
        TargetContext,
        TargetRun,
        TargetState,
        TargetStatus,
        TargetStep,
        Team,
        Withholding,
        WithholdingDecision,
        team_notice,
    )
    from domain.messages.task import WaitFor
    from domain.stages import Stage
    from workflows.common import (
        LIGHT,
        OVERDUE,
        PLAN_YEAR,
        REGION,
        STAGE,
        TASK_ID,
        UNIT,
        signal_unless_closed,
        task_workflow_id,
        wait_until,
    )


# Targets opened since this patch continue as new where their long waits begin (_continue_at_wait).
CONTINUES_AT_WAITS = "target-continues-at-waits"
# Targets opened unstaffed since this patch wait for a supervisor's assignment until a deadline.
STAFFING_DEADLINE = "staffing-deadline"
# Since this patch a result marked for withholding (R23) waits for its approver before publication.
WITHHOLDS_BEFORE_PUBLICATION = "target-withholds-before-publication"
# Since this patch a target whose task marks an item for withholding (R23) opens marked by it.
WITHHOLDS_MARKED_ITEMS = "target-withholds-marked-items"
# Since this patch a target is opened and its team told in one activity, and its first run goes on to wait for
# the check, continuing as new once it is recorded: half the server's work of opening a province's targets
# (a second run and its first workflow task, a second activity and its workflow task: bench/province.py).
OPENS_IN_ONE_RUN = "target-opens-in-one-run"


def _update_id() -> str:
    info = workflow.current_update_info()
    assert info is not None  # only ever called from an update's handler or validator
    return info.id


def answered_once(handler: Callable[[Any, Any], Awaitable[str]]) -> Callable[[Any, Any], Awaitable[str]]:
    """An update whose id was answered before (a door retrying the command whose answer it lost, after the target
    continued as new: Temporal dedupes an id within one run) gets that answer again, with no second effect."""
    @functools.wraps(handler)
    async def once(self, command) -> str:
        if (answer := self._answers.get(_update_id())) is not None:
            return answer
        answer = await handler(self, command)
        self._keep_answer(_update_id(), answer)
        return answer
    return once


def unless_answered(validator: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """The validator of an `answered_once` update: a repeated id is not judged again (its command was accepted)."""
    @functools.wraps(validator)
    def judge(self, command) -> None:
        if _update_id() not in self._answers:
            validator(self, command)
    return judge


# Outside the sandbox: a worker holds thousands of open targets, and the sandbox loads this module again
# for each run, code objects included (189 against 109 KB per cached target, bench/memory.py). The rules
# it enforces hold here by other means: tests/unit/test_workflow_determinism.py reads workflows/ for the
# clock, random and I/O, and the tests' workers run this workflow in the sandbox (runtime/client.py).
@workflow.defn(sandboxed=False)
class TargetInspectionWorkflow:
    @workflow.init
    def __init__(self, run: TargetRun) -> None:
        self._run = run
        self._ctx: TargetContext | None = None
        self._stage = Stage.DISPATCHED
        self._teams: list[Team] = []
        self._check: CheckRecord | None = None
        self._check_at: datetime | None = None
        self._due: datetime | None = None
        self._result: ResultEntry | None = None
        self._returns = 0
        self._approved = False
        self._overdue = False
        self._follow_up: str | None = None
        self._recheck: Recheck | None = None
        self._signals: list[str] = []
        self._signal_count = 0
        self._last_command: str | None = None
        self._lock = asyncio.Lock()
        self._seq = 0
        self._cancel: str | None = None
        self._withholding: Withholding | None = None
        self._withholding_approved: bool | None = None
        self._answers: dict[str, str] = {}
        if run.state is not None:
            # Before any handler: a command sent as the previous run ended is delivered to this one first.
            self._restore(run.state)

    # --- the process ---------------------------------------------------------------------------
    @workflow.run
    async def run(self, run: TargetRun) -> str:
        in_one_run = False
        if run.state is None:
            in_one_run = workflow.patched(OPENS_IN_ONE_RUN)
            if not await self._open(in_one_run):
                return await self._stop()
            if not in_one_run and workflow.patched(CONTINUES_AT_WAITS):
                await self._continue_at_wait()  # the field work waits in a run of its own
        if run.state is None or self._due is None:  # a check taken before the first run ended skips the wait
            if not await self._field_work():
                return await self._stop()
            if run.state is not None or in_one_run:
                await self._continue_at_wait()  # result entry waits in a run of its own

        # Result, review, publication within 20 working days of the check (R21); returns do not restart the clock.
        approved = lambda: self._approved or self._cancelled()  # noqa: E731
        if not await wait_until(approved, self._due, "publication due"):
            await self._escalate("publication-escalation", alert_texts.PUBLICATION_DUE)
            await workflow.wait_condition(approved)
        if self._cancelled():
            return await self._stop()
        withheld = None
        if workflow.patched(WITHHOLDS_BEFORE_PUBLICATION):
            withheld = await self._withholding_decided()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.execute_activity_method(
            TargetActivities.publish_result, self._step("publish-result", due_at=self._due, withholding=withheld),
            **LIGHT
        )
        self._set_stage(Stage.APPROVED)

        await self._follow_up_result()
        return await self._finish(Stage.CLOSED)

    async def _withholding_decided(self) -> Withholding | None:
        """A result marked for withholding (R23) waits for its decision, escalated once publication is due;
        the marking when it was approved, so that its fields are withheld, else None."""
        decided = lambda: self._withholding is None or self._withholding_approved is not None  # noqa: E731
        assert self._due is not None
        if not await wait_until(decided, self._due, "withholding decision due"):
            await self._escalate("withholding-escalation", alert_texts.WITHHOLDING_DUE)
            await workflow.wait_condition(decided)
        return self._withholding if self._withholding_approved else None

    async def _open(self, telling: bool) -> bool:
        """Load what the validators need (`telling`: and tell a fully staffed team in the same step), wait for
        every unit's team, tell the team if not told yet; False if cancelled first."""
        self._ctx = await workflow.execute_activity_method(
            TargetActivities.open_target, self._step("open", notify_team=telling and not self._cancelled()), **LIGHT
        )
        self._teams = list(self._ctx.teams)
        self._set_stage(Stage.UNSTAFFED if self._ctx.unstaffed_units else Stage.DISPATCHED, initial=True)
        if self._ctx.withholding is not None and workflow.patched(WITHHOLDS_MARKED_ITEMS):
            async with self._lock:  # its items' marking, as if a person had marked it first
                await self._mark(self._ctx.withholding)
        staffed = lambda: not self._unstaffed_units() or self._cancelled()  # noqa: E731
        if not staffed() and workflow.patched(STAFFING_DEADLINE):
            await self._staffing_deadline(staffed)
        await workflow.wait_condition(staffed)
        if self._cancelled():
            return False
        if not self._ctx.team_notified:
            await workflow.execute_activity_method(
                TargetActivities.alert, team_notice(self._run.task_id, self._run.uscc, workflow.now(), self._teams),
                **LIGHT)
        return True

    async def _field_work(self) -> bool:
        """Wait for the check: a reminder before the window ends, an escalation once it has; False if cancelled."""
        assert self._ctx
        checked = lambda: self._check is not None or self._cancelled()  # noqa: E731
        if not await wait_until(checked, self._ctx.reminder_at, "field-work reminder"):
            await self._alert("reminder", "field-work-reminder", alert_texts.FIELD_WORK_REMINDER,
                              sorted(self._team_ids()))
        if not await wait_until(checked, self._ctx.window_end, "task window end"):
            await self._escalate("field-work-escalation", alert_texts.FIELD_WORK_DUE)
            await workflow.wait_condition(checked)
        await workflow.wait_condition(lambda: self._due is not None or self._cancelled())
        return not self._cancelled()

    async def _staffing_deadline(self, staffed) -> None:
        """Wait for the supervisors to staff the units the dispatch could not: a reminder, then an escalation."""
        assert self._ctx
        deadline = await workflow.execute_activity_method(
            TargetActivities.wait_deadline,
            WaitFor(task_id=self._run.task_id, uscc=self._run.uscc, wait="staffing", start=workflow.now(),
                    not_after=self._ctx.window_end),
            **LIGHT,
        )
        if not await wait_until(staffed, deadline.reminder_at, "staffing reminder"):
            await self._alert("reminder", "staffing-reminder", alert_texts.staffing_reminder(self._unstaffed_units()),
                              self._ctx.supervisors)
        if not await wait_until(staffed, deadline.due_at, "staffing due"):
            await self._escalate("staffing-escalation", alert_texts.staffing_due(self._unstaffed_units()))

    async def _continue_at_wait(self) -> NoReturn:
        """Continue as new, carrying the whole state, where weeks of waiting begin (the check, the result).

        A worker holds thousands of open targets in its cache, and the SDK keeps every state machine of a
        run until it closes (about 1 KB per event): a fresh run waits on a short history (bench/memory.py).
        Commands accepted meanwhile are carried too, once their handlers have finished."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._run.model_copy(update={"state": self._state()}))

    async def _stop(self) -> str:
        """The task was cancelled before this result was approved: stop, recorded, and report back."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        return await self._finish(Stage.CANCELLED)

    async def _finish(self, stage: Stage) -> str:
        """Record the final stage and tell the task: each target did; now only the task's last open one."""
        self._set_stage(stage)
        step = self._step(stage.value, stage=stage)
        task_id = task_workflow_id(self._run.task_id)
        if self._run.finish_signal == "each":
            await workflow.execute_activity_method(TargetActivities.record_stage, step, **LIGHT)
            await workflow.get_external_workflow_handle(task_id).signal("target_finished", self._run.uscc)
        elif await workflow.execute_activity_method(TargetActivities.finish, step, **LIGHT):
            # A retried finish can answer "last" after the last one did: by then the task may have closed.
            await signal_unless_closed(task_id, "targets_finished", self._run.uscc)
        return self._stage.value

    def _cancelled(self) -> bool:
        return self._cancel is not None

    async def _follow_up_result(self) -> None:
        """Open the follow-up the category calls for and carry it to its closing event (R24, R25)."""
        assert self._result is not None
        await self._hand_off("credit-feedback", "credit_feedback")  # R26: every result goes back to the classifier
        kind = category(self._result.category).follow_up
        if kind is None:
            return
        self._set_stage(Stage.FOLLOW_UP)
        lead = await self._hand_off("follow-up", kind.value)
        self._follow_up = lead.lead_id
        if kind not in ORDER_KINDS:
            return
        # An order: wait for the re-check until its deadline; a pass closes it, a fail or a miss escalates.
        assert lead.due_at is not None
        complied = await wait_until(lambda: self._recheck is not None, lead.due_at, "order deadline")
        passed = complied and self._recheck is not None and self._recheck.passed
        closed_by = "re-check passed" if passed else ("re-check failed" if complied else "deadline passed")
        await workflow.execute_activity_method(
            HandoffActivities.close_follow_up,
            FollowUpClosing(lead_id=lead.lead_id, at=workflow.now(), closed_by=closed_by), **LIGHT,
        )
        if not passed:
            fallback = category(self._result.category).fallback
            assert fallback is not None
            self._follow_up = (await self._hand_off("follow-up-fallback", fallback.value)).lead_id

    async def _hand_off(self, step: str, kind: str) -> FollowUpOpened:
        """One follow-up row and its outbox row (one transaction), then delivery with an idempotency key."""
        assert self._result
        opened = await workflow.execute_activity_method(
            HandoffActivities.open_follow_up, self._follow_up_step(step, kind), **LIGHT
        )
        await workflow.execute_activity_method(
            HandoffActivities.deliver, Delivery(workflow_id=workflow.info().workflow_id, step=step), **LIGHT
        )
        return opened

    def _follow_up_step(self, step: str, kind: str) -> FollowUpStep:
        assert self._result
        return FollowUpStep(task_id=self._run.task_id, uscc=self._run.uscc, kind=kind,
                            category=self._result.category, step=step, at=workflow.now(), verified_at=self._check_at)

    # --- deadlines -----------------------------------------------------------------------------
    async def _escalate(self, step: str, details: str) -> None:
        assert self._ctx
        self._overdue = True
        workflow.upsert_search_attributes([OVERDUE.value_set(True)])
        await self._alert("escalation", step, details, self._ctx.supervisors)

    async def _alert(self, kind: str, step: str, details: str, notify: list[str]) -> None:
        await workflow.execute_activity_method(
            TargetActivities.alert,
            Alert(task_id=self._run.task_id, uscc=self._run.uscc, kind=kind, step=step, at=workflow.now(),
                  details=details, notify=sorted(notify)),
            **LIGHT,
        )

    # --- human steps: updates with validators ----------------------------------------------------
    @workflow.update
    @answered_once
    async def record_check(self, check: CheckRecord) -> str:
        async with self._lock:
            self._check, self._check_at = check, workflow.now()
            self._remember("check", check)
            self._set_stage(Stage.CHECKED)
            recorded: CheckRecorded = await workflow.execute_activity_method(
                TargetActivities.record_check, self._step("check", check=check), **LIGHT
            )
            self._due = recorded.publication_due
        return f"check recorded; publication due {self._due.isoformat()}"

    @record_check.validator
    @unless_answered
    def _validate_check(self, check: CheckRecord) -> None:
        results.may_record_check(check, self._standing())

    @workflow.update
    @answered_once
    async def enter_result(self, entry: ResultEntry) -> str:
        async with self._lock:
            self._result = entry
            self._remember("result", entry)
            review = self._ctx is not None and self._ctx.review_required
            self._set_stage(Stage.ENTERED if review else Stage.APPROVED)
            await workflow.execute_activity_method(
                TargetActivities.record_result, self._step("result", result=entry, stage=self._stage), **LIGHT
            )
            self._approved = not review
        return "result entered; awaiting review" if review else "result entered; no review required, publishing"

    @enter_result.validator
    @unless_answered
    def _validate_result(self, entry: ResultEntry) -> None:
        results.may_enter_result(entry, self._standing())

    @workflow.update
    @answered_once
    async def review_result(self, review: Review) -> str:
        async with self._lock:
            self._remember("review", review)
            if review.approve:
                self._set_stage(Stage.APPROVED)
            else:
                self._returns += 1
                self._result = None
                self._set_stage(Stage.CHECKED)
            await workflow.execute_activity_method(
                TargetActivities.record_review, self._step(f"review-{self._returns}-{review.approve}", review=review),
                **LIGHT,
            )
            self._approved = review.approve
        return "approved; publishing" if review.approve else "returned for a new entry; the publication clock runs on"

    @review_result.validator
    @unless_answered
    def _validate_review(self, review: Review) -> None:
        results.may_review(review, self._standing())

    @workflow.update
    @answered_once
    async def assign_team(self, assignment: ManualAssignment) -> str:
        async with self._lock:
            self._teams = [t for t in self._teams if t.unit != assignment.unit]
            self._teams.append(Team(unit=assignment.unit, inspectors=assignment.inspectors))
            self._remember("assign", assignment)
            if self._stage == Stage.UNSTAFFED and not self._unstaffed_units():
                self._set_stage(Stage.DISPATCHED)
            await workflow.execute_activity_method(
                TargetActivities.record_team, self._step(f"assign-{self._seq}", assignment=assignment), **LIGHT
            )
        return f"team of {assignment.unit} is now {', '.join(assignment.inspectors)}"

    @assign_team.validator
    @unless_answered
    def _validate_assignment(self, assignment: ManualAssignment) -> None:
        results.may_assign_team(assignment, self._standing())

    @workflow.update
    @answered_once
    async def record_recheck(self, recheck: Recheck) -> str:
        self._recheck = recheck
        self._remember("recheck", recheck)
        return "re-check recorded: " + ("passed, the order is closed" if recheck.passed else "failed, escalating")

    @record_recheck.validator
    @unless_answered
    def _validate_recheck(self, recheck: Recheck) -> None:
        results.may_record_recheck(recheck, self._standing())

    @workflow.update
    @answered_once
    async def mark_withholding(self, withholding: Withholding) -> str:
        """R23: the result touches secrets or privacy; its publication waits for a supervisor's decision."""
        async with self._lock:
            self._remember("withhold", withholding)
            await self._mark(withholding)
        return f"marked: {', '.join(withholding.fields)} withheld if a supervisor approves; publication waits for it"

    async def _mark(self, withholding: Withholding) -> None:
        """Marked (by a person or by the task's items): publication waits for the decision; recorded for it."""
        self._withholding = withholding
        await workflow.execute_activity_method(
            TargetActivities.record_withholding, self._step("withholding", withholding=withholding), **LIGHT)

    @mark_withholding.validator
    @unless_answered
    def _validate_withholding(self, withholding: Withholding) -> None:
        if self._cancelled() or self._ctx is None:
            raise results.Refused("the target is cancelled or still being dispatched")
        people = frozenset(self._team_ids() | set(self._ctx.reviewers) | set(self._ctx.supervisors))
        public.may_mark_withholding(withholding.marked_by, self._stage, people,
                                    self._withholding.marked_by if self._withholding else None)

    @workflow.update
    @answered_once
    async def decide_withholding(self, decision: WithholdingDecision) -> str:
        async with self._lock:
            self._withholding_approved = decision.approve
            self._remember("withhold-decision", decision)
            await workflow.execute_activity_method(
                TargetActivities.record_withholding,
                self._step("withholding-decision", withholding=self._withholding, withholding_decision=decision),
                **LIGHT)
        if decision.approve:
            return "approved: published with the marked fields withheld"
        return "refused: published in full"

    @decide_withholding.validator
    @unless_answered
    def _validate_withholding_decision(self, decision: WithholdingDecision) -> None:
        if self._ctx is None:
            raise results.Refused("the target is still being dispatched; try again in a moment")
        public.may_decide_withholding(decision.approver, self._withholding.marked_by if self._withholding else None,
                                      self._ctx.supervisors, self._withholding_approved is not None)

    # --- field signals (logged, gate nothing) and queries --------------------------------------
    @workflow.signal
    def field_signal(self, signal: FieldSignal) -> None:
        if signal.request is not None:
            if signal.request in self._answers:
                return
            self._keep_answer(signal.request, f"{signal.kind} logged")
        self._signal_count += 1
        line = f"{workflow.now().isoformat()} {signal.kind} {signal.inspector}"
        self._signals = [*self._signals, line][-KEPT_SIGNALS:]
        workflow.logger.info("field signal %s from %s", signal.kind, signal.inspector)

    @workflow.signal
    def cancel(self, reason: str) -> None:
        """The task was cancelled (R5); a result already approved is published and followed up all the same."""
        if self._stage not in (Stage.APPROVED, Stage.FOLLOW_UP, Stage.CLOSED) and not self._approved:
            self._cancel = reason

    @workflow.query
    def answer(self, update_id: str) -> str | None:
        """The answer a command sent under this update id was given, if it is among the last few."""
        return self._answers.get(update_id)

    @workflow.query
    def status(self) -> TargetStatus:
        return TargetStatus(
            task_id=self._run.task_id, uscc=self._run.uscc, stage=self._stage,
            kind=self._ctx.kind if self._ctx else "random", teams=self._teams,
            methods=self._ctx.methods if self._ctx else [], checklist=self._ctx.checklist if self._ctx else [],
            reviewers=self._ctx.reviewers if self._ctx else [],
            review_required=self._ctx.review_required if self._ctx else True, check=self._check,
            check_at=self._check_at, result=self._result, returns=self._returns, publication_due=self._due,
            overdue=self._overdue, follow_up=self._follow_up, field_signals=self._signals,
            field_signal_count=self._signal_count, commands=self._seq, last_command=self._last_command,
            withholding=self._withholding, withholding_approved=self._withholding_approved,
        )

    # --- helpers -------------------------------------------------------------------------------
    def _keep_answer(self, key: str, answer: str) -> None:
        """The answer to a command (an update's id, a keyed signal's digest), among the last KEPT_ANSWERS."""
        self._answers = dict([*self._answers.items(), (key, answer)][-KEPT_ANSWERS:])

    def _state(self) -> TargetState:
        return TargetState(**{name: getattr(self, f"_{name}") for name in TargetState.model_fields})

    def _restore(self, state: TargetState) -> None:
        for name in TargetState.model_fields:
            setattr(self, f"_{name}", getattr(state, name))

    def _step(self, step: str, **data) -> TargetStep:
        return TargetStep(task_id=self._run.task_id, uscc=self._run.uscc, step=step, at=workflow.now(), **data)

    def _set_stage(self, stage: Stage, initial: bool = False) -> None:
        self._stage = stage
        attributes = [STAGE.value_set(stage.value)]
        if initial:
            assert self._ctx
            attributes += [TASK_ID.value_set(self._run.task_id), UNIT.value_set(self._ctx.unit),
                           REGION.value_set(self._ctx.region), PLAN_YEAR.value_set(self._run.plan_year),
                           OVERDUE.value_set(False)]
        workflow.upsert_search_attributes(attributes)

    def _remember(self, verb: str, command) -> None:
        self._seq += 1
        self._last_command = command_text(verb, command)

    def _standing(self) -> results.Standing:
        return results.Standing(stage=self._stage, ctx=self._ctx, team=frozenset(self._team_ids()),
                                cancel=self._cancel, result=self._result, recheck=self._recheck)

    def _team_ids(self) -> set[str]:
        return {i for t in self._teams for i in t.inspectors}

    def _unstaffed_units(self) -> list[str]:
        assert self._ctx
        staffed = {t.unit for t in self._teams}
        return [u for u in self._ctx.unstaffed_units if u not in staffed]
