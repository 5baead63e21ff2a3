"""The human steps on one target: field signals, check, result, review, assignment, re-check.

Each takes the acting identity; the record the workflow receives names that actor, never a door's
field. The workflow's validators judge the rules (team, reviewer not on the team, stage), so no door
can skip them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from pydantic import BaseModel
from temporalio.client import Client

from domain.access import Actor
from domain.commands import command_key, command_text
from domain.messages.target import (
    CheckRecord,
    FieldSignal,
    ManualAssignment,
    Recheck,
    ResultEntry,
    Review,
    TargetStatus,
)
from runtime.context import Context
from service import gateway
from service.errors import NotFound, Refused
from store.directory import unknown_inspectors
from workflows.common import target_workflow_id
from workflows.target import TargetInspectionWorkflow

UPDATES: dict[str, Callable] = {
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


def _what(task_id: str, uscc: str) -> str:
    return f"inspection of {uscc} in task {task_id}"


def _handle(client: Client, task_id: str, uscc: str):
    return client.get_workflow_handle_for(TargetInspectionWorkflow.run, target_workflow_id(task_id, uscc))


async def status(client: Client, task_id: str, uscc: str) -> TargetStatus:
    return await gateway.query(_handle(client, task_id, uscc), TargetInspectionWorkflow.status,
                               what=_what(task_id, uscc))


async def send(client: Client, task_id: str, uscc: str, verb: str, command: BaseModel,
               request_key: str | None = None) -> Outcome:
    """One human step: the same command as the last one accepted is answered as already recorded.

    `request_key`: the door's idempotency key (the API's Idempotency-Key, scoped to its user); the update
    id is then derived from it, so a request retried while its first attempt is still in flight, or after
    the door died before answering, reaches the workflow as the same update and takes effect once.
    """
    handle = _handle(client, task_id, uscc)
    current = await gateway.query(handle, TargetInspectionWorkflow.status, what=_what(task_id, uscc))
    if current.last_command == command_text(verb, command):
        return Outcome(accepted=True, already_recorded=True, message=f"already recorded: {verb}")
    update_id = command_key(verb, command, seq=current.commands) if request_key is None else \
        f"{command_key(verb, command)}-{hashlib.sha256(request_key.encode()).hexdigest()[:16]}"
    message = await gateway.update(handle, UPDATES[verb], command, what=_what(task_id, uscc), update_id=update_id)
    return Outcome(accepted=True, already_recorded=False, message=message)


def _by(actor: Actor) -> dict[str, str]:
    """Who acted and how, as every human step records it."""
    return {"actor": actor.id, "auth_method": actor.method}


def _in_directory(ctx: Context, inspectors: list[str], unit: str | None = None) -> None:
    """Ids a command names must be inspectors in the directory (of `unit`, when given)."""
    with ctx.engine().connect() as connection:
        unknown = unknown_inspectors(connection, inspectors, datetime.now(timezone.utc), unit)
    if unknown:
        where = f"inspectors of unit {unit}" if unit else "inspectors"
        raise NotFound(f"not among the {where} in the directory: {', '.join(unknown)}; "
                       "name an inspector listed by `spotcheck import inspectors`")


async def field_signal(ctx: Context, actor: Actor, task_id: str, uscc: str, kind: str) -> str:
    """Accepted or arrived: logged in the history, gates nothing; only from an inspector of the target's team."""
    signal = gateway.build(FieldSignal, kind=kind, inspector=actor.id, **_by(actor))
    _in_directory(ctx, [signal.inspector])
    handle = _handle(await ctx.client(), task_id, uscc)
    current = await gateway.query(handle, TargetInspectionWorkflow.status, what=_what(task_id, uscc))
    if not any(signal.inspector in team.inspectors for team in current.teams):
        raise Refused(f"{signal.inspector} is not on the team of {_what(task_id, uscc)}; only the team signals")
    await gateway.signal(handle, TargetInspectionWorkflow.field_signal, signal, what=_what(task_id, uscc))
    return f"{kind} logged"


async def record_check(ctx: Context, actor: Actor, task_id: str, uscc: str, *, members: list[str], method: str,
                       certificates_shown: bool, evidence: list[str], request_key: str | None = None) -> Outcome:
    command = gateway.build(CheckRecord, inspectors=members, method=method, certificates_shown=certificates_shown,
                            evidence=evidence, **_by(actor))
    return await send(await ctx.client(), task_id, uscc, "check", command, request_key)


async def enter_result(ctx: Context, actor: Actor, task_id: str, uscc: str, *, category: str,
                       findings: dict[str, str], note: str, request_key: str | None = None) -> Outcome:
    command = gateway.build(ResultEntry, inspector=actor.id, category=category, note=note, findings=findings,
                            **_by(actor))
    return await send(await ctx.client(), task_id, uscc, "result", command, request_key)


async def review_result(ctx: Context, actor: Actor, task_id: str, uscc: str, *, approve: bool,
                        note: str, request_key: str | None = None) -> Outcome:
    command = gateway.build(Review, reviewer=actor.id, approve=approve, note=note, **_by(actor))
    return await send(await ctx.client(), task_id, uscc, "review", command, request_key)


async def assign_team(ctx: Context, actor: Actor, task_id: str, uscc: str, *, unit: str, inspectors: list[str],
                      reason: str, request_key: str | None = None) -> Outcome:
    command = gateway.build(ManualAssignment, unit=unit, inspectors=inspectors, by=actor.id, reason=reason,
                            **_by(actor))
    _in_directory(ctx, command.inspectors, command.unit)
    return await send(await ctx.client(), task_id, uscc, "assign", command, request_key)


async def record_recheck(ctx: Context, actor: Actor, task_id: str, uscc: str, *, passed: bool,
                         note: str, request_key: str | None = None) -> Outcome:
    command = gateway.build(Recheck, inspector=actor.id, passed=passed, note=note, **_by(actor))
    return await send(await ctx.client(), task_id, uscc, "recheck", command, request_key)
