"""The whole chain on the time-skipping server: plan → task → draw → dispatch → targets → publication → follow-up."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from db import schema
from domain.messages.plan import PlanRun
from domain.messages.target import CheckRecord, ResultEntry, Review
from domain.workdays import SHANGHAI
from service.errors import Refused
from service.targets import send, status as target_status
from store.plans import load_plan
from tests.workflows.support import make_workers, people, plan_file, wait_for, waiting_targets
from workflows.common import plan_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres


async def test_plan_runs_to_published_results_and_follow_ups(ts_env, directories, tmp_path):
    engine = directories
    code = f"CHAIN-{uuid.uuid4().hex[:6]}"
    today = datetime.now(SHANGHAI).date()
    plan, created = load_plan(engine, plan_file(today, code), "plan.json")
    assert created
    task_id = plan.tasks[0].task_id
    queue, main, heavy = make_workers(ts_env, engine, tmp_path)
    async with main, heavy:
        handle = await ts_env.client.start_workflow(
            AnnualPlanWorkflow.run, PlanRun(plan_code=code), id=plan_workflow_id(code), task_queue=queue,
            execution_timeout=timedelta(days=400))

        # Time passes the announcement and redraw windows; then every target is open.
        usccs = await wait_for(lambda: waiting_targets(ts_env.client, engine, task_id), env=ts_env)

        categories = ["no_issue", "pending_investigation", "unreachable"]
        for n, uscc in enumerate(usccs):
            status = await target_status(ts_env.client, task_id, uscc)
            team = status.teams[0].inspectors
            ctx_points = ["GS-001-1", "GS-001-2", "GS-001-3"]
            # Refused: one inspector only, and someone not on the team.
            with pytest.raises(Refused, match="at least two"):
                await send(ts_env.client, task_id, uscc, "check",
                           CheckRecord(inspectors=[team[0]], method="document"))
            with pytest.raises(Refused, match="not on this target's team"):
                await send(ts_env.client, task_id, uscc, "check",
                           CheckRecord(inspectors=[team[0], "JDZ-NOBODY"], method="document"))
            check = CheckRecord(inspectors=team, method="document")
            assert (await send(ts_env.client, task_id, uscc, "check", check)).accepted
            again = await send(ts_env.client, task_id, uscc, "check", check)
            assert again.already_recorded
            entry = ResultEntry(inspector=team[0], category=categories[n % len(categories)],
                                findings={p: "pass" for p in ctx_points})
            await send(ts_env.client, task_id, uscc, "result", entry)
            reviewer = people(engine, "reviewer")[0]
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
