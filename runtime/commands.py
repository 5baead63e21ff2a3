"""Human steps sent to the workflows, the same way for the command line, the demo and the tests.

An update keeps one id across the client's own retries (the id names the target's command count
and the command's content), so a retry of an accepted update is answered as accepted; a command
identical to the last one accepted for that target is reported as already recorded, not refused.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import BaseModel
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from domain.records import TargetStatus
from workflows.common import target_workflow_id
from workflows.target import TargetInspectionWorkflow

VERBS = {
    "check": TargetInspectionWorkflow.record_check,
    "result": TargetInspectionWorkflow.enter_result,
    "review": TargetInspectionWorkflow.review_result,
    "assign": TargetInspectionWorkflow.assign_team,
    "recheck": TargetInspectionWorkflow.record_recheck,
}


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    already_recorded: bool
    message: str


class CommandRefused(Exception):
    """The workflow's validator refused the command: nothing was recorded."""


def reasons(failure: BaseException | None) -> str:
    """The messages along a failure's cause chain: "Failed decoding arguments" alone names nothing."""
    messages: list[str] = []
    while failure is not None:
        message = getattr(failure, "message", None) or str(failure)
        if message and message not in messages:
            messages.append(message)
        failure = failure.__cause__ or getattr(failure, "cause", None)
    return ": ".join(messages)


async def target_status(client: Client, task_id: str, uscc: str) -> TargetStatus:
    handle = client.get_workflow_handle_for(TargetInspectionWorkflow.run, target_workflow_id(task_id, uscc))
    return await handle.query(TargetInspectionWorkflow.status)


async def send(client: Client, task_id: str, uscc: str, verb: str, command: BaseModel) -> Outcome:
    handle = client.get_workflow_handle_for(TargetInspectionWorkflow.run, target_workflow_id(task_id, uscc))
    try:
        status = await handle.query(TargetInspectionWorkflow.status)
    except RPCError as error:
        raise CommandRefused(f"no inspection of {uscc} in task {task_id} is running ({error.message})") from error
    canonical = f"{verb}:{command.model_dump_json()}"
    if status.last_command == canonical:
        return Outcome(accepted=True, already_recorded=True, message=f"already recorded: {verb}")
    update_id = f"{verb}-{status.commands}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"
    try:
        message = await handle.execute_update(VERBS[verb], command, id=update_id)
    except WorkflowUpdateFailedError as error:
        raise CommandRefused(reasons(error.cause)) from error
    return Outcome(accepted=True, already_recorded=False, message=message)
