"""R12 across tasks: two tasks frozen before either drew hold the same A-class entities; the later draw
is superseded by the rules and a new freeze excludes what the other task drew."""
from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from sqlalchemy import select

from db import schema
from domain.messages.plan import PlanRun
from domain.messages.task import EntropyEntry
from domain.stages import Stage
from domain.workdays import SHANGHAI
from runtime.examples import shifted_plan
from store.plans import load_plan
from tests.workflows.support import make_workers, wait_for
from workflows.common import plan_workflow_id, task_workflow_id
from workflows.plan import AnnualPlanWorkflow
from workflows.task import InspectionTaskWorkflow

pytestmark = pytest.mark.postgres


def two_tasks_over_one_population(code: str) -> bytes:
    """The template's food task twice, every entity drawn (ratio 1), entropy entered by hand."""
    plan = json.loads(shifted_plan(datetime.now(SHANGHAI).date(), window_days=60))
    food = plan["tasks"][1]
    food.update(filter={**food["filter"], "industry": ["F52"]}, frequency_cap=2, entropy_source="福彩3D开奖号码",
                ratios={s: "1" for s in "ABCDU"}, partner_units=[])
    plan.update(plan_code=code, tasks=[{**food, "task_id": f"{code}-{n}"} for n in (1, 2)])
    return json.dumps(plan, ensure_ascii=False).encode()


def selected(engine, task_id: str) -> dict[str, str]:
    ds, d = schema.draw_selection, schema.draws
    with engine.connect() as c:
        rows = c.execute(select(ds.c.uscc, ds.c.stratum).join(d, (d.c.task_id == ds.c.task_id) & (
            d.c.draw_seq == ds.c.draw_seq)).where(ds.c.task_id == task_id, d.c.state == "drawn")).all()
    return dict(rows)


async def test_a_class_entity_is_never_drawn_by_two_tasks(ts_env, directories, tmp_path):
    engine = directories
    code = f"R12-{uuid.uuid4().hex[:6]}"
    load_plan(engine, two_tasks_over_one_population(code), "plan.json")
    first, second = f"{code}-1", f"{code}-2"
    queue, main, heavy = make_workers(ts_env, engine, tmp_path)
    async with main, heavy:
        await ts_env.client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code),
                                           id=plan_workflow_id(code), task_queue=queue)
        handles = {t: ts_env.client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(t))
                   for t in (first, second)}

        async def stage(task_id, expected, draw_seq=1):
            try:
                status = await handles[task_id].query(InspectionTaskWorkflow.status)
            except Exception:  # noqa: BLE001 - not started yet
                return False
            return status.stage == expected and status.draw_seq == draw_seq

        for task_id in (first, second):  # both frozen, neither drawn
            await wait_for(lambda: stage(task_id, Stage.AWAITING_ENTROPY), env=ts_env)
        await handles[first].execute_update(InspectionTaskWorkflow.enter_entropy, EntropyEntry(value="3D-2026331"))
        await wait_for(lambda: stage(first, Stage.DRAWN), env=ts_env)
        await handles[second].execute_update(InspectionTaskWorkflow.enter_entropy, EntropyEntry(value="3D-2026332"))
        # The rules supersede the second draw: a new announcement and freeze, then entropy again.
        await wait_for(lambda: stage(second, Stage.AWAITING_ENTROPY, draw_seq=2), env=ts_env)
        await handles[second].execute_update(InspectionTaskWorkflow.enter_entropy, EntropyEntry(value="3D-2026333"))
        await wait_for(lambda: stage(second, Stage.DRAWN, draw_seq=2), env=ts_env)
        for handle in handles.values():
            await handle.terminate("test over")

    taken_first, taken_second = selected(engine, first), selected(engine, second)
    a_first = {u for u, s in taken_first.items() if s == "A"}
    assert a_first, "the population has A-class entities"
    assert not a_first & set(taken_second), "an A-class entity drawn by two tasks (R12)"
    assert set(taken_first) - a_first <= set(taken_second), "B, C, D and U entities stay drawable up to the cap"
    with engine.connect() as c:
        draws = c.execute(select(schema.draws.c.draw_seq, schema.draws.c.state, schema.draws.c.reason).where(
            schema.draws.c.task_id == second).order_by(schema.draws.c.draw_seq)).all()
        notice = c.execute(select(schema.publications.c.payload).where(
            schema.publications.c.task_id == second, schema.publications.c.step == "supersede-1")).scalar()
    assert [(n, s) for n, s, _ in draws] == [(1, "superseded"), (2, "drawn")]
    assert draws[1].reason.startswith("R12/R14") and '"approver":"spotcheck"' in notice
