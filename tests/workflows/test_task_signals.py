"""A signal in the first workflow task of a task's run is handled before `run` starts, and counts.

A target that finishes just as its task continues as new signals the new run before that run has
started: the SDK runs signal handlers first. The count once got lost there (the task then waited for
ever at N-1 of N); signal-with-start puts a signal in exactly that place.
"""
from __future__ import annotations

import uuid

from domain.records import Stage, TaskProgress, TaskRun
from tests.workflows.support import make_workers, wait_for
from workflows.task import InspectionTaskWorkflow


async def test_a_signal_before_run_is_counted(ts_env, pg_engine, tmp_path):
    queue, main, _ = make_workers(ts_env, pg_engine, tmp_path)
    task_id = f"SIG-{uuid.uuid4().hex[:6]}"
    waiting = TaskRun(task_id=task_id, plan_code="SIG", plan_year=2026, unit="360202-SCJ",
                      progress=TaskProgress(stage=Stage.IN_PROGRESS, targets_total=3, started=3, finished=1))
    async with main:
        handle = await ts_env.client.start_workflow(
            InspectionTaskWorkflow.run, waiting, id=f"task/{task_id}", task_queue=queue,
            start_signal="target_finished", start_signal_args=["91360202MA35T0XX1X"])

        async def counted():
            status = await handle.query(InspectionTaskWorkflow.status)
            return status if status.stage == Stage.IN_PROGRESS else None
        status = await wait_for(counted)
        assert (status.finished, status.targets_total) == (2, 3)  # the carried 1, and the signal's
        await handle.signal(InspectionTaskWorkflow.target_finished, "91360202MA35T0XX2X")

        async def all_counted():
            return (await handle.query(InspectionTaskWorkflow.status)).finished == 3
        await wait_for(all_counted)
        await handle.terminate("test over")  # closing would signal a plan this test has not started
