"""The planner's commands on a task's draw: a targeted entity, the entropy value, a redraw (once approved)."""
from __future__ import annotations

from temporalio.client import Client

from domain.access import Actor
from domain.commands import command_key
from domain.draw import DrawError, check_entropy_value
from domain.messages.task import EntropyEntry, Redraw, TargetedEntity
from domain.stages import Stage
from domain.uscc import uscc_problem
from runtime.context import Context
from service import gateway
from service.errors import Invalid, NotFound
from store.common import NotFound as StoreNotFound
from store.directory import entity_name
from store.draws import draw
from workflows.common import task_workflow_id
from workflows.task import InspectionTaskWorkflow


def _handle(client: Client, task_id: str):
    return client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(task_id))


async def _send(client: Client, task_id: str, verb: str, method, command) -> str:
    return await gateway.update(_handle(client, task_id), method, command, what=f"task {task_id}",
                                update_id=command_key(verb, command))


async def add_targeted_entity(ctx: Context, actor: Actor, task_id: str, uscc: str,
                              reason: str, legal_basis: str | None = None) -> str:
    """The entity inspected in the task; one the frequency cap excludes (R12, R14) needs `legal_basis`, the law
    requiring the inspection, or the task refuses it naming the entity and the rule."""
    problem = uscc_problem(uscc)
    if problem:
        raise Invalid(f"USCC {uscc!r}: {problem}")
    with ctx.engine().connect() as connection:
        if not entity_name(connection, uscc):
            raise NotFound(f"USCC {uscc} is not in the entity directory")
    return await _send(await ctx.client(), task_id, "target", InspectionTaskWorkflow.add_target,
                       gateway.build(TargetedEntity, uscc=uscc, reason=reason, legal_basis=legal_basis))


async def enter_entropy(ctx: Context, actor: Actor, task_id: str, value: str) -> str:
    """The value the task's announced entropy source published: checked against that source first."""
    client = await ctx.client()
    status = await gateway.query(_handle(client, task_id), InspectionTaskWorkflow.status, what=f"task {task_id}")
    try:
        with ctx.engine().connect() as connection:
            announced = draw(connection, task_id, status.draw_seq)
    except StoreNotFound:  # not announced yet: the workflow refuses, naming its stage
        announced = None
    if announced is not None:
        try:
            check_entropy_value(announced.entropy_source, value)
        except DrawError as error:
            raise Invalid(str(error)) from None
    return await _send(client, task_id, "entropy", InspectionTaskWorkflow.enter_entropy,
                       gateway.build(EntropyEntry, value=value))


async def stage(ctx: Context, task_id: str) -> Stage:
    status = await gateway.query(_handle(await ctx.client(), task_id), InspectionTaskWorkflow.status,
                                 what=f"task {task_id}")
    return status.stage


async def redraw(ctx: Context, task_id: str, redraw: Redraw, *, update_id: str) -> str:
    """Carry out an approved redraw (service.approvals: the supervisor's act, under the request's update id)."""
    return await gateway.update(_handle(await ctx.client(), task_id), InspectionTaskWorkflow.redraw, redraw,
                                what=f"task {task_id}", update_id=update_id)
