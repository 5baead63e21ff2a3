"""Two people's acts: a planner asks for a redraw or a plan adjustment (R19, R5); a supervisor of the plan's owner
unit or of a unit above it, not the planner, approves the request, and the approval carries it out
(api.md: a redraw with an approver who is a supervisor).

Each act is its own person's, as they authenticated: no flag names the approver. The request keeps both ids; the
command the workflow receives names the approver (the actor) and the planner (`requested_by`), and the redraw's
draw record names the approver. An approval is sent under its request's update id, so a retried approval takes
effect once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from domain import access
from domain.access import Actor
from domain.messages.plan import Adjustment
from domain.messages.task import Redraw
from domain.stages import Stage
from runtime.context import Context
from service import draws, gateway, plans
from service.errors import NotFound, Refused
from service.identity import require
from store import approvals
from store.common import NotFound as StoreNotFound
from store.plans import plan_of_task, stored_plan
from store.scope import units_above

_ACTOR = {"approver", "actor", "auth_method"}  # set by the approval, not stored with the request


@dataclass(frozen=True)
class Requested:
    request_id: int
    kind: str
    subject: str  # the task (redraw) or the plan (adjust)
    owner_unit: str
    message: str


@dataclass(frozen=True)
class Approved:
    request_id: int
    kind: str
    subject: str
    requested_by: str
    approved_by: str
    message: str


def _planner(ctx: Context, actor: Actor, plan_code: str | None, what: str) -> str:
    """The plan's owner unit, once the actor is a planner of it or of a unit above it (as the directory stands)."""
    with ctx.engine().connect() as connection:
        plan = stored_plan(connection, plan_code) if plan_code else None
        if plan is None:
            raise NotFound(f"no {what} is loaded")
        require(access.may_plan(actor, plan["owner_unit"], units_above(connection, plan["owner_unit"])))
    return plan["owner_unit"]


def _record(ctx: Context, actor: Actor, kind: str, subject: str, owner: str, command, what: str) -> Requested:
    request_id = approvals.request(ctx.engine(), kind=kind, subject=subject, owner_unit=owner,
                                   command=command.model_dump(mode="json", exclude=_ACTOR),
                                   requested_by=actor.id, now=datetime.now(timezone.utc))
    return Requested(request_id, kind, subject, owner,
                     f"{kind} of {what} requested (request {request_id}); a supervisor of {owner} or a unit above, "
                     f"not you, approves it: spotcheck approve {request_id}")


async def request_redraw(ctx: Context, actor: Actor, task_id: str, *, reason: str) -> Requested:
    """A planner of the plan's owner unit (or above) asks for a redraw of a drawn, undispatched task."""
    with ctx.engine().connect() as connection:
        plan_code = plan_of_task(connection, task_id)
    owner = _planner(ctx, actor, plan_code, f"task {task_id}")
    # The command is judged now as it will be sent; the approval names its approver.
    command = gateway.build(Redraw, reason=reason, approver=actor.id, requested_by=actor.id)
    stage = await draws.stage(ctx, task_id)
    if stage != Stage.DRAWN:  # the workflow judges again when the approval comes
        raise Refused(f"a redraw is only possible after a draw and before dispatch (stage {stage.value})")
    return _record(ctx, actor, "redraw", task_id, owner, command, f"task {task_id}")


def request_adjustment(ctx: Context, actor: Actor, plan_code: str, *, reason: str,
                       add_task: tuple[bytes, str] | None = None, cancel_task: str | None = None) -> Requested:
    """A planner of the plan's owner unit (or above) asks to add a task (its file checked now) or cancel one (R5)."""
    owner = _planner(ctx, actor, plan_code, f"plan {plan_code}")
    command = plans.adjustment(ctx, plan_code, reason=reason, approver=actor.id, add_task=add_task,
                               cancel_task=cancel_task, requested_by=actor.id)
    return _record(ctx, actor, "adjust", plan_code, owner, command, f"plan {plan_code}")


async def approve(ctx: Context, actor: Actor, request_id: int) -> Approved:
    """A supervisor of the owner unit (or above), not the planner who asked, carries the request out."""
    engine = ctx.engine()
    try:
        row = approvals.get(engine, request_id)
    except StoreNotFound:
        raise NotFound(f"no approval request {request_id}") from None
    with engine.connect() as connection:
        above = units_above(connection, row["owner_unit"])
    require(access.may_approve(actor, row["requested_by"], row["owner_unit"], above))
    if row["state"] == "approved":
        if row["approved_by"] == actor.id:  # a retry of this approval
            return Approved(request_id, row["kind"], row["subject"], row["requested_by"], actor.id, row["answer"])
        raise Refused(f"request {request_id} was approved by {row['approved_by']} already")
    fields = {**approvals.command(row), "approver": actor.id, "actor": actor.id, "auth_method": actor.method}
    update_id = f"{row['kind']}-request-{request_id}"
    if row["kind"] == "redraw":
        message = await draws.redraw(ctx, row["subject"], gateway.build(Redraw, **fields), update_id=update_id)
    else:
        message = await plans.adjust_plan(ctx, row["subject"], gateway.build(Adjustment, **fields),
                                          update_id=update_id)
    approvals.approved(engine, request_id, actor.id, datetime.now(timezone.utc), message)
    return Approved(request_id, row["kind"], row["subject"], row["requested_by"], actor.id, message)


def pending(ctx: Context) -> list[dict]:
    return [dict(row) for row in approvals.pending(ctx.engine())]
