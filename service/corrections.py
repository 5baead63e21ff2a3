"""A correction (更正) of a published result, given with a reason by a supervisor of its unit, who approves it.

The n-th correction of a target is the workflow correction/{task_id}/{uscc}/{n} (REJECT_DUPLICATE): it
happens once. The same command sent again while its workflow runs is answered by that workflow; a
different one is refused. The workflow judges the approver (a supervisor of the result's unit) again."""
from __future__ import annotations

from dataclasses import dataclass

from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain import access
from domain.access import Actor
from domain.messages.public import CorrectionRun
from runtime.context import Context
from service import gateway
from service.errors import NotFound, Refused
from service.identity import require
from store.register import corrections, result_publication
from workflows.common import TASK_QUEUE
from workflows.correction import CorrectionWorkflow, correction_workflow_id

REFUSED = "refused: "


@dataclass(frozen=True)
class Corrected:
    workflow_id: str
    n: int
    already_started: bool  # the same correction was started before (a retried command)
    message: str


async def correct(ctx: Context, actor: Actor, task_id: str, uscc: str, *, category: str | None, note: str | None,
                  reason: str, request_key: str | None = None) -> Corrected:
    """The actor, a supervisor of the result's unit, gives the correction and so approves it. `request_key`: the
    door's idempotency key; a retry of a correction already published under it is answered by that one."""
    with ctx.engine().connect() as connection:
        published = result_publication(connection, task_id, uscc)
        if published is None:
            raise NotFound(f"no published result of {uscc} in task {task_id} (never published, or withdrawn)")
        require(access.may_decide_publication(actor, published["unit"]))
        n = len(corrections(connection, task_id, uscc)) + 1
    run = gateway.build(CorrectionRun, task_id=task_id, uscc=uscc, n=n, category=category, note=note, reason=reason,
                        approver=actor.id, actor=actor.id, auth_method=actor.method,
                        request=gateway.keyed(request_key) if request_key else None)
    client = await ctx.client()
    if run.request and n > 1:
        last = gateway.client_handle(client, CorrectionWorkflow.run, correction_workflow_id(task_id, uscc, n - 1))
        if _same(await gateway.started_with(client, last, CorrectionRun), run):
            return await _outcome(last, n - 1, True, task_id, uscc)
    workflow_id = correction_workflow_id(task_id, uscc, n)
    try:
        handle = await client.start_workflow(CorrectionWorkflow.run, run, id=workflow_id, task_queue=TASK_QUEUE,
                                             id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        started_before = False
    except WorkflowAlreadyStartedError:
        handle, started_before = gateway.client_handle(client, CorrectionWorkflow.run, workflow_id), True
        if await gateway.started_with(client, handle, CorrectionRun) != run:
            raise Refused(f"correction {n} of {uscc} in task {task_id} was started meanwhile with other "
                          "fields; read the register and send yours again") from None
    return await _outcome(handle, n, started_before, task_id, uscc)


def _same(earlier: CorrectionRun | None, run: CorrectionRun) -> bool:
    """The earlier correction is this one, sent before under the same key."""
    return earlier is not None and earlier.model_copy(update={"n": run.n}) == run


async def _outcome(handle, n: int, started_before: bool, task_id: str, uscc: str) -> Corrected:
    outcome = await handle.result()
    if outcome.startswith(REFUSED):
        raise Refused(outcome.removeprefix(REFUSED))
    return Corrected(handle.id, n, started_before, f"correction {n} of {uscc} in task {task_id} published")
