"""Kill the worker (SIGKILL, the whole process group) in the middle of a plan, start it again: the year
finishes with every result published exactly once and no follow-up doubled."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from db import schema
from domain.messages.plan import PlanRun
from domain.messages.target import CheckRecord, Recheck, ResultEntry, Review
from domain.stages import Stage
from domain.workdays import SHANGHAI
from service.targets import send, status as target_status
from service.imports import import_examples
from store.plans import load_plan
from tests.conftest import venv_binary
from tests.workflows.support import plan_file
from workflows.common import SEARCH_ATTRIBUTES, TASK_QUEUE, plan_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = ["no_issue", "pending_investigation", "unreachable", "ordered_to_correct"]


def start_worker(address: str, database_url: str, log: Path) -> subprocess.Popen:
    # A working day lasts a second: the task's announcement and redraw windows pass quickly.
    env = {**os.environ, "TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": "default",
           "DATABASE_URL": database_url, "SPOTCHECK_DATA_DIR": str(log.parent),
           "SPOTCHECK_DEMO_WORKDAY_SECONDS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def kill(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGKILL)  # the host dies: the workflow worker and the heavy draw worker
    worker.wait(timeout=10)


async def play(client, task_id: str, uscc: str, n: int) -> None:
    """The team and the reviewer, retrying through the outage like a person would."""
    for _ in range(600):
        try:
            status = await target_status(client, task_id, uscc)
            team = sorted({i for t in status.teams for i in t.inspectors})
            if status.stage == Stage.DISPATCHED:
                await send(client, task_id, uscc, "check", CheckRecord(inspectors=team, method="document"))
            elif status.stage == Stage.CHECKED:
                await send(client, task_id, uscc, "result", ResultEntry(
                    inspector=team[0], category=CATEGORIES[n % len(CATEGORIES)],
                    findings={p: "pass" for p in status.checklist}))
            elif status.stage == Stage.ENTERED:
                await send(client, task_id, uscc, "review", Review(reviewer=status.reviewers[0], approve=True))
            elif status.stage == Stage.FOLLOW_UP and status.follow_up and status.follow_up.endswith("/follow-up") \
                    and CATEGORIES[n % len(CATEGORIES)] == "ordered_to_correct":
                await send(client, task_id, uscc, "recheck", Recheck(inspector=team[0], passed=True))
            elif status.stage == Stage.CLOSED:
                return
            else:
                await asyncio.sleep(0.3)
        except Exception:  # noqa: BLE001 - refused in a race, or the worker is down: look again
            await asyncio.sleep(0.5)
    raise AssertionError(f"{uscc} did not finish")


async def test_killed_worker_loses_and_doubles_nothing(pg_engine, postgres_url, tmp_path):
    import_examples(pg_engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    code = f"KILL-{uuid.uuid4().hex[:6]}"
    plan, _ = load_plan(pg_engine, plan_file(datetime.now(SHANGHAI).date(), code), "plan.json")
    task_id = plan.tasks[0].task_id
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter, search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_existing_path=venv_binary("temporal", "TEMPORAL_CLI_PATH"),
    ) as env:
        address = env.client.service_client.config.target_host
        log = tmp_path / "worker.log"
        worker = start_worker(address, postgres_url, log)
        kills = 0
        try:
            handle = await env.client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code),
                                                     id=plan_workflow_id(code), task_queue=TASK_QUEUE)
            for _ in range(600):  # the draw happened and the targets are open
                with pg_engine.connect() as c:
                    rows = c.execute(select(schema.targets.c.uscc, schema.targets.c.workflow_id).where(
                        schema.targets.c.task_id == task_id)).all()
                if rows and all(r.workflow_id for r in rows):
                    break
                await asyncio.sleep(0.2)
            usccs = sorted(r.uscc for r in rows)
            players = [asyncio.ensure_future(play(env.client, task_id, u, n)) for n, u in enumerate(usccs)]
            for delay in (1.5, 2.5):  # kill it twice while results and follow-ups are being written
                await asyncio.sleep(delay)
                kill(worker)
                kills += 1
                await asyncio.sleep(1)
                worker = start_worker(address, postgres_url, log)
            await asyncio.wait_for(asyncio.gather(*players), timeout=240)
            outcome = await asyncio.wait_for(handle.result(), timeout=120)
        finally:
            kill(worker)
    assert outcome.tasks_closed == 1 and kills == 2
    p, f = schema.publications, schema.follow_ups
    with pg_engine.connect() as c:
        published = dict(c.execute(select(p.c.uscc, func.count()).where(p.c.task_id == task_id, p.c.kind == "result")
                                   .group_by(p.c.uscc)).all())
        leads = c.execute(select(f.c.uscc, f.c.step, func.count()).where(f.c.task_id == task_id)
                          .group_by(f.c.uscc, f.c.step)).all()
        open_leads = c.execute(select(func.count()).where(f.c.task_id == task_id, f.c.state == "open")).scalar()
        stuck = c.execute(select(func.count()).select_from(schema.outbox).where(
            schema.outbox.c.workflow_id.like(f"target/{task_id}/%"), schema.outbox.c.delivered_at.is_(None))).scalar()
    assert sorted(published) == usccs, "every target published"
    assert set(published.values()) == {1}, "no result published twice"
    assert all(n == 1 for _, _, n in leads), "no follow-up doubled"
    assert open_leads == 0 and stuck == 0
    print(f"kills={kills} targets={len(usccs)} duplicates=0 lost=0")
