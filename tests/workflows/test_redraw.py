"""Targeted entities before the freeze, a redraw before dispatch, and a task cancelled while its targets run
(one of them already closed)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError

from db import schema
from domain.access import Actor
from domain.messages.plan import Adjustment, PlanRun
from domain.messages.target import CheckRecord, ResultEntry, Review
from domain.messages.task import Redraw, TargetedEntity
from domain.stages import Stage
from domain.workdays import SHANGHAI
from read.timeline import timeline
from runtime import config
from runtime.context import Context
from service import approvals, identity
from service.targets import send
from service.targets import status as target_status
from store.plans import load_plan
from tests.workflows.support import (
    ALL_PASS,
    history_events,
    make_workers,
    people,
    plan_file,
    target_row,
    wait_for,
    waiting_targets,
)
from workflows.common import plan_workflow_id, target_workflow_id, task_workflow_id
from workflows.plan import AnnualPlanWorkflow
from workflows.task import InspectionTaskWorkflow

pytestmark = pytest.mark.postgres
OUTSIDE_FILTER = "913602031031443659"  # a 珠山区 entity: not in the 昌江区 task's population
LAW = "《产品质量法》第十五条"  # a legal basis, recorded for auditors (R12's exception)


async def test_targeted_redraw_and_cancel(ts_env, directories, tmp_path):
    engine = directories
    code = f"RD-{uuid.uuid4().hex[:6]}"
    plan, _ = load_plan(engine, plan_file(datetime.now(SHANGHAI).date(), code), "plan.json")
    task_id = plan.tasks[0].task_id
    queue, main, heavy = make_workers(ts_env, engine, tmp_path)
    async with main, heavy:
        plan_handle = await ts_env.client.start_workflow(
            AnnualPlanWorkflow.run, PlanRun(plan_code=code), id=plan_workflow_id(code), task_queue=queue)
        task = ts_env.client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(task_id))

        async def stage(expected):
            try:
                return (await task.query(InspectionTaskWorkflow.status)).stage == expected
            except Exception:  # noqa: BLE001 - not started yet
                return False

        await wait_for(lambda: stage(Stage.ANNOUNCED))
        with pytest.raises(WorkflowUpdateFailedError):
            await task.execute_update(InspectionTaskWorkflow.add_target,
                                      TargetedEntity(uscc="913602031031443650", reason="complaint"))  # bad check digit
        with pytest.raises(WorkflowUpdateFailedError):  # a redraw before any draw
            await task.execute_update(InspectionTaskWorkflow.redraw, Redraw(reason="x", approver="JDZ-S001"))
        await task.execute_update(InspectionTaskWorkflow.add_target,
                                  TargetedEntity(uscc=OUTSIDE_FILTER, reason="complaint 12345", legal_basis=LAW))

        await wait_for(lambda: stage(Stage.DRAWN), env=ts_env, skip=timedelta(hours=3))
        # The plan's planner asks, a supervisor of its owner unit approves: each as they authenticated.
        ctx = Context(config.load(tmp_path), engine=engine, client=ts_env.client)
        planner = Actor(id="plan.jdz", roles=frozenset({"planner"}), unit="360200-SCJ", method="password")
        supervisor = Actor(id="JDZ-I011", roles=frozenset({"supervisor"}), unit="360200-SCJ", method="oidc")
        asked = await approvals.request_redraw(ctx, planner, task_id, reason="entropy value was mistyped")
        with pytest.raises(identity.Forbidden, match="cannot approve it too"):
            await approvals.approve(ctx, Actor(id="plan.jdz", roles=frozenset({"supervisor"}), unit="360200-SCJ",
                                               method="password"), asked.request_id)
        done = await approvals.approve(ctx, supervisor, asked.request_id)
        assert (done.requested_by, done.approved_by) == ("plan.jdz", "JDZ-I011") and "JDZ-I011" in done.message
        assert (await approvals.approve(ctx, supervisor, asked.request_id)).message == done.message  # a retry: once
        with engine.connect() as c:
            request = c.execute(select(schema.approval_requests).where(  # the database is the session's
                schema.approval_requests.c.request_id == asked.request_id)).mappings().one()
        assert (request["state"], request["requested_by"], request["approved_by"]) == ("approved", "plan.jdz",
                                                                                       "JDZ-I011")
        await wait_for(lambda: stage(Stage.IN_PROGRESS), env=ts_env, skip=timedelta(hours=3))

        with engine.connect() as c:
            draws = c.execute(select(schema.draws).where(schema.draws.c.task_id == task_id)
                              .order_by(schema.draws.c.draw_seq)).mappings().all()
            targets = c.execute(select(schema.targets.c.uscc, schema.targets.c.kind).where(
                schema.targets.c.task_id == task_id)).all()
            superseded = c.execute(select(schema.publications.c.payload).where(
                schema.publications.c.task_id == task_id, schema.publications.c.step == "supersede-1")).scalar()
        assert [d["state"] for d in draws] == ["superseded", "drawn"]
        assert draws[0]["commitment"] != draws[1]["commitment"]
        assert (draws[1]["reason"], draws[1]["approver"]) == ("entropy value was mistyped", "JDZ-I011")
        assert '"superseded_by":2' in superseded
        assert (OUTSIDE_FILTER, "targeted") in [(u, k) for u, k in targets]

        # One target closes before the cancellation: telling it finds no open run, and it counted itself.
        usccs = await wait_for(lambda: waiting_targets(ts_env.client, engine, task_id), env=ts_env)
        closed = usccs[0]
        team = (await target_status(ts_env.client, task_id, closed)).teams[0].inspectors
        await send(ts_env.client, task_id, closed, "check", CheckRecord(inspectors=team, method="document"))
        await send(ts_env.client, task_id, closed, "result", ResultEntry(inspector=team[0], category="no_issue",
                                                                         findings=ALL_PASS))
        await send(ts_env.client, task_id, closed, "review", Review(reviewer=people(engine, "reviewer")[0], approve=True))
        await wait_for(lambda: target_row(engine, task_id, closed)["stage"] == "closed", env=ts_env,
                       skip=timedelta(minutes=10), what="the first target closed")

        await plan_handle.execute_update(AnnualPlanWorkflow.adjust, Adjustment(
            kind="cancel", task_id=task_id, reason="merged into a joint task", approver="JDZ-S001"))
        outcome = await plan_handle.result()
    assert outcome.tasks_cancelled == 1
    with engine.connect() as c:
        closing = c.execute(select(schema.publications.c.payload).where(
            schema.publications.c.task_id == task_id, schema.publications.c.step == "close")).scalar()
        stages = dict(c.execute(select(schema.targets.c.uscc, schema.targets.c.stage)
                                .where(schema.targets.c.task_id == task_id)).all())
    assert stages == {uscc: "closed" if uscc == closed else "cancelled" for uscc in usccs}
    task_events = await history_events(ts_env.client, task_workflow_id(task_id))
    signalled = [e.workflow_execution_signaled_event_attributes.signal_name for e in task_events
                 if e.HasField("workflow_execution_signaled_event_attributes")]
    assert signalled.count("targets_finished") == 1 and "target_finished" not in signalled
    not_told = [e for e in task_events if e.HasField("signal_external_workflow_execution_failed_event_attributes")]
    assert [e.signal_external_workflow_execution_failed_event_attributes.workflow_execution.workflow_id
            for e in not_told] == [target_workflow_id(task_id, closed)]
    assert '"state":"cancelled"' in closing and "merged into a joint task" in closing
    # The task's history records the legal basis with the targeted entity; the public register never has it.
    added = [e for e in await timeline(ts_env.client, task_id) if e["event"] == "target added"]
    assert [(e["target"], e["details"]) for e in added] == [(OUTSIDE_FILTER, f"complaint 12345; legal basis {LAW}")]
    with engine.connect() as c:
        assert not any(LAW in p for p in c.execute(select(schema.publications.c.payload)).scalars())
