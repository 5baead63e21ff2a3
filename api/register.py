"""A result on its way to and in the public register: withholding its fields (R23) before approval, a correction
(更正) after publication, and an entity's application to stop publishing it (R27), with its decision.

Who may: marking fields to withhold, whoever sees the target in their lane (its team, a reviewer or supervisor of its
unit: the workflow judges who exactly); deciding on withholding, giving a correction and deciding on an application,
a supervisor of the target's unit (that unit only, as the workflows judge it); recording an application, staff of
the unit (the entity has no account: the unit records what it received). A correction or an application needs a
published result: without one, 404 after the role checks.
"""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field, model_validator

from api.auth import actor
from api.idempotency import mutation
from api.scope import require, target
from api.targets import Strict, outcome
from domain import access
from domain.access import Actor
from service import corrections, stop_publication, targets

router = APIRouter(prefix="/tasks/{task_id}/targets/{uscc}", tags=["register"])
Me = Annotated[Actor, Depends(actor)]


class WithholdingBody(Strict):
    grounds: Literal["state_secret", "trade_secret", "privacy"]
    fields: list[Literal["entity_name", "category", "check_date"]] = Field(min_length=1, max_length=3)
    reason: str = Field(min_length=1, max_length=500)


class Decision(Strict):
    approve: bool
    note: str = Field("", max_length=2000)


class CorrectionBody(Strict):
    category: str | None = Field(None, max_length=32)
    note: str | None = Field(None, max_length=2000)
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _changes_something(self):
        if self.category is None and self.note is None:
            raise ValueError("a correction changes the category, the note or both")
        return self


class Application(Strict):
    applicant: str = Field(min_length=1, max_length=100, description="the entity's representative, as on the "
                                                                      "application the unit received")
    grounds: str = Field(min_length=1, max_length=500)


async def _supervisor_of_unit(request: Request, me: Actor, task_id: str, uscc: str) -> None:
    seen = await target(request, me, task_id, uscc, "supervisor")
    require(access.may_decide_publication(me, seen.target.unit))


@router.post("/withholding")
async def mark_withholding(request: Request, task_id: str, uscc: str, me: Me, body: WithholdingBody):
    await target(request, me, task_id, uscc)

    async def work(key):
        return outcome(task_id, uscc, await targets.mark_withholding(
            request.app.state.ctx, me, task_id, uscc, grounds=body.grounds, fields=list(body.fields),
            reason=body.reason, request_key=key))
    return await mutation(request, me, body.model_dump(), work)


@router.post("/withholding/decision")
async def decide_withholding(request: Request, task_id: str, uscc: str, me: Me, body: Decision):
    await _supervisor_of_unit(request, me, task_id, uscc)

    async def work(key):
        return outcome(task_id, uscc, await targets.decide_withholding(
            request.app.state.ctx, me, task_id, uscc, approve=body.approve, note=body.note, request_key=key))
    return await mutation(request, me, body.model_dump(), work)


@router.post("/correction")
async def correct(request: Request, task_id: str, uscc: str, me: Me, body: CorrectionBody):
    await _supervisor_of_unit(request, me, task_id, uscc)

    async def work(key):
        done = await corrections.correct(request.app.state.ctx, me, task_id, uscc, category=body.category,
                                         note=body.note, reason=body.reason, request_key=key)
        return 200, {"task_id": task_id, "uscc": uscc, "correction": done.n, "workflow_id": done.workflow_id,
                     "message": done.message}
    return await mutation(request, me, body.model_dump(), work)


@router.post("/stop-publication", status_code=202)
async def apply_to_stop(request: Request, task_id: str, uscc: str, me: Me, body: Application):
    seen = await target(request, me, task_id, uscc)
    require(access.may_record_application(me, seen.target.unit))

    async def work(key):
        message = await stop_publication.apply(request.app.state.ctx, me, task_id, uscc, applicant=body.applicant,
                                               grounds=body.grounds, request_key=key)
        return 202, {"task_id": task_id, "uscc": uscc, "message": message}
    return await mutation(request, me, body.model_dump(), work)


@router.post("/stop-publication/decision")
async def decide_stop(request: Request, task_id: str, uscc: str, me: Me, body: Decision):
    await _supervisor_of_unit(request, me, task_id, uscc)

    async def work(key):
        message = await stop_publication.decide(request.app.state.ctx, me, task_id, uscc, approve=body.approve,
                                                reason=body.note, request_key=key)
        return 200, {"task_id": task_id, "uscc": uscc, "message": message}
    return await mutation(request, me, body.model_dump(), work)
