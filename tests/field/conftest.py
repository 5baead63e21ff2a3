"""The field app on a live server: `spotcheck server` (the dev Temporal server with its Web UI), the workers, a
PostgreSQL schema with the example directory, one task of a dozen targets, `spotcheck api`'s app on uvicorn, and
Debian's chromium through Playwright (tests/browser/conftest.py: skipped without it unless
SPOTCHECK_REQUIRE_CHROMIUM=1).

The draw leaves most targets unstaffed on purpose: two of the unit's six inspectors are on leave when the pool
is frozen, and the task's load cap is 2, so the four on duty staff three or four targets and are full. The two
are back in the directory once the dispatch is done: a supervisor has someone to assign.
"""
from __future__ import annotations

import asyncio
import csv
import json
import socket
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy import select

from api.app import create_app
from api.auth import Auth
from db import schema
from domain.access import Actor
from domain.messages.plan import PlanRun
from domain.workdays import SHANGHAI
from runtime import config
from runtime.context import Context
from runtime.examples import EXAMPLES
from service import identity
from service.identity import LocalTokens
from service.imports import import_directory, import_examples
from service.targets import status
from store.plans import load_plan
from tests.api.test_api import cheap_argon2id  # noqa: F401  (a fixture: logins in seconds, not minutes)
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path  # noqa: F401  (chromium_path: a fixture)
from tests.conftest import own_schema
from tests.integration.devserver import spotcheck_server, workers
from tests.workflows.support import plan_file, target_row, wait_for, waits_at_a_timer
from workflows.common import TASK_QUEUE, plan_workflow_id, target_workflow_id
from workflows.plan import AnnualPlanWorkflow

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots" / "field"
PASSWORD = "correct horse battery staple"
ADMIN = Actor(id="root", roles=frozenset({"admin"}), unit=None, method="cli-local")
UNIT, REVIEWER, SUPERVISOR = "360202-SCJ", "JDZ-I020", "JDZ-I022"
ON_LEAVE = ("JDZ-I017", "JDZ-I018")  # active inspectors of UNIT, inactive at the freeze
LOAD_CAP = 2
PHONE = {"width": 390, "height": 844}


@dataclass
class Field:
    """The task on the dev server, the app's and the Web UI's addresses; targets by whether the draw staffed
    them."""

    ctx: Context
    client: object
    engine: object
    base: str
    ui: str
    task_id: str
    plan_year: int
    teams: dict[str, list[str]]  # staffed uscc -> its team
    unstaffed: list[str]
    inspector: str = ""  # one on two teams: one target online, one offline
    own: list[str] = field(default_factory=list)


def _inspectors_on_leave(folder: Path) -> Path:
    """examples/inspectors.csv with ON_LEAVE inactive."""
    with (EXAMPLES / "inspectors.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["inspector_id"] in ON_LEAVE:
            row["status"] = "inactive"
    path = folder / "inspectors.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _settled(client, engine, task_id: str) -> tuple[list[str], list[str]] | None:
    """(staffed, unstaffed) once every target is open: a staffed one waiting for its check (at the field-work
    reminder's timer), an unstaffed one waiting for a supervisor; None before."""
    with engine.connect() as c:
        rows = c.execute(select(schema.targets.c.uscc, schema.targets.c.stage, schema.targets.c.workflow_id)
                         .where(schema.targets.c.task_id == task_id)).all()
    if not rows or any(not r.workflow_id or r.stage not in ("dispatched", "unstaffed") for r in rows):
        return None
    staffed = sorted(r.uscc for r in rows if r.stage == "dispatched")
    for uscc in staffed:
        if not await waits_at_a_timer(client, target_workflow_id(task_id, uscc)):
            return None
    return staffed, sorted(r.uscc for r in rows if r.stage == "unstaffed")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(postgres_url, tmp_path_factory, cheap_argon2id):  # noqa: F811
    tmp = tmp_path_factory.mktemp("field")
    code = f"FLD-{uuid.uuid4().hex[:6]}"
    plan = json.loads(plan_file(datetime.now(SHANGHAI).date(), code, industry="C30", window_days=60))
    plan["tasks"][0]["load_cap"] = LOAD_CAP
    now = datetime.now(timezone.utc)
    async with spotcheck_server(tmp / "server", _free_port(), _free_port()) as served:
        with own_schema(postgres_url) as db:
            import_examples(db.engine, now=now - timedelta(days=1))
            import_directory(db.engine, "inspectors", _inspectors_on_leave(tmp), now=now - timedelta(hours=1))
            loaded, _ = load_plan(db.engine, json.dumps(plan).encode(), "plan.json")
            task_id = loaded.tasks[0].task_id
            ctx = Context(config.load(tmp), engine=db.engine, client=served.client)
            app = create_app(lambda: ctx, auth_settings=Auth(tokens=LocalTokens(secret=b"f" * 32)),
                             evidence_dir=tmp / "evidence")
            port = _free_port()
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                   lifespan="off"))
            serving = asyncio.create_task(server.serve())
            try:
                async with workers(served, db.engine, tmp, workday_seconds=1):
                    await served.client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code),
                                                       id=plan_workflow_id(code), task_queue=TASK_QUEUE)
                    staffed, unstaffed = await wait_for(lambda: _settled(served.client, db.engine, task_id),
                                                        timeout=120, what="dispatched and unstaffed targets")
                    assert len(staffed) >= 3 and len(unstaffed) >= 2, (staffed, unstaffed)
                    # Back from leave: the directory as it stands, which a manual assignment is held to.
                    import_directory(db.engine, "inspectors", EXAMPLES / "inspectors.csv",
                                     now=datetime.now(timezone.utc))
                    teams = {u: (await status(served.client, task_id, u)).teams[0].inspectors for u in staffed}
                    load = Counter(i for team in teams.values() for i in team)
                    assert not load.keys() & set(ON_LEAVE), load
                    inspector = next(i for i, n in sorted(load.items()) if n >= 2)
                    for person in {*load, REVIEWER, SUPERVISOR}:
                        identity.add_user(db.engine, ADMIN, person, PASSWORD)  # roles come from the directory
                    while not server.started:
                        await asyncio.sleep(0.05)
                    own = [u for u in staffed if inspector in teams[u]]
                    yield Field(ctx, served.client, db.engine, f"http://127.0.0.1:{port}", served.ui, task_id,
                                plan["year"], teams, unstaffed, inspector, own)
            finally:
                server.should_exit = True
                await serving


def stage_of(world: Field, uscc: str) -> str:
    return target_row(world.engine, world.task_id, uscc)["stage"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(chromium_path):  # noqa: F811
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
