"""`projection rebuild` on the real dev server: a small year runs to its close (results with follow-ups
handed off and closed), its histories are archived and one target's deleted from Temporal; the rebuild
replays them all (that one from the archive) into a fresh schema, the draw made again from its secrets,
and finds no difference; rows altered by hand (a target, the draw, a selected entity, the frozen pool, a
delivery) are then the differences it names."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError, RPCStatusCode

from activities.archive import closed_query
from db import schema
from domain.messages.archiver import ArchiveBatch
from domain.messages.plan import PlanRun
from domain.workdays import SHANGHAI
from service.imports import import_examples
from store.plans import load_plan
from tests.conftest import own_schema
from tests.integration.devserver import Cli, workers
from tests.workflows.support import approve_every_target, plan_file, wait_for, waiting_targets
from tests.workflows.test_timeline import CHECKPOINTS
from workflows.archiver import HistoryArchiverWorkflow
from workflows.common import TASK_QUEUE, plan_workflow_id, target_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres
INDUSTRY = "C15"  # a few targets; the schema is this module's own, so is the population
# No issue; an abnormal listing and a case lead, each handed off and closed on acceptance (deliver).
WORKDAY_SECONDS = 1  # the task's windows pass in seconds
CATEGORIES = ["no_issue", "unreachable", "obstructed"]


@pytest.fixture(scope="module")
def db(postgres_url):
    with own_schema(postgres_url) as own:
        import_examples(own.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        yield own.engine, own.url


def count(engine, table) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table)).scalar()


async def gone_from_temporal(client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return False


async def test_a_year_rebuilt_from_its_histories_matches_and_an_altered_row_is_named(env, db, tmp_path, monkeypatch):
    # The rebuild computes deadlines with the workers' calendar: the command line is given the same one.
    monkeypatch.setenv("SPOTCHECK_DEMO_WORKDAY_SECONDS", str(WORKDAY_SECONDS))
    engine, url = db
    client = env.client
    cli = Cli(env, url, tmp_path)
    code = f"PRJ-{uuid.uuid4().hex[:6]}"
    plan, _ = load_plan(engine, plan_file(datetime.now(SHANGHAI).date(), code, industry=INDUSTRY), "plan.json")
    task_id = plan.tasks[0].task_id
    async with workers(env, engine, tmp_path, workday_seconds=WORKDAY_SECONDS):
        handle = await client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code),
                                             id=plan_workflow_id(code), task_queue=TASK_QUEUE)
        usccs = await wait_for(lambda: waiting_targets(client, engine, task_id), timeout=120, what="dispatched targets")
        await approve_every_target(client, engine, task_id, usccs, CATEGORIES, CHECKPOINTS)
        assert (await asyncio.wait_for(handle.result(), timeout=180)).tasks_closed == 1

        # Archived, then one target deleted from Temporal: the rebuild must read it from the archive.
        gone = target_workflow_id(task_id, usccs[0])

        async def listed():
            return gone in {w.id async for w in client.list_workflows(closed_query(None))}
        await wait_for(listed, what="closed runs in visibility")
        await client.execute_workflow(HistoryArchiverWorkflow.run, ArchiveBatch(limit=500),
                                      id=f"history-archive-{uuid.uuid4().hex[:6]}", task_queue=TASK_QUEUE)
    await client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
        namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=gone)))
    await wait_for(lambda: gone_from_temporal(client, gone), timeout=180, what="deleted from Temporal")
    assert len(usccs) >= 3 and count(engine, schema.follow_ups) >= 2  # every compared table has rows

    run = await cli("projection", "rebuild", "--year", str(plan.year), "--json")
    report = json.loads(run.stdout)
    assert run.returncode == 0 and report["replay_failures"] == [] and report["differences"] == [], run.stdout
    assert report["from_archive"] >= 1, report
    assert all(report["tables"][t] > 0 for t in ("targets", "teams", "publications", "follow_ups", "draws",
                                                 "draw_selection", "dispatch_pools", "outbox")), report
    assert report["excluded"]["publications"]["published_at"] and report["excluded"]["draws"]["nonce"]
    assert report["presence_only"]["outbox"]["delivered_at"] and report["rows_left_out"]["alerts"]["why"]

    # One row of each kind of projection damaged by hand: the rebuild names each, and nothing else.
    altered, reselected = usccs[1], usccs[2]
    ds, d, o = schema.draw_selection, schema.draws, schema.outbox
    with engine.begin() as c:
        c.execute(update(schema.targets).where(schema.targets.c.task_id == task_id, schema.targets.c.uscc == altered)
                  .values(method="altered"))
        stratum = c.execute(select(ds.c.stratum).where(ds.c.task_id == task_id, ds.c.uscc == reselected)).scalar_one()
        c.execute(update(ds).where(ds.c.task_id == task_id, ds.c.uscc == reselected).values(stratum="Z"))
        commitment = c.execute(select(d.c.commitment).where(d.c.task_id == task_id)).scalar_one()
        c.execute(update(d).where(d.c.task_id == task_id).values(commitment="0" * 64))
        handed = c.execute(select(o.c.workflow_id, o.c.step).where(o.c.workflow_id.like(f"target/{task_id}/%"),
                                                                   o.c.delivered_at.is_not(None))
                           .order_by(o.c.workflow_id, o.c.step).limit(1)).one()
        c.execute(update(o).where(o.c.workflow_id == handed.workflow_id, o.c.step == handed.step)
                  .values(delivered_at=None))
        pool = c.execute(select(schema.dispatch_pools).where(schema.dispatch_pools.c.task_id == task_id)).mappings().one()
        c.execute(update(schema.dispatch_pools).where(schema.dispatch_pools.c.task_id == task_id).values(load_cap=99))
    run = await cli("projection", "rebuild", "--year", str(plan.year), "--json")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["replay_failures"] == [], report["replay_failures"]
    assert report["differences"] == [
        {"table": "targets", "key": {"task_id": task_id, "uscc": altered},
         "column": "method", "live": "altered", "rebuilt": "document"},
        {"table": "draws", "key": {"task_id": task_id, "draw_seq": 1},
         "column": "commitment", "live": "0" * 64, "rebuilt": commitment},
        {"table": "draw_selection", "key": {"task_id": task_id, "draw_seq": 1, "uscc": reselected},
         "column": "stratum", "live": "Z", "rebuilt": stratum},
        {"table": "dispatch_pools", "key": {"task_id": task_id, "unit_code": pool["unit_code"]},
         "column": "load_cap", "live": 99, "rebuilt": pool["load_cap"]},
        {"table": "outbox", "key": {"workflow_id": handed.workflow_id, "step": handed.step},
         "column": "delivered_at", "live": False, "rebuilt": True},
    ], report["differences"]
