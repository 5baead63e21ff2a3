"""One target: its status, the field signals, the check (with evidence), the result, the review, an assignment,
the re-check of an order."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, File, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.auth import actor
from api.idempotency import mutation
from api.problems import Problem
from api.scope import require, target
from domain import access
from domain.access import Actor
from service import targets

router = APIRouter(prefix="/tasks/{task_id}/targets/{uscc}", tags=["targets"])
Me = Annotated[Actor, Depends(actor)]
EVIDENCE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/pdf", "video/mp4"})
_SHA256 = r"^[0-9a-f]{64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evidence(Strict):
    sha256: str = Field(pattern=_SHA256)
    name: str = Field(min_length=1, max_length=200)


class Check(Strict):
    members: list[str] = Field(min_length=1, max_length=20)
    method: str = Field(max_length=32)
    certificates_shown: bool = False
    evidence: list[Evidence] = Field(default=[], max_length=100)
    note: Literal[""] = Field("", description="not recorded yet: the check record has no note (send none)")


class Result(Strict):
    category: str = Field(max_length=32)
    findings: dict[str, str] = Field(default={}, max_length=200)
    note: str = Field("", max_length=4000)


class ReviewBody(Strict):
    approve: Literal[True] | None = None
    return_: str | None = Field(None, alias="return", min_length=1, max_length=4000)

    @model_validator(mode="after")
    def _one(self):
        if (self.approve is None) == (self.return_ is None):
            raise ValueError('give either "approve": true or "return": "note"')
        return self


class RecheckBody(Strict):
    passed: bool
    note: str = Field("", max_length=4000)


class Assignment(Strict):
    unit: str = Field(max_length=32)
    inspectors: list[str] = Field(min_length=1, max_length=20)
    reason: str = Field(min_length=1, max_length=400)
    load_cap_override: str = Field("", max_length=70, description="why the team may go past the task's load cap"
                                                                  " (recorded with the reason)")


def outcome(task_id: str, uscc: str, done: targets.Outcome) -> tuple[int, dict]:
    return 200, {"task_id": task_id, "uscc": uscc, "accepted": done.accepted,
                 "already_recorded": done.already_recorded, "message": done.message}


@router.get("")
async def show(request: Request, task_id: str, uscc: str, me: Me) -> dict:
    await target(request, me, task_id, uscc)
    status = await targets.status(await request.app.state.ctx.client(), task_id, uscc)
    return status.model_dump(mode="json")


async def _field_signal(request: Request, task_id: str, uscc: str, me: Actor, kind: str):
    require(access.may_act_on_target(me, (await target(request, me, task_id, uscc, "inspector")).target.team))

    async def work(key):
        message = await targets.field_signal(request.app.state.ctx, me, task_id, uscc, kind, request_key=key)
        return 202, {"task_id": task_id, "uscc": uscc, "signal": kind, "message": message}
    return await mutation(request, me, {"signal": kind}, work)


@router.post("/accept", status_code=202)
async def accept(request: Request, task_id: str, uscc: str, me: Me):
    return await _field_signal(request, task_id, uscc, me, "accept")


@router.post("/arrive", status_code=202)
async def arrive(request: Request, task_id: str, uscc: str, me: Me):
    return await _field_signal(request, task_id, uscc, me, "arrive")


@router.post("/check")
async def check(request: Request, task_id: str, uscc: str, me: Me, body: Check):
    require(access.may_act_on_target(me, (await target(request, me, task_id, uscc, "inspector")).target.team))
    store = _evidence_dir(request)
    missing = [f"evidence.{i}.sha256" for i, e in enumerate(body.evidence) if not (store / e.sha256).is_file()]
    if missing:
        raise Problem(422, "evidence not uploaded: POST it to .../evidence first", rule="evidence",
                      errors=[{"field": f, "message": "no uploaded file with this digest"} for f in missing])

    async def work(key):
        return outcome(task_id, uscc, await targets.record_check(
            request.app.state.ctx, me, task_id, uscc, members=body.members, method=body.method,
            certificates_shown=body.certificates_shown, request_key=key,
            evidence=[f"evidence:{e.sha256}/{quote(e.name, safe='')}#{e.sha256}" for e in body.evidence]))
    return await mutation(request, me, body.model_dump(), work)


@router.post("/evidence", status_code=201)
async def evidence(request: Request, task_id: str, uscc: str, me: Me, file: UploadFile = File()):
    require(access.may_act_on_target(me, (await target(request, me, task_id, uscc, "inspector")).target.team))
    limit = request.app.state.max_evidence_bytes
    if file.content_type not in EVIDENCE_TYPES:
        raise Problem(415, f"evidence of type {file.content_type}: one of {', '.join(sorted(EVIDENCE_TYPES))}",
                      rule="evidence-type")
    name = Path(file.filename or "evidence").name[:200] or "evidence"
    digest, size = await _store(_evidence_dir(request), file, limit)

    async def work(_key):
        return 201, {"sha256": digest, "size": size, "name": name}
    return await mutation(request, me, {"sha256": digest, "name": name}, work)


async def _store(directory: Path, file: UploadFile, limit: int) -> tuple[str, int]:
    """The upload under its SHA-256 (the same file twice is one file), hashed as it is read; 413 past the limit."""
    directory.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    handle, name = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise Problem(413, f"evidence over {limit} bytes", rule="evidence-size")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    os.replace(name, directory / digest.hexdigest())
    return digest.hexdigest(), size


def _evidence_dir(request: Request) -> Path:
    return request.app.state.evidence_dir


@router.post("/result")
async def result(request: Request, task_id: str, uscc: str, me: Me, body: Result):
    require(access.may_act_on_target(me, (await target(request, me, task_id, uscc, "inspector")).target.team))

    async def work(key):
        return outcome(task_id, uscc, await targets.enter_result(
            request.app.state.ctx, me, task_id, uscc, category=body.category, findings=body.findings,
            note=body.note, request_key=key))
    return await mutation(request, me, body.model_dump(), work)


@router.post("/review")
async def review(request: Request, task_id: str, uscc: str, me: Me, body: Annotated[ReviewBody, Body()]):
    seen = (await target(request, me, task_id, uscc, "reviewer")).target
    require(access.may_review(me, seen.unit, seen.team))

    async def work(key):
        return outcome(task_id, uscc, await targets.review_result(
            request.app.state.ctx, me, task_id, uscc, approve=body.approve is not None, note=body.return_ or "",
            request_key=key))
    return await mutation(request, me, body.model_dump(by_alias=True), work)


@router.post("/recheck")
async def recheck(request: Request, task_id: str, uscc: str, me: Me, body: RecheckBody):
    """The team's re-check of an order (correction or publication), once the follow-up waits for it."""
    require(access.may_act_on_target(me, (await target(request, me, task_id, uscc, "inspector")).target.team))

    async def work(key):
        return outcome(task_id, uscc, await targets.record_recheck(
            request.app.state.ctx, me, task_id, uscc, passed=body.passed, note=body.note, request_key=key))
    return await mutation(request, me, body.model_dump(), work)


@router.post("/assign")
async def assign(request: Request, task_id: str, uscc: str, me: Me, body: Assignment):
    seen = await target(request, me, task_id, uscc, "supervisor")
    if body.unit not in seen.target.units:
        raise Problem(422, f"unit {body.unit} has no team on this target", rule="unit",
                      errors=[{"field": "unit", "message": f"one of {', '.join(sorted(seen.target.units))}"}])
    require(access.may_assign(me, body.unit, seen.units_above[body.unit]))

    async def work(key):
        return outcome(task_id, uscc, await targets.assign_team(
            request.app.state.ctx, me, task_id, uscc, unit=body.unit, inspectors=body.inspectors,
            reason=body.reason, load_cap_override=body.load_cap_override, request_key=key))
    return await mutation(request, me, body.model_dump(), work)
