"""R23 on the real server: a result marked as touching secrets or privacy waits for a supervisor's decision
before publication, and is published with the marked fields withheld and a note that they were.

The target's flow as in test_target_runs (a working day of two seconds), in a schema of this module's own.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from db import schema
from domain.messages.target import CheckRecord, ResultEntry, Review, Withholding, WithholdingDecision
from domain.stages import Stage
from domain.workdays import Deadlines, calendar_from_env
from read.public_site import WITHHELD, site
from read.register import publication_register
from read.timeline import execution_chain
from service.imports import import_examples
from service.targets import send, status as target_status
from store.plans import load_plan
from tests.conftest import own_schema
from tests.workflows.support import (
    dev_server,
    dispatched_targets,
    make_workers,
    people,
    plan_file,
    rows_of,
    server_today,
    start_plan,
    wait_for,
)
from workflows.common import target_workflow_id
from workflows.target import WITHHOLDS_BEFORE_PUBLICATION, TargetInspectionWorkflow

pytestmark = pytest.mark.postgres

INDUSTRY = "C15"


@pytest.fixture
def engine(postgres_url):
    with own_schema(postgres_url) as own:
        import_examples(own.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        yield own.engine


def result_rows(engine, task_id: str, uscc: str) -> list[dict]:
    p = schema.publications
    with engine.connect() as c:
        return [dict(r) for r in c.execute(select(p).where(p.c.task_id == task_id, p.c.uscc == uscc,
                                                           p.c.kind == "result")).mappings()]


async def test_a_marked_result_waits_for_its_approver_and_is_published_with_the_fields_withheld(engine, tmp_path):
    async with dev_server() as env:
        client = env.client
        code = f"WH-{uuid.uuid4().hex[:6]}"
        plan, _ = load_plan(engine, plan_file(await server_today(env), code, industry=INDUSTRY), "plan.json")
        task_id = plan.tasks[0].task_id
        queue, main, heavy = make_workers(env, engine, tmp_path,
                                          deadlines=Deadlines(calendar_from_env(), workday_seconds=2.0))
        async with main, heavy:
            await start_plan(client, code, queue)
            uscc = (await wait_for(lambda: dispatched_targets(engine, task_id), timeout=90))[0]
            workflow_id = target_workflow_id(task_id, uscc)
            handle = client.get_workflow_handle_for(TargetInspectionWorkflow.run, workflow_id)
            status = await wait_for(lambda: _waiting_for_check(client, task_id, uscc), timeout=60)
            team = status.teams[0].inspectors
            supervisor = people(engine, "supervisor")[0]

            check = CheckRecord(inspectors=team, method="document")
            assert (await send(client, task_id, uscc, "check", check)).accepted
            marked = Withholding(marked_by=team[0], grounds="privacy", fields=["entity_name"],
                                 reason="个体工商户名称含经营者姓名")
            with pytest.raises(WorkflowUpdateFailedError) as refused:  # nothing to decide before a marking
                await handle.execute_update(TargetInspectionWorkflow.decide_withholding,
                                            WithholdingDecision(approver=team[0], approve=True))
            assert "is not marked for withholding" in refused.value.cause.message
            assert "publication waits" in await handle.execute_update(TargetInspectionWorkflow.mark_withholding, marked)
            assert (await send(client, task_id, uscc, "result", ResultEntry(
                inspector=team[1], category="no_issue", findings={p: "pass" for p in status.checklist}))).accepted
            assert (await send(client, task_id, uscc, "review",
                               Review(reviewer=people(engine, "reviewer")[0], approve=True))).accepted

            # Approved, and waiting for the withholding's approver: nothing is published meanwhile.
            await wait_for(lambda: _stage(client, task_id, uscc, Stage.APPROVED), timeout=30)
            assert result_rows(engine, task_id, uscc) == []
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(TargetInspectionWorkflow.mark_withholding, marked)
            assert "only before it is approved" in refused.value.cause.message
            assert (await handle.execute_update(TargetInspectionWorkflow.decide_withholding, WithholdingDecision(
                approver=supervisor, approve=True))).startswith("approved")
            assert await handle.result() == "closed"

            [row] = result_rows(engine, task_id, uscc)
            payload = json.loads(row["payload"])
            assert "entity_name" not in payload and payload["withheld"] == ["entity_name"]
            assert payload["withheld_grounds"] == "privacy" and "个人隐私" in payload["withheld_note"]
            assert payload["category"] == "no_issue"  # what was not marked is published
            [record] = rows_of(engine, schema.register_decisions, workflow_id)
            assert (record["kind"], record["decision"], record["decided_by"], record["requested_by"]) == \
                   ("withholding", "approved", supervisor, team[0])
            with engine.connect() as c:
                [entry] = [e for e in publication_register(c) if e["uscc"] == uscc and e["kind"] == "result"]
                page = site(c)[f"entities/{uscc}.html"]
            assert "entity_name" not in entry
            name = _entity_name(engine, uscc)
            assert name not in page and WITHHELD in page and payload["withheld_note"] in page

            # Every run replays with the current code, the patch marker in the last one.
            replayer = Replayer(workflows=[TargetInspectionWorkflow], data_converter=pydantic_data_converter)
            runs = await execution_chain(client, workflow_id)
            for events in runs:
                replayed = await replayer.replay_workflow(WorkflowHistory(workflow_id, list(events)),
                                                          raise_on_replay_failure=False)
                assert replayed.replay_failure is None, replayed.replay_failure
            assert WITHHOLDS_BEFORE_PUBLICATION in json.dumps(
                [str(e.marker_recorded_event_attributes) for e in runs[-1]], ensure_ascii=False)


async def _waiting_for_check(client, task_id: str, uscc: str):
    status = await target_status(client, task_id, uscc)
    return status if status.stage == Stage.DISPATCHED and status.teams and status.checklist else None


async def _stage(client, task_id: str, uscc: str, stage: Stage) -> bool:
    return (await target_status(client, task_id, uscc)).stage == stage


def _entity_name(engine, uscc: str) -> str:
    with engine.connect() as c:
        return c.execute(select(schema.entities.c.name).where(schema.entities.c.uscc == uscc)).scalars().first()
