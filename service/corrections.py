"""A correction (更正) of a published result, by its unit, with a reason and an approver.

The n-th correction of a target is the workflow correction/{task_id}/{uscc}/{n} (REJECT_DUPLICATE): it
happens once. The same command sent again while its workflow runs is answered by that workflow; a
different one is refused. The workflow judges the approver (a supervisor of the result's unit)."""
from __future__ import annotations

from dataclasses import dataclass

from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.access import Actor
from domain.messages.public import CorrectionRun
from runtime.context import Context
from service import gateway
from service.errors import NotFound, Refused
from store.register import corrections, result_publication
from workflows.common import TASK_QUEUE
from workflows.correction import CorrectionWorkflow, correction_workflow_id

REFUSED = "refused: "


async def _started_with(client, handle) -> CorrectionRun:
    """The correction a running or finished correction workflow was started with."""
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    [run] = await client.data_converter.decode(started, [CorrectionRun])
    return run


@dataclass(frozen=True)
class Corrected:
    workflow_id: str
    n: int
    already_started: bool  # the same correction was started before (a retried command)
    message: str


async def correct(ctx: Context, actor: Actor, task_id: str, uscc: str, *, category: str | None, note: str | None,
                  reason: str, approver: str) -> Corrected:
    with ctx.engine().connect() as connection:
        if result_publication(connection, task_id, uscc) is None:
            raise NotFound(f"no published result of {uscc} in task {task_id} (never published, or withdrawn)")
        n = len(corrections(connection, task_id, uscc)) + 1
    run = gateway.build(CorrectionRun, task_id=task_id, uscc=uscc, n=n, category=category, note=note, reason=reason,
                        approver=approver, actor=actor.id, auth_method=actor.method)
    client = await ctx.client()
    workflow_id = correction_workflow_id(task_id, uscc, n)
    try:
        handle = await client.start_workflow(CorrectionWorkflow.run, run, id=workflow_id, task_queue=TASK_QUEUE,
                                             id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        started_before = False
    except WorkflowAlreadyStartedError:
        handle, started_before = client.get_workflow_handle_for(CorrectionWorkflow.run, workflow_id), True
        if await _started_with(client, handle) != run:
            raise Refused(f"correction {n} of {uscc} in task {task_id} was started meanwhile with other "
                          "fields; read the register and send yours again") from None
    outcome = await handle.result()
    if outcome.startswith(REFUSED):
        raise Refused(outcome.removeprefix(REFUSED))
    return Corrected(workflow_id, n, started_before, f"correction {n} of {uscc} in task {task_id} published")
