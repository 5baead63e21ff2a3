"""`Idempotency-Key` on every mutation: the same key and body give the same answer and one effect; the same key
with another body is 409. Keys belong to their user and live in the database, so they outlast the process."""
from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from api.problems import Problem
from domain.access import Actor
from store import idempotency
from store.common import canonical_json

HEADER = "Idempotency-Key"
Work = Callable[[str | None], Awaitable[tuple[int, dict]]]  # (the key the command runs under) -> (status, body)


def request_key(actor: Actor, key: str) -> str:
    """The key as the command service sees it: a workflow update id is derived from it (service.targets.send)."""
    return f"{actor.id}\n{key}"


async def mutation(request: Request, actor: Actor, payload: Any, work: Work) -> JSONResponse:
    """Run `work` once per (user, key, body); without a key, just run it. Call after authorization: a
    forbidden request leaves no key behind."""
    key = request.headers.get(HEADER)
    if key is None:
        status, body = await work(None)
        return JSONResponse(body, status_code=status)
    if not 1 <= len(key) <= 200 or not key.isascii() or not key.isprintable():
        raise Problem(400, f"{HEADER}: 1 to 200 printable ASCII characters", rule="idempotency-key")
    fingerprint = hashlib.sha256(f"{request.method} {request.url.path}\n{canonical_json(payload)}".encode()).hexdigest()
    engine = request.app.state.ctx.engine()
    claim = await asyncio.to_thread(idempotency.claim, engine, actor.id, key, fingerprint, datetime.now(timezone.utc))
    if claim.fingerprint != fingerprint:
        raise Problem(409, f"{HEADER} {key!r} was used for another request", rule="idempotency-key-reused")
    if claim.status_code is not None:
        return JSONResponse(json.loads(claim.response), status_code=claim.status_code,
                            headers={"Idempotent-Replayed": "true"})
    # A new key, or one whose first request has no answer: in flight, or its process died. Either way the
    # command runs under the same update id, and the workflow takes it once.
    try:
        status, body = await work(request_key(actor, key))
    except BaseException:
        # A refusal changed nothing and leaves nothing: the same request may run again once it can succeed.
        await asyncio.to_thread(idempotency.release, engine, actor.id, key)
        raise
    await asyncio.to_thread(idempotency.answer, engine, actor.id, key, status, json.dumps(body))
    return JSONResponse(body, status_code=status)
