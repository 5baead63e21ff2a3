"""An application to stop publishing a result (停止公示, 信用修复; R27): stop-publication/{task_id}/{uscc}.

The entity applies; a supervisor of the result's unit decides (an update); an approved result leaves
the public pages once the minimum period has passed since its publication. The period is the
province's (runtime.config), in calendar days like the other publication periods (S8: months, years);
unset, every application is refused with that reason. One application at a time per result."""
from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.public_register import RegisterActivities
    from domain.messages.public import Published, RegisterStep, StopDecision, StopPublicationRun, StopPublicationStatus
    from workflows.common import LIGHT, time_left

NO_PERIOD = ("stop-publication is not allowed: the minimum publication period is not set "
             "(SPOTCHECK_STOP_PUBLICATION_MIN_DAYS, a per-province setting; R27)")


def stop_publication_workflow_id(task_id: str, uscc: str) -> str:
    return f"stop-publication/{task_id}/{uscc}"


@workflow.defn
class StopPublicationWorkflow:
    @workflow.init
    def __init__(self, run: StopPublicationRun) -> None:
        self._run = run
        self._applied_at = workflow.now()
        self._state = "applied"
        self._refusal: str | None = None
        self._published: Published | None = None
        self._eligible_from: datetime | None = None
        self._decision: StopDecision | None = None
        self._decided_at: datetime | None = None
        self._withdrawn_at: datetime | None = None

    @workflow.run
    async def run(self, run: StopPublicationRun) -> str:
        """"withdrawn", "rejected", or "refused: <why>"."""
        self._published = await workflow.execute_activity_method(
            RegisterActivities.published_result, self._step("check"), **LIGHT)
        self._refusal = NO_PERIOD if run.min_days is None else self._published.refusal
        if self._refusal is None:
            assert self._published.published_at and run.min_days is not None
            self._eligible_from = self._published.published_at + timedelta(days=run.min_days)
        await workflow.execute_activity_method(
            RegisterActivities.record_application, self._step("application"), **LIGHT)
        if self._refusal is not None:
            self._state = "refused"
            return f"refused: {self._refusal}"

        await workflow.wait_condition(lambda: self._decision is not None)
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self._decision and self._eligible_from
        if not self._decision.approve:
            return "rejected"
        remaining = time_left(self._eligible_from)
        if remaining is not None:
            await workflow.sleep(remaining, summary="minimum publication period")
        now = workflow.now()
        await workflow.execute_activity_method(RegisterActivities.withdraw_result, self._step("withdrawal"), **LIGHT)
        self._state, self._withdrawn_at = "withdrawn", now
        return "withdrawn"

    @workflow.update
    async def decide(self, decision: StopDecision) -> str:
        self._decision, self._decided_at = decision, workflow.now()
        self._state = "approved" if decision.approve else "rejected"
        await workflow.execute_activity_method(
            RegisterActivities.record_stop_decision, self._step("decision", decision=decision), **LIGHT)
        if not decision.approve:
            return "rejected; the result stays published"
        assert self._eligible_from
        return f"approved; the result leaves the public pages from {self._eligible_from.isoformat()}"

    @decide.validator
    def _validate_decision(self, decision: StopDecision) -> None:
        if self._refusal is not None:
            raise ApplicationError(f"this application was refused and takes no decision: {self._refusal}")
        if self._published is None or self._eligible_from is None:
            raise ApplicationError("the application is still being recorded; send the decision again in a moment")
        if self._decision is not None:
            raise ApplicationError(f"already decided by {self._decision.decided_by}")
        if decision.decided_by not in self._published.supervisors:
            raise ApplicationError(f"{decision.decided_by} is not a supervisor of the result's unit and cannot decide")

    @workflow.query
    def status(self) -> StopPublicationStatus:
        return StopPublicationStatus(
            state=self._state, applied_at=self._applied_at, eligible_from=self._eligible_from,
            decided_by=self._decision.decided_by if self._decision else None, decided_at=self._decided_at,
            withdrawn_at=self._withdrawn_at, refusal=self._refusal)

    def _step(self, step: str, decision: StopDecision | None = None) -> RegisterStep:
        return RegisterStep(step=step, task_id=self._run.task_id, uscc=self._run.uscc, at=workflow.now(),
                            application=self._run, decision=decision, eligible_from=self._eligible_from,
                            decided_at=self._decided_at, refusal=self._refusal)
