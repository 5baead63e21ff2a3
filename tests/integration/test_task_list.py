"""`spotcheck task list` filters by the search attributes the workflows upsert, on the real dev server
(its visibility store answers the same queries as the Web UI and `temporal workflow list --query`).

One task runs with a working day of one second: one target gets its check and result (stage
`entered`), the others miss the field-work window and escalate (`SpotcheckOverdue = true`).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from domain.messages.plan import PlanRun

from domain.messages.target import CheckRecord, ResultEntry
from domain.workdays import SHANGHAI
from service.targets import send, status as target_status
from service.imports import import_examples
from store.plans import load_plan
from tests.conftest import own_schema
from tests.integration.devserver import Cli, workers
from tests.workflows.support import plan_file, wait_for, waiting_targets
from tests.workflows.test_timeline import CHECKPOINTS
from workflows.common import REGION, TASK_QUEUE, plan_workflow_id, target_workflow_id, task_workflow_id
from workflows.plan import AnnualPlanWorkflow
from workflows.task import InspectionTaskWorkflow

pytestmark = pytest.mark.postgres


async def test_task_list_filters_by_search_attribute(env, postgres_url, tmp_path):
    client = env.client
    today = datetime.now(SHANGHAI).date()
    code = f"LST-{uuid.uuid4().hex[:6]}"
    with own_schema(postgres_url) as db:
        import_examples(db.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        cli = Cli(env, db.url, tmp_path)
        plan, _ = load_plan(db.engine, plan_file(today, code, industry="C15", window_days=7), "plan.json")
        task = plan.tasks[0]
        async with workers(env, db.engine, tmp_path, workday_seconds=1):
            await client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code), id=plan_workflow_id(code),
                                        task_queue=TASK_QUEUE)
            usccs = await wait_for(lambda: waiting_targets(client, db.engine, task.task_id), timeout=120,
                                   what="dispatched targets")
            assert len(usccs) >= 2, usccs
            entered, late = usccs[0], usccs[1:]
            team = (await target_status(client, task.task_id, entered)).teams[0].inspectors
            await send(client, task.task_id, entered, "check", CheckRecord(inspectors=team, method="document"))
            await send(client, task.task_id, entered, "result", ResultEntry(
                inspector=team[1], category="no_issue", findings={p: "pass" for p in CHECKPOINTS}))

            async def listed(*filters: str) -> list[str]:
                return [row["task_id"] for row in await cli.json("task", "list", *filters)]

            async def overdue_listed():
                return await listed("--overdue") == [task.task_id]
            await wait_for(overdue_listed, timeout=90, what="the late targets' escalation")
            regions = {u: (await client.get_workflow_handle(target_workflow_id(task.task_id, u)).describe())
                       .typed_search_attributes.get(REGION) for u in usccs}
            stranger = "999999"
            assert stranger not in regions.values()

            async def entered_listed():
                return await listed("--stage", "entered") == [task.task_id]
            await wait_for(entered_listed, what="the entered result in visibility")

            rows = await cli.json("task", "list")
            live = await client.get_workflow_handle_for(InspectionTaskWorkflow.run,
                                                        task_workflow_id(task.task_id)).query(InspectionTaskWorkflow.status)
            assert [(r["task_id"], r["stage"]) for r in rows] == [(task.task_id, live.stage.value)]
            assert rows[0]["targets"] == {"dispatched": len(late), "entered": 1}  # the projection's counts

            # Each filter keeps the task when it matches and drops it when it does not.
            year = str(plan.year)
            assert await listed("--year", year) == [task.task_id]
            assert await listed("--year", str(plan.year + 1)) == []
            assert await listed("--unit", task.unit) == [task.task_id]
            assert await listed("--unit", "360000-XXX") == []
            assert await listed("--stage", "approved") == []
            assert await listed("--stage", "entered", "--region", regions[entered]) == [task.task_id]
            assert await listed("--stage", "entered", "--region", stranger) == []
            assert await listed("--overdue", "--region", regions[late[0]], "--year", year) == [task.task_id]
            assert await listed("--overdue", "--region", stranger) == []
            assert await listed("--stage", "dispatched", "--overdue", "--unit", task.unit) == [task.task_id]
            assert await listed("--plan", code, "--overdue") == [task.task_id]
            assert await listed("--plan", "NO-SUCH-PLAN") == []

            # A value that is no stage or code is refused, naming it, before anything is queried.
            for flag, value, named in (("--stage", "waiting", "'waiting' is not a stage"),
                                       ("--unit", "x' OR '1'='1", "is not a code")):
                run = await cli("task", "list", flag, value)
                assert run.returncode == 2 and named in run.stderr, (run.returncode, run.stderr)
