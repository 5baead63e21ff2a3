"""Which targets a caller may see, and may act on: the role table (domain/access.py) over the directory as it
stands now. A target outside the caller's scope is not found (404): a stranger cannot learn which exist."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request

from api.problems import Problem
from domain import access
from domain.access import FIELD_ROLES, Actor, Decision
from store import scope


@dataclass(frozen=True)
class Seen:
    """A target the caller may see, with what the rules of its actions need."""

    target: scope.TargetScope
    units_above: dict[str, list[str]]  # each of the target's units: the units above it


def _sees(actor: Actor, seen: Seen) -> bool:
    target = seen.target
    return (("inspector" in actor.roles and actor.id in target.team)
            or ("reviewer" in actor.roles and actor.unit == target.unit)
            or any(access.may_assign(actor, unit, seen.units_above[unit]) for unit in target.units))


def _load(request: Request, task_id: str, uscc: str) -> Seen | None:
    with request.app.state.ctx.engine().connect() as connection:
        target = scope.target_scope(connection, task_id, uscc)
        if target is None:
            return None
        return Seen(target, {unit: scope.units_above(connection, unit) for unit in target.units})


async def target(request: Request, actor: Actor, task_id: str, uscc: str, role: str | None = None) -> Seen:
    """The target if the caller may see it; `role`: the one the action needs, refused (403) before any lookup."""
    needed = {role} if role else FIELD_ROLES
    if not needed & actor.roles:
        raise Problem(403, f"{actor.id} holds none of the roles {', '.join(sorted(needed))}", rule=access.ROLE)
    seen = await asyncio.to_thread(_load, request, task_id, uscc)
    if seen is None or not _sees(actor, seen):
        raise Problem(404, f"no target {uscc} in task {task_id} within your scope", rule="not-found")
    return seen


def require(decision: Decision) -> None:
    if not decision:
        raise Problem(403, decision.refusal.reason, rule=decision.refusal.rule)
