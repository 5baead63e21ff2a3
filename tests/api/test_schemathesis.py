"""schemathesis over the OpenAPI of the live app (`spotcheck api` in its own process, on the dev server and
PostgreSQL): no request gets a 5xx, and a 4xx changes nothing — no row, no key, no file, no history event.

Half the generated requests name a real target (the task's targets), so their bodies reach
the door's and the workflow's rules rather than a 404; each carries the token of the persona whose lane
the endpoint is (lead inspector, reviewer, supervisor).
"""
from __future__ import annotations

import asyncio
import os
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, settings
from sqlalchemy import func, select
from temporalio.client import Client

from db import schema
from domain.messages.plan import PlanRun
from domain.workdays import SHANGHAI
from service import identity
from service.imports import import_examples
from store.plans import load_plan
from tests.api.live import ROOT, free_port, process, stop, up
from tests.api.test_api import TOKENS
from tests.conftest import own_schema
from tests.integration.devserver import dev_server
from tests.workflows.support import plan_file, wait_for, waiting_targets
from workflows.common import TASK_QUEUE, plan_workflow_id, target_workflow_id
from workflows.plan import AnnualPlanWorkflow
from workflows.target import TargetInspectionWorkflow

pytestmark = pytest.mark.postgres
CHANGES = ("workflow_execution_update_accepted_event_attributes", "workflow_execution_signaled_event_attributes")


class Histories:
    """The task's target histories, read from a loop of our own (schemathesis' tests are not async)."""

    def __init__(self, address: str) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.client = self._run(Client.connect(address))

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def changes(self, workflow_ids: list[str]) -> list[int]:
        """Per workflow: the events only a request makes (accepted updates, signals); timers add others."""
        async def count(workflow_id: str) -> int:
            events = [e async for e in self.client.get_workflow_handle(workflow_id).fetch_history_events()]
            return sum(any(e.HasField(kind) for kind in CHANGES) for e in events)

        async def counts() -> list[int]:
            return list(await asyncio.gather(*(count(w) for w in workflow_ids)))
        return self._run(counts())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


class Live:
    """A task dispatched on the dev server by the real worker and the API, each in a process of its own: the test
    is not async (hypothesis), so nothing it needs may run in the test's own event loop."""

    def __init__(self, engine, task_id: str, usccs: list[str], url: str, evidence: Path, histories: Histories,
                 tokens: dict[str, str]):
        self.engine, self.task_id, self.usccs, self.url, self.evidence = engine, task_id, usccs, url, evidence
        self.histories, self.tokens = histories, tokens


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(postgres_url, tmp_path_factory):
    data = tmp_path_factory.mktemp("live")
    code = f"FUZZ-{uuid.uuid4().hex[:6]}"
    processes = []
    async with dev_server() as env:
        address = env.client.service_client.config.target_host
        with own_schema(postgres_url) as db:
            import_examples(db.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
            plan, _ = load_plan(db.engine, plan_file(datetime.now(SHANGHAI).date(), code, industry=["C15", "E50"],
                                                     window_days=60), "plan.json")
            task_id = plan.tasks[0].task_id
            base = {**os.environ, "DATABASE_URL": db.url, "SPOTCHECK_DATA_DIR": str(data), "TEMPORAL_ADDRESS": address,
                    "SPOTCHECK_API_SECRET": TOKENS.secret.decode(),
                    "SPOTCHECK_DEMO_WORKDAY_SECONDS": "1"}  # the draw's waits pass in seconds, as in test_api
            try:
                processes.append(process(["worker"], base, data / "worker.log"))
                port = free_port()
                processes.append(process(["api", "--port", str(port)], base, data / "api.log"))
                await env.client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code),
                                                id=plan_workflow_id(code), task_queue=TASK_QUEUE)
                usccs = await wait_for(lambda: waiting_targets(env.client, db.engine, task_id), timeout=180,
                                       what="dispatched targets")
                url = f"http://127.0.0.1:{port}"
                await wait_for(lambda: asyncio.to_thread(up, url), timeout=60, what="the API")
                lead = (await env.client.get_workflow_handle_for(
                    TargetInspectionWorkflow.run, target_workflow_id(task_id, usccs[0])).query(
                    TargetInspectionWorkflow.status)).teams[0].inspectors[0]
                tokens = {persona: identity.issue_access_token(user, TOKENS)[0]
                          for persona, user in (("lead", lead), ("reviewer", "JDZ-I020"), ("supervisor", "JDZ-I022"))}
                histories = Histories(address)
                yield Live(db.engine, task_id, usccs, url, data / "evidence", histories, tokens)
                histories.close()
            finally:
                for proc in processes:
                    stop(proc)


def _openapi() -> dict:
    """The live app's document, made by the same code without a server (the URL is known only at run time)."""
    from api.app import create_app
    from api.auth import Auth
    from runtime import config
    from runtime.context import Context
    return create_app(lambda: Context(config.load(ROOT / ".data")), auth_settings=Auth(tokens=TOKENS)).openapi()


openapi = schemathesis.openapi.from_dict(_openapi())


def _state(live: Live):
    """What a request could change; alerts and overdue flags are the timers' (a working day lasts a second)."""
    tables = (schema.targets, schema.teams, schema.api_idempotency, schema.users)
    with live.engine.connect() as c:
        rows = [c.execute(select(func.count()).select_from(t)).scalar() for t in tables]
        stages = c.execute(select(schema.targets.c.uscc, schema.targets.c.stage)
                           .order_by(schema.targets.c.uscc)).all()
    files = sorted(p.name for p in live.evidence.iterdir()) if live.evidence.is_dir() else []
    return rows, stages, files, live.histories.changes([target_workflow_id(live.task_id, u) for u in live.usccs])


def _persona(path: str) -> str:
    return {"assign": "supervisor", "review": "reviewer"}.get(path.rsplit("/", 1)[-1], "lead")


@openapi.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_a_4xx_changes_nothing(case, live):
    if {"task_id", "uscc"} <= set(case.path_parameters or {}) and len(repr(case.body)) % 2 == 0:
        case.path_parameters = {**case.path_parameters, "task_id": live.task_id,
                                "uscc": live.usccs[len(repr(case.body)) % len(live.usccs)]}
    before = _state(live)
    response = case.call(base_url=live.url, headers={"Authorization": f"Bearer {live.tokens[_persona(case.path)]}"},
                         timeout=60)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    # A failed login counts towards its lockout: that is the one change a 4xx makes, by design.
    if 400 <= response.status_code < 500 and not case.path.endswith("/auth/token"):
        assert _state(live) == before, f"{case.method} {case.formatted_path} {response.status_code} changed something"
