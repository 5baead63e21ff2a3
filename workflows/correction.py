"""A correction (更正) of a published result: the target's workflow has closed, so each correction is a
workflow of its own (correction/{task_id}/{uscc}/{n}, started with REJECT_DUPLICATE: the n-th correction
happens once). It checks the result is published and the approver is a supervisor of its unit, then
publishes the correction beside the original, which the register keeps."""
from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.public_register import RegisterActivities
    from domain.messages.public import CorrectionRun, Published, RegisterStep
    from workflows.common import LIGHT


def correction_workflow_id(task_id: str, uscc: str, n: int) -> str:
    return f"correction/{task_id}/{uscc}/{n}"


@workflow.defn
class CorrectionWorkflow:
    @workflow.run
    async def run(self, run: CorrectionRun) -> str:
        """"corrected", or "refused: <why>" (nothing published)."""
        published: Published = await workflow.execute_activity_method(
            RegisterActivities.published_result, self._step("check", run), **LIGHT)
        refusal = published.refusal
        if refusal is None and run.approver not in published.supervisors:
            refusal = f"{run.approver} is not a supervisor of the result's unit and cannot approve its correction"
        if refusal is not None:
            return f"refused: {refusal}"
        await workflow.execute_activity_method(
            RegisterActivities.publish_correction, self._step("correction", run), **LIGHT)
        return "corrected"

    @staticmethod
    def _step(step: str, run: CorrectionRun) -> RegisterStep:
        return RegisterStep(step=step, task_id=run.task_id, uscc=run.uscc, at=workflow.now(), correction=run)
