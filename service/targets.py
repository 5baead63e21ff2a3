"""The human steps on one target: field signals, check, result, review, assignment, re-check.

Each takes the acting identity; the record the workflow receives names that actor, never a door's
field. The workflow's validators judge the rules (team, reviewer not on the team, stage), so no door
can skip them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from pydantic import BaseModel
from temporalio.client import Client

from domain import access
from domain.access import Actor, Candidate
from domain.commands import command_key, command_text
from domain.dispatch import PoolInspector
from domain.messages.target import (
    CheckRecord,
    FieldSignal,
    ManualAssignment,
    Recheck,
    ResultEntry,
    Review,
    TargetStatus,
    Withholding,
    WithholdingDecision,
)
from domain.workdays import SHANGHAI
from runtime.context import Context
from service import gateway
from service.errors import NotFound, Refused
from store import directory
from store.common import NotFound as StoreNotFound
from store.directory import unknown_inspectors
from store.targets import team_loads
from workflows.common import target_workflow_id
from workflows.target import TargetInspectionWorkflow

UPDATES: dict[str, Callable] = {
    "check": TargetInspectionWorkflow.record_check,
    "result": TargetInspectionWorkflow.enter_result,
    "review": TargetInspectionWorkflow.review_result,
    "assign": TargetInspectionWorkflow.assign_team,
    "recheck": TargetInspectionWorkflow.record_recheck,
    "withhold": TargetInspectionWorkflow.mark_withholding,
    "withhold-decision": TargetInspectionWorkflow.decide_withholding,
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
    if request_key is not None:
        # The workflow keeps the answers of its last few update ids across its runs: a retry whose first attempt
        # took effect gets that attempt's answer, and sends nothing.
        update_id = f"{command_key(verb, command)}-{gateway.keyed(request_key)}"
        answered = await gateway.query(handle, TargetInspectionWorkflow.answer, update_id, what=_what(task_id, uscc))
        if answered is not None:
            return Outcome(accepted=True, already_recorded=False, message=answered)
    current = await gateway.query(handle, TargetInspectionWorkflow.status, what=_what(task_id, uscc))
    repeated = current.last_command == command_text(verb, command)
    already = Outcome(accepted=True, already_recorded=True, message=f"already recorded: {verb}")
    if request_key is None:
        if repeated:
            return already
        update_id = command_key(verb, command, seq=current.commands)
    try:
        # A keyed repeat is sent all the same: it may be this key's own update still under way, which Temporal
        # answers when it finishes; the same command under another key is refused, and recorded already.
        message = await gateway.update(handle, UPDATES[verb], command, what=_what(task_id, uscc), update_id=update_id)
    except Refused:
        if repeated:
            return already
        raise
    return Outcome(accepted=True, already_recorded=False, message=message)


def _by(actor: Actor) -> dict[str, str]:
    """Who acted and how, as every human step records it."""
    return {"actor": actor.id, "auth_method": actor.method}


def _in_directory(ctx: Context, inspector: str) -> None:
    """The signalling inspector must be in the directory."""
    with ctx.engine().connect() as connection:
        unknown = unknown_inspectors(connection, [inspector], datetime.now(timezone.utc))
    if unknown:
        raise NotFound(f"{inspector} is not among the inspectors in the directory; "
                       "name an inspector listed by `spotcheck import inspectors`")


async def field_signal(ctx: Context, actor: Actor, task_id: str, uscc: str, kind: str,
                       request_key: str | None = None) -> str:
    """Accepted or arrived: logged in the history, gates nothing; only from an inspector of the target's team.
    `request_key` (the door's idempotency key): a retry of a signal the target logged is not logged again."""
    request = None if request_key is None else f"signal-{kind}-{gateway.keyed(request_key)}"
    signal = gateway.build(FieldSignal, kind=kind, inspector=actor.id, request=request, **_by(actor))
    _in_directory(ctx, signal.inspector)
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


def assignment_refusal(ctx: Context, task_id: str, uscc: str, unit: str, inspectors: list[str],
                       load_cap_override: str) -> Refused | None:
    """The draw's rules (domain.access.assignment_breaches) against the directory as it stands now."""
    now = datetime.now(timezone.utc)
    with ctx.engine().connect() as connection:
        try:
            line, _ = directory.task_line(connection, task_id)
        except StoreNotFound:
            raise NotFound(f"no task {task_id}") from None
        required = {item["qualification"] for item in directory.items_of(connection, line["items"], now)}
        records = directory.people(connection, inspectors, now)
        loads = team_loads(connection, task_id, unit, besides=uscc)
    candidates = {r["inspector_id"]: Candidate(
        inspector=PoolInspector(inspector_id=r["inspector_id"], status=r["status"], cert_expiry=r["cert_expiry"],
                                qualifications=tuple(directory.split(r["qualifications"])),
                                recusal=tuple(directory.split(r["recusal"]))),
        unit=r["unit_code"], roles=frozenset(directory.split(r["roles"])), load=loads.get(r["inspector_id"], 0))
        for r in records}
    breaches = access.assignment_breaches(
        inspectors, candidates, unit=unit, uscc=uscc, required=required, as_of=now.astimezone(SHANGHAI).date(),
        load_cap=int(line["load_cap"]), override_reason=load_cap_override)
    if not breaches:
        return None
    return Refused("the assignment breaks the draw's rules: "
                   + "; ".join(f"{b.reason} [{b.rule}]" for b in breaches), breaches)


async def assign_team(ctx: Context, actor: Actor, task_id: str, uscc: str, *, unit: str, inspectors: list[str],
                      reason: str, load_cap_override: str = "", request_key: str | None = None) -> Outcome:
    """A supervisor's team, held to the draw's rules; past the load cap only with a reason, recorded with it."""
    override = load_cap_override.strip()
    command = gateway.build(ManualAssignment, unit=unit, inspectors=inspectors, by=actor.id,
                            reason=f"{reason} (load cap overridden: {override})" if override else reason,
                            **_by(actor))
    if refusal := assignment_refusal(ctx, task_id, uscc, command.unit, command.inspectors, override):
        raise refusal
    return await send(await ctx.client(), task_id, uscc, "assign", command, request_key)


async def record_recheck(ctx: Context, actor: Actor, task_id: str, uscc: str, *, passed: bool,
                         note: str, request_key: str | None = None) -> Outcome:
    command = gateway.build(Recheck, inspector=actor.id, passed=passed, note=note, **_by(actor))
    return await send(await ctx.client(), task_id, uscc, "recheck", command, request_key)


async def mark_withholding(ctx: Context, actor: Actor, task_id: str, uscc: str, *, grounds: str, fields: list[str],
                           reason: str, request_key: str | None = None) -> Outcome:
    """R23: the team, a reviewer or a supervisor of the unit marks a result's fields to withhold, before approval."""
    command = gateway.build(Withholding, marked_by=actor.id, grounds=grounds, fields=fields, reason=reason,
                            **_by(actor))
    return await send(await ctx.client(), task_id, uscc, "withhold", command, request_key)


async def decide_withholding(ctx: Context, actor: Actor, task_id: str, uscc: str, *, approve: bool, note: str = "",
                             request_key: str | None = None) -> Outcome:
    """R23: a supervisor of the unit, not the one who marked it, approves or refuses withholding the fields."""
    command = gateway.build(WithholdingDecision, approver=actor.id, approve=approve, note=note, **_by(actor))
    return await send(await ctx.client(), task_id, uscc, "withhold-decision", command, request_key)
