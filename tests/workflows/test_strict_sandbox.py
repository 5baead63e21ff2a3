"""The tests' workers run the unsandboxed target workflow in the sandbox (SPOTCHECK_STRICT_SANDBOX=1,
set by tests/conftest.py): a wall-clock read in such a workflow fails its workflow task there, while a
production worker (the variable unset) would run it."""
from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

from runtime.client import STRICT_SANDBOX, workflow_runners
from tests.workflows.clock_reader import ClockReader
from tests.workflows.support import history_events, wait_for


async def test_the_tests_sandbox_refuses_a_clock_read_that_production_would_run(ts_env, monkeypatch):
    queue = f"q-{uuid.uuid4()}"
    async with Worker(ts_env.client, task_queue=queue, workflows=[ClockReader], **workflow_runners()):
        strict = await ts_env.client.start_workflow(ClockReader.run, id=f"clock-{uuid.uuid4()}", task_queue=queue)

        async def failed_task():
            events = await history_events(ts_env.client, strict.id)
            return [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
        failures = await wait_for(failed_task, timeout=20, what="the workflow task's failure")
        assert "datetime.now" in failures[0].workflow_task_failed_event_attributes.failure.message
        await strict.terminate("test over")

    monkeypatch.delenv(STRICT_SANDBOX)
    async with Worker(ts_env.client, task_queue=queue, workflows=[ClockReader], **workflow_runners()):
        assert await ts_env.client.execute_workflow(ClockReader.run, id=f"clock-{uuid.uuid4()}", task_queue=queue)
