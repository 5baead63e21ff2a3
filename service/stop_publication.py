"""Stop-publication (停止公示, 信用修复; R27): an entity applies, a supervisor of the result's unit decides.

Until the province sets its minimum publication period (SPOTCHECK_STOP_PUBLICATION_MIN_DAYS) every
application is refused with that reason, here before any workflow starts, and by the workflow too."""
from __future__ import annotations

from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.access import Actor
from domain.messages.public import StopDecision, StopPublicationRun, StopPublicationStatus
from runtime.context import Context
from service import gateway
from service.errors import NotFound, Refused
from store.register import result_publication
from workflows.common import TASK_QUEUE
from workflows.stop_publication import NO_PERIOD, StopPublicationWorkflow, stop_publication_workflow_id


def _what(task_id: str, uscc: str) -> str:
    return f"stop-publication application of {uscc} in task {task_id}"


async def apply(ctx: Context, actor: Actor, task_id: str, uscc: str, *, applicant: str, grounds: str) -> str:
    """Start the application (one at a time per result; a rejected entity may apply again)."""
    try:
        min_days = ctx.settings.stop_publication_min_days
    except ValueError as bad:
        raise Refused(f"stop-publication is not allowed: {bad}") from None
    if min_days is None:
        raise Refused(NO_PERIOD)
    with ctx.engine().connect() as connection:
        if result_publication(connection, task_id, uscc) is None:
            raise NotFound(f"no published result of {uscc} in task {task_id} (never published, or withdrawn)")
    run = gateway.build(StopPublicationRun, task_id=task_id, uscc=uscc, applicant=applicant, grounds=grounds,
                        min_days=min_days, actor=actor.id, auth_method=actor.method)
    workflow_id = stop_publication_workflow_id(task_id, uscc)
    try:
        await (await ctx.client()).start_workflow(StopPublicationWorkflow.run, run, id=workflow_id,
                                                  task_queue=TASK_QUEUE)
    except WorkflowAlreadyStartedError:
        raise Refused(f"an application of {uscc} in task {task_id} awaits its decision ({workflow_id})") from None
    return f"application recorded ({workflow_id}); the unit decides"


async def decide(ctx: Context, actor: Actor, task_id: str, uscc: str, *, approve: bool, decided_by: str,
                 reason: str = "") -> str:
    decision = gateway.build(StopDecision, decided_by=decided_by, approve=approve, reason=reason,
                             actor=actor.id, auth_method=actor.method)
    handle = gateway.client_handle(await ctx.client(), StopPublicationWorkflow.run,
                                   stop_publication_workflow_id(task_id, uscc))
    return await gateway.update(handle, StopPublicationWorkflow.decide, decision, what=_what(task_id, uscc))


async def status(ctx: Context, task_id: str, uscc: str) -> StopPublicationStatus:
    handle = gateway.client_handle(await ctx.client(), StopPublicationWorkflow.run,
                                   stop_publication_workflow_id(task_id, uscc))
    return await gateway.query(handle, StopPublicationWorkflow.status, what=_what(task_id, uscc))
