"""What anyone may read without logging in: the public register and the draw records."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request

from api.problems import Problem
from read.register import publication_register
from store import scope

router = APIRouter(prefix="/public", tags=["public"])


@router.get("/register")
async def register(request: Request, uscc: str | None = Query(None, max_length=18),
                   task_id: str | None = Query(None, max_length=64),
                   year: int | None = Query(None, ge=2000, le=2999)) -> list[dict]:
    def read():
        with request.app.state.ctx.engine().connect() as connection:
            return publication_register(connection, year)
    return [row for row in await asyncio.to_thread(read)
            if (uscc is None or row.get("uscc") == uscc) and (task_id is None or row.get("task_id") == task_id)]


@router.get("/draws/{task_id}")
async def draws(request: Request, task_id: str) -> list[dict]:
    def read():
        with request.app.state.ctx.engine().connect() as connection:
            return scope.public_draws(connection, task_id)
    records = await asyncio.to_thread(read)
    if not records:
        raise Problem(404, f"no public draw record of task {task_id}", rule="not-found")
    return records
