"""A POST retried with the same Idempotency-Key after `spotcheck api` was killed (SIGKILL) mid-request takes effect
once and gets the answer the uninterrupted request would have had.

The API runs in a process of its own on the dev server and PostgreSQL; the test holds the request at a known
point, with no timing: before anything reaches Temporal (the worker is stopped, so the command cannot be taken),
after the workflow accepted the update and before it finished (the activity waits on a row the test locks), and
after the workflow answered and before the API stored its answer (the key's row is locked too). Then it kills
the API, lets everything go on, starts a new API process and retries.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import uuid

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from db import schema
from domain.messages.plan import PlanRun
from read.timeline import execution_chain
from service import identity
from service.targets import status
from tests.api.live import free_port, process, stop, up
from tests.api.test_api import TOKENS, api_plan
from tests.conftest import own_schema
from tests.integration.devserver import dev_server, workers
from tests.workflows.support import wait_for, waiting_targets
from workflows.common import TASK_QUEUE, plan_workflow_id, target_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres
POINTS = ["before-temporal", "accepted", "answered"]


class Stage:
    """The dev server, the worker (in this process, stopped and started at will) and the API's processes."""

    def __init__(self, env, engine, data, base_env, task_id, usccs):
        self.env, self.engine, self.data, self.base_env = env, engine, data, base_env
        self.task_id, self.usccs = task_id, usccs
        self.worker: contextlib.AsyncExitStack | None = None

    async def start_worker(self) -> None:
        self.worker = contextlib.AsyncExitStack()
        await self.worker.enter_async_context(workers(self.env, self.engine, self.data, workday_seconds=1))

    async def stop_worker(self) -> None:
        await self.worker.aclose()

    async def start_api(self):
        port = free_port()
        proc = process(["api", "--port", str(port)], self.base_env, self.data / "api.log")
        url = f"http://127.0.0.1:{port}"
        await wait_for(lambda: asyncio.to_thread(up, url), timeout=60, what="the API")
        return proc, url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stage(postgres_url, tmp_path_factory):
    data = tmp_path_factory.mktemp("killed")
    code = f"KILL-{uuid.uuid4().hex[:6]}"
    async with dev_server() as env:
        with own_schema(postgres_url) as db:
            task_id = api_plan(db.engine, code)
            base_env = {**os.environ, "DATABASE_URL": db.url, "SPOTCHECK_DATA_DIR": str(data),
                        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                        "SPOTCHECK_API_SECRET": TOKENS.secret.decode()}
            world = Stage(env, db.engine, data, base_env, task_id, [])
            await world.start_worker()
            try:
                await env.client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code),
                                                id=plan_workflow_id(code), task_queue=TASK_QUEUE)
                world.usccs = await wait_for(lambda: waiting_targets(env.client, db.engine, task_id), timeout=120,
                                             what="dispatched targets")
                assert len(world.usccs) >= len(POINTS), world.usccs
                yield world
            finally:
                await world.stop_worker()


@contextlib.contextmanager
def row_locked(engine, table, **key):
    """The row held FOR UPDATE until the block ends: whoever writes it meanwhile waits."""
    with engine.connect() as connection, connection.begin():
        connection.execute(select(table).where(*(table.c[k] == v for k, v in key.items())).with_for_update()).one()
        yield


async def _updates(stage: Stage, uscc: str) -> tuple[list[str], list[str]]:
    """Every run of the target: the names of its accepted updates, and the answers of its completed ones."""
    accepted, answers = [], []
    for run in await execution_chain(stage.env.client, target_workflow_id(stage.task_id, uscc)):
        for event in run:
            if event.HasField("workflow_execution_update_accepted_event_attributes"):
                accepted.append(event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name)
            if event.HasField("workflow_execution_update_completed_event_attributes"):
                outcome = event.workflow_execution_update_completed_event_attributes.outcome
                answers.append(json.loads(outcome.success.payloads[0].data))
    return accepted, answers


def _claimed_unanswered(stage: Stage, user: str, key: str) -> bool:
    k = schema.api_idempotency
    with stage.engine.connect() as connection:
        row = connection.execute(select(k.c.status_code).where(k.c.user_id == user, k.c.idem_key == key)).first()
    return row is not None and row.status_code is None


@pytest.mark.parametrize("point", POINTS)
async def test_a_post_retried_after_the_api_was_killed_mid_request_takes_effect_once(stage, point):
    uscc = stage.usccs[POINTS.index(point)]
    team = (await status(stage.env.client, stage.task_id, uscc)).teams[0].inspectors
    lead = team[0]
    headers = {"Authorization": f"Bearer {identity.issue_access_token(lead, TOKENS)[0]}",
               "Idempotency-Key": f"check-{uuid.uuid4()}"}
    path = f"/api/v1/tasks/{stage.task_id}/targets/{uscc}/check"
    body = {"members": team, "method": "document"}
    api, url = await stage.start_api()
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        with contextlib.ExitStack() as key_held:
            if point == "before-temporal":
                await stage.stop_worker()  # no worker: no query is answered and no update can be taken
            with (contextlib.nullcontext() if point == "before-temporal"
                  else row_locked(stage.engine, schema.targets, task_id=stage.task_id, uscc=uscc)):
                first = asyncio.ensure_future(http.post(path, headers=headers, json=body))
                await wait_for(lambda: asyncio.to_thread(_claimed_unanswered, stage, lead, headers["Idempotency-Key"]),
                               timeout=60, what="the request under way")
                if point != "before-temporal":
                    # Taken by the workflow; its activity waits on the locked row, so the update is unfinished.
                    await wait_for(lambda: _history(stage, uscc, accepted=1), timeout=60, what="the update accepted")
                if point == "answered":  # the API will not store the answer the workflow is about to give
                    key_held.enter_context(row_locked(stage.engine, schema.api_idempotency, user_id=lead,
                                                      idem_key=headers["Idempotency-Key"]))
                else:
                    stop(api, signal.SIGKILL)
            if point == "answered":
                await wait_for(lambda: _history(stage, uscc, accepted=1, answered=1), timeout=60,
                               what="the workflow's answer")
                stop(api, signal.SIGKILL)
        with pytest.raises(httpx.HTTPError):
            await first
    if point == "before-temporal":
        assert await _history(stage, uscc, accepted=0)  # the command never reached the workflow
        await stage.start_worker()
    if point == "accepted":  # the update finishes without its door; the retry finds its answer
        await wait_for(lambda: _history(stage, uscc, accepted=1, answered=1), timeout=60, what="the update finished")

    api, url = await stage.start_api()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            retried = await http.post(path, headers=headers, json=body)
            again = await http.post(path, headers=headers, json=body)
    finally:
        stop(api)
    accepted, answers = await _updates(stage, uscc)
    assert accepted == ["record_check"] and len(answers) == 1, (accepted, answers)
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"task_id": stage.task_id, "uscc": uscc, "accepted": True, "already_recorded": False,
                              "message": answers[0]}
    assert again.json() == retried.json() and again.headers["Idempotent-Replayed"] == "true"


async def _history(stage: Stage, uscc: str, accepted: int, answered: int = 0) -> bool:
    """The target's history holds `accepted` record_check updates (no other update) and `answered` answers."""
    names, answers = await _updates(stage, uscc)
    return names == ["record_check"] * accepted and len(answers) == answered
