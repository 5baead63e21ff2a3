"""Stop-publication (停止公示, 信用修复; R27): an entity applies (staff of the result's unit record the application,
the entity has no account), a supervisor of the result's unit decides.

Until the province sets its minimum publication period (SPOTCHECK_STOP_PUBLICATION_MIN_DAYS) every
application is refused with that reason, here before any workflow starts, and by the workflow too."""
from __future__ import annotations

from temporalio.exceptions import WorkflowAlreadyStartedError

from domain import access
from domain.access import Actor
from domain.messages.public import StopDecision, StopPublicationRun, StopPublicationStatus
from runtime.context import Context
from service import gateway
from service.errors import NotFound, Refused
from service.identity import require
from store.register import result_publication
from workflows.common import TASK_QUEUE
from workflows.stop_publication import NO_PERIOD, StopPublicationWorkflow, stop_publication_workflow_id


def _what(task_id: str, uscc: str) -> str:
    return f"stop-publication application of {uscc} in task {task_id}"


def _unit(ctx: Context, task_id: str, uscc: str) -> str:
    with ctx.engine().connect() as connection:
        published = result_publication(connection, task_id, uscc)
    if published is None:
        raise NotFound(f"no published result of {uscc} in task {task_id} (never published, or withdrawn)")
    return published["unit"]


async def apply(ctx: Context, actor: Actor, task_id: str, uscc: str, *, applicant: str, grounds: str,
                request_key: str | None = None) -> str:
    """Record the entity's application, as staff of the result's unit received it (one at a time per result; a
    rejected entity may apply again). `request_key`: the door's idempotency key; its retry is not a second one."""
    require(access.may_record_application(actor, _unit(ctx, task_id, uscc)))
    try:
        min_days = ctx.settings.stop_publication_min_days
    except ValueError as bad:
        raise Refused(f"stop-publication is not allowed: {bad}") from None
    if min_days is None:
        raise Refused(NO_PERIOD)
    run = gateway.build(StopPublicationRun, task_id=task_id, uscc=uscc, applicant=applicant, grounds=grounds,
                        min_days=min_days, actor=actor.id, auth_method=actor.method,
                        request=gateway.keyed(request_key) if request_key else None)
    workflow_id = stop_publication_workflow_id(task_id, uscc)
    recorded = f"application recorded ({workflow_id}); the unit decides"
    client = await ctx.client()
    handle = gateway.client_handle(client, StopPublicationWorkflow.run, workflow_id)
    if run.request and await gateway.started_with(client, handle, StopPublicationRun) == run:
        return recorded  # this request's own application, sent before
    try:
        await client.start_workflow(StopPublicationWorkflow.run, run, id=workflow_id, task_queue=TASK_QUEUE)
    except WorkflowAlreadyStartedError:
        raise Refused(f"an application of {uscc} in task {task_id} awaits its decision ({workflow_id})") from None
    return recorded


async def decide(ctx: Context, actor: Actor, task_id: str, uscc: str, *, approve: bool, reason: str = "",
                 request_key: str | None = None) -> str:
    """A supervisor of the result's unit decides, as themselves."""
    require(access.may_decide_publication(actor, _unit(ctx, task_id, uscc)))
    decision = gateway.build(StopDecision, decided_by=actor.id, approve=approve, reason=reason,
                             actor=actor.id, auth_method=actor.method)
    handle = gateway.client_handle(await ctx.client(), StopPublicationWorkflow.run,
                                   stop_publication_workflow_id(task_id, uscc))
    return await gateway.update(handle, StopPublicationWorkflow.decide, decision, what=_what(task_id, uscc),
                                update_id=f"decide-{gateway.keyed(request_key)}" if request_key else None)


async def status(ctx: Context, task_id: str, uscc: str) -> StopPublicationStatus:
    handle = gateway.client_handle(await ctx.client(), StopPublicationWorkflow.run,
                                   stop_publication_workflow_id(task_id, uscc))
    return await gateway.query(handle, StopPublicationWorkflow.status, what=_what(task_id, uscc))
