"""The whole chain on the time-skipping server: plan → task → draw → dispatch → targets → publication → follow-up."""
from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from activities.handoff import JsonlReceiver
from db import schema
from domain.records import CheckRecord, PlanRun, ResultEntry, Review
from domain.workdays import SHANGHAI, Deadlines, calendar_from_env
from runtime.client import build_worker
from runtime.commands import CommandRefused, send, target_status
from runtime.examples import import_examples, shifted_plan
from runtime.plans import load_plan
from workflows.common import HEAVY_TASK_QUEUE, plan_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres


def small_plan(today, plan_code: str) -> bytes:
    """One task of the demo template, renamed so that runs on a shared database never collide."""
    plan = json.loads(shifted_plan(today, window_days=60))
    plan["plan_code"] = plan_code
    task = plan["tasks"][0]
    task["task_id"] = f"{plan_code}-T1"
    plan["tasks"] = [task]
    return json.dumps(plan, ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def directories(pg_engine):
    import_examples(pg_engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    return pg_engine


async def workers(env, engine, tmp_path):
    queue = f"q-{uuid.uuid4()}"
    executor = ThreadPoolExecutor(max_workers=8)
    deadlines = Deadlines(calendar_from_env())
    receiver = JsonlReceiver(tmp_path / "outbox.jsonl")
    main = build_worker(env.client, queue, engine, deadlines, receiver, executor)
    heavy = build_worker(env.client, HEAVY_TASK_QUEUE, engine, deadlines, receiver, executor)
    return queue, main, heavy


async def wait_for(predicate, timeout: float = 60.0, env=None, skip: timedelta = timedelta(hours=6)):
    """Poll until `predicate` holds; with `env` (time-skipping), let workflow time pass by `skip` each round."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        if env is not None:
            await env.sleep(skip)
        else:
            await asyncio.sleep(0.2)


async def test_plan_runs_to_published_results_and_follow_ups(ts_env, directories, tmp_path):
    engine = directories
    code = f"CHAIN-{uuid.uuid4().hex[:6]}"
    today = datetime.now(SHANGHAI).date()
    plan, created = load_plan(engine, small_plan(today, code), "plan.json")
    assert created
    task_id = plan.tasks[0].task_id
    queue, main, heavy = await workers(ts_env, engine, tmp_path)
    async with main, heavy:
        handle = await ts_env.client.start_workflow(
            AnnualPlanWorkflow.run, PlanRun(plan_code=code), id=plan_workflow_id(code), task_queue=queue,
            execution_timeout=timedelta(days=400))

        async def targets():
            with engine.connect() as c:
                rows = c.execute(select(schema.targets.c.uscc).where(
                    schema.targets.c.task_id == task_id, schema.targets.c.workflow_id != "")).all()
            return [r.uscc for r in rows] if rows else None

        usccs = await wait_for(targets, env=ts_env)  # past the announcement and redraw windows
        with engine.connect() as c:
            drawn = c.execute(select(func.count()).select_from(schema.targets).where(
                schema.targets.c.task_id == task_id)).scalar()
        usccs = await wait_for(lambda: _all_open(engine, task_id, drawn))
        assert len(usccs) == drawn > 0

        categories = ["no_issue", "pending_investigation", "unreachable"]
        for n, uscc in enumerate(usccs):
            status = await target_status(ts_env.client, task_id, uscc)
            team = status.teams[0].inspectors
            ctx_points = ["GS-001-1", "GS-001-2", "GS-001-3"]
            # Refused: one inspector only, and someone not on the team.
            with pytest.raises(CommandRefused, match="at least two"):
                await send(ts_env.client, task_id, uscc, "check",
                           CheckRecord(inspectors=[team[0]], method="document"))
            with pytest.raises(CommandRefused, match="not on this target's team"):
                await send(ts_env.client, task_id, uscc, "check",
                           CheckRecord(inspectors=[team[0], "JDZ-NOBODY"], method="document"))
            check = CheckRecord(inspectors=team, method="document")
            assert (await send(ts_env.client, task_id, uscc, "check", check)).accepted
            again = await send(ts_env.client, task_id, uscc, "check", check)
            assert again.already_recorded
            entry = ResultEntry(inspector=team[0], category=categories[n % len(categories)],
                                findings={p: "pass" for p in ctx_points})
            await send(ts_env.client, task_id, uscc, "result", entry)
            reviewer = (await _reviewers(engine))[0]
            await send(ts_env.client, task_id, uscc, "review", Review(reviewer=reviewer, approve=True))

        outcome = await handle.result()
        assert outcome.tasks_closed == 1

    with engine.connect() as c:
        results = c.execute(select(schema.publications.c.uscc, func.count()).where(
            schema.publications.c.task_id == task_id, schema.publications.c.kind == "result",
        ).group_by(schema.publications.c.uscc)).all()
        assert sorted(u for u, _ in results) == sorted(usccs)
        assert all(n == 1 for _, n in results)
        leads = c.execute(select(schema.follow_ups).where(schema.follow_ups.c.task_id == task_id)).mappings().all()
        problems = [u for n, u in enumerate(usccs) if categories[n % 3] != "no_issue"]
        assert sorted(lead["uscc"] for lead in leads) == sorted(problems)
        assert all(lead["state"] == "closed" for lead in leads)
        stages = c.execute(select(schema.targets.c.stage).where(schema.targets.c.task_id == task_id)).scalars().all()
        assert set(stages) == {"closed"}


async def _all_open(engine, task_id, drawn):
    with engine.connect() as c:
        rows = c.execute(select(schema.targets.c.uscc).where(
            schema.targets.c.task_id == task_id, schema.targets.c.stage == "dispatched")).all()
    return sorted(r.uscc for r in rows) if len(rows) == drawn else None


async def _reviewers(engine):
    from activities.directory import people_with_role
    with engine.connect() as c:
        return people_with_role(c, "360202-SCJ", "reviewer", datetime.now(timezone.utc))
