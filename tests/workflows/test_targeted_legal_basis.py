"""R12's exception through the command service and the task workflow: an A-class entity another task drew this
year is refused to a running task (`draw target` without `--legal-basis`), naming the entity and the rule;
targeted with its legal basis it is inspected, the draw verifies, and the history shows the basis."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from activities.draws import DrawActivities
from cli.common import operator
from db import schema
from domain.messages.plan import PlanRun
from domain.messages.task import TaskStep
from domain.stages import Stage
from domain.workdays import SHANGHAI
from read.audit_package import verify_against_database
from read.timeline import timeline
from runtime import config
from runtime.context import Context
from service import draws as draw_service
from service.errors import Refused
from store.plans import load_plan
from tests.integration.test_audit_package import run_activity
from tests.workflows.support import make_workers, plan_file, wait_for
from workflows.common import plan_workflow_id, task_workflow_id
from workflows.plan import AnnualPlanWorkflow
from workflows.task import InspectionTaskWorkflow

pytestmark = pytest.mark.postgres
INDUSTRY = "C14"  # 18 enterprises of 360202, 7 of them A-class: a population of this test's own
LAW = "《食品安全法》第一百一十条"


async def test_a_targeted_a_class_entity_needs_its_legal_basis(ts_env, directories, tmp_path):
    engine = directories
    today = datetime.now(SHANGHAI).date()
    # An earlier task of the year draws from the same population (its steps run directly, as the worker would).
    earlier, _ = load_plan(engine, plan_file(today, f"LB0-{uuid.uuid4().hex[:6]}", industry=INDUSTRY), "plan.json")
    first = earlier.tasks[0].task_id
    step = TaskStep(task_id=first, draw_seq=1, entropy="")
    for name in ("announce", "freeze", "draw"):
        run_activity(first, getattr(DrawActivities(engine), name), step)
    with engine.connect() as connection:
        ds, e = schema.draw_selection, schema.entities
        a_class = connection.execute(select(ds.c.uscc).join(e, e.c.uscc == ds.c.uscc).where(
            ds.c.task_id == first, e.c.risk_class == "A").order_by(ds.c.uscc).limit(1)).scalar_one()

    code = f"LB-{uuid.uuid4().hex[:6]}"
    plan, _ = load_plan(engine, plan_file(today, code, industry=INDUSTRY), "plan.json")
    task_id = plan.tasks[0].task_id
    ctx = Context(config.load(), engine=engine, client=ts_env.client)
    queue, main, heavy = make_workers(ts_env, engine, tmp_path)
    async with main, heavy:
        await ts_env.client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code), id=plan_workflow_id(code),
                                           task_queue=queue)
        task = ts_env.client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(task_id))

        async def stage():
            try:
                return (await task.query(InspectionTaskWorkflow.status)).stage
            except Exception:  # noqa: BLE001 - not started yet
                return None

        await wait_for(lambda: _is(stage, Stage.ANNOUNCED))
        with pytest.raises(Refused) as refused:
            await draw_service.add_targeted_entity(ctx, operator(), task_id, a_class, "重点监管")
        assert f"entity {a_class} is excluded from task {task_id} by R12" in str(refused.value)
        message = await draw_service.add_targeted_entity(ctx, operator(), task_id, a_class, "重点监管", LAW)
        assert LAW in message
        await wait_for(lambda: _is(stage, Stage.IN_PROGRESS, Stage.DISPATCHED), env=ts_env, skip=timedelta(hours=3))

    with engine.connect() as connection:
        t = schema.targets
        kind = connection.execute(select(t.c.kind).where(t.c.task_id == task_id, t.c.uscc == a_class)).scalar()
    assert kind in ("random", "targeted")
    assert verify_against_database(engine, task_id).ok
    events = [e for e in await timeline(ts_env.client, task_id) if e["target"] == a_class]
    assert [e["event"] for e in events][:2] == ["failed", "target added"], events
    assert "R12" in events[0]["details"] and events[1]["details"] == f"重点监管; legal basis {LAW}"


async def _is(stage, *expected) -> bool:
    return await stage() in expected
