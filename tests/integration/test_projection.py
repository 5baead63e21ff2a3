"""`projection rebuild` on the real dev server: a small year runs to its close (results with follow-ups
handed off and closed), its histories are archived and one target's deleted from Temporal; the rebuild
replays them all (that one from the archive) into a fresh schema and finds no difference; one live row
altered by hand is then the one difference it names."""
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
    assert all(report["tables"][t] > 0 for t in ("targets", "teams", "publications", "follow_ups")), report
    assert report["excluded"]["publications"]["published_at"]

    altered = usccs[1]
    with engine.begin() as c:
        c.execute(update(schema.targets).where(schema.targets.c.task_id == task_id, schema.targets.c.uscc == altered)
                  .values(method="altered"))
    run = await cli("projection", "rebuild", "--year", str(plan.year), "--json")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["differences"] == [{"table": "targets", "key": {"task_id": task_id, "uscc": altered},
                                      "column": "method", "live": "altered", "rebuilt": "document"}], report
