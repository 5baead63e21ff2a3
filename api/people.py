"""The caller's own view: who they are, their targets, their alerts, an entity's inspections within their scope."""
from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from api.auth import actor
from api.problems import Problem
from db.engine import Connection
from domain.access import Actor
from domain.stages import Stage
from store import scope

router = APIRouter(tags=["me"])
Me = Annotated[Actor, Depends(actor)]
_LISTED = ("task_id", "uscc", "entity_name", "stage", "due", "overdue")


def _visible(connection: Connection, me: Actor, *, stage: str | None = None, uscc: str | None = None,
             listing: bool = False) -> list[dict]:
    """Targets in the caller's scope: an inspector's own teams; a reviewer's unit (in a listing: the results
    waiting for their review, their own teams' left out); a supervisor's unit and the units below it."""
    found: dict[tuple[str, str], dict] = {}
    own = scope.targets(connection, member=me.id, stage=stage, uscc=uscc) if me.roles & {"inspector", "reviewer"} \
        else []
    if "inspector" in me.roles:
        found |= {(r["task_id"], r["uscc"]): r for r in own}
    waiting_only = listing and stage in (None, Stage.ENTERED.value)
    if "reviewer" in me.roles and me.unit and (waiting_only or not listing):
        mine = {(r["task_id"], r["uscc"]) for r in own}
        rows = scope.targets(connection, units=[me.unit], stage=Stage.ENTERED.value if listing else stage, uscc=uscc)
        found |= {(r["task_id"], r["uscc"]): r for r in rows if not (listing and (r["task_id"], r["uscc"]) in mine)}
    if "supervisor" in me.roles and me.unit:
        below = scope.units_below(connection, me.unit)
        found |= {(r["task_id"], r["uscc"]): r for r in scope.targets(connection, units=below, stage=stage, uscc=uscc)}
    return [found[k] for k in sorted(found)]


def _jsonable(row: dict, keys=None) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items() if keys is None or k in keys}


@router.get("/me")
async def me(who: Me) -> dict:
    return {"id": who.id, "roles": sorted(who.roles), "unit": who.unit}


@router.get("/me/targets")
async def my_targets(request: Request, who: Me, stage: Stage | None = Query(None)) -> list[dict]:
    def read():
        with request.app.state.ctx.engine().connect() as connection:
            return _visible(connection, who, stage=stage.value if stage else None, listing=True)
    return [_jsonable(r, _LISTED) for r in await asyncio.to_thread(read)]


@router.get("/me/alerts")
async def my_alerts(request: Request, who: Me) -> dict:
    def read():
        with request.app.state.ctx.engine().connect() as connection:
            mine = _visible(connection, who)
            return mine, scope.alerts(connection, [(r["task_id"], r["uscc"]) for r in mine])
    mine, alerts = await asyncio.to_thread(read)
    return {"alerts": [_jsonable(a) for a in alerts],
            "overdue": [_jsonable(r, _LISTED) for r in mine if r["overdue"]]}


@router.get("/entities/{uscc}/inspections")
async def inspections(request: Request, uscc: str, who: Me) -> list[dict]:
    def read():
        with request.app.state.ctx.engine().connect() as connection:
            return _visible(connection, who, uscc=uscc)
    rows = await asyncio.to_thread(read)
    if not rows:
        raise Problem(404, f"no inspection of {uscc} within your scope", rule="not-found")
    return [_jsonable(r) for r in rows]
