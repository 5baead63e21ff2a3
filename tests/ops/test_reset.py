"""docs/runbooks/reset.md, tried on the dev server: a workflow stuck before a fix behind `workflow.patched`
stays stuck when the fixed worker is deployed (its history replays the old path), and goes on once
`temporal workflow reset --type LastWorkflowTask` has it run that workflow task again under the fix."""
from __future__ import annotations

import asyncio
import subprocess
import uuid

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

from tests.conftest import venv_binary
from tests.ops.stuck import NAME, AfterTheFix, BeforeTheFix


async def settled(handle) -> list:
    """The history once the workflow waits with nothing pending (its last event a completed workflow task)."""
    for _ in range(100):
        events = (await handle.fetch_history()).events
        if events and events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and any(
                e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in events):
            return events
        await asyncio.sleep(0.1)
    raise AssertionError("the workflow never settled")


async def test_a_reset_lets_a_stuck_workflow_proceed_under_the_fix(env):
    client = env.client
    queue, workflow_id = f"reset-{uuid.uuid4().hex[:8]}", f"task/STUCK-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[BeforeTheFix]):
        handle = await client.start_workflow(NAME, id=workflow_id, task_queue=queue, result_type=str)
        await settled(handle)
    async with Worker(client, task_queue=queue, workflows=[AfterTheFix]):
        # Deployed, the fix changes nothing for the stuck run: nothing wakes it, and a replay keeps the old path.
        await asyncio.sleep(1)
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        reset = await asyncio.to_thread(subprocess.run, [
            venv_binary("temporal", "TEMPORAL_CLI_PATH"), "workflow", "reset",
            "--address", client.service_client.config.target_host, "--namespace", client.namespace,
            "--workflow-id", workflow_id, "--type", "LastWorkflowTask",
            "--reason", "stuck before the no-go-ahead fix (test)"], capture_output=True, text=True, timeout=60)
        assert reset.returncode == 0, reset.stderr
        new_run = client.get_workflow_handle(workflow_id, result_type=str)  # the latest run: the reset's
        assert await asyncio.wait_for(new_run.result(), 30) == "done"
        assert (await new_run.describe()).run_id != handle.result_run_id
        old = await client.get_workflow_handle(workflow_id, run_id=handle.result_run_id).describe()
        assert old.status == WorkflowExecutionStatus.TERMINATED  # a reset ends the run it resets
