"""A task counts its closed targets in the projection; a finish signal in a run's first workflow task counts.

A target that finishes just as its task continues as new signals the new run before that run has
started: the SDK runs signal handlers first. Runs before the counting patch lost that count there (the
task then waited for ever at N-1 of N; tests/replay keeps those histories replaying). Counted runs
recount: signal-with-start puts a signal in exactly that place, here the one-per-target signal of a
target started before the patch, then the last target's `targets_finished`.
"""
from __future__ import annotations

import uuid

from sqlalchemy import update
from temporalio.service import RPCError

from db import schema
from domain.messages.task import TaskProgress, TaskRun
from domain.stages import Stage
from tests.integration.test_target_counts import seed_task
from tests.workflows.support import make_workers, wait_for
from workflows.task import InspectionTaskWorkflow


async def test_a_signal_before_run_wakes_a_count(ts_env, fresh_pg_engine, tmp_path):
    engine = fresh_pg_engine
    task_id, usccs = seed_task(engine, ["closed", "closed", "checked"])
    queue, main, _ = make_workers(ts_env, engine, tmp_path)
    waiting = TaskRun(task_id=task_id, plan_code=task_id.rsplit("-", 1)[0], plan_year=2026, unit="360202-SCJ",
                      progress=TaskProgress(stage=Stage.IN_PROGRESS, targets_total=3, started=3, finished=1,
                                            cursor=usccs[-1]))
    async with main:
        handle = await ts_env.client.start_workflow(
            InspectionTaskWorkflow.run, waiting, id=f"task/{task_id}-{uuid.uuid4().hex[:4]}", task_queue=queue,
            start_signal="target_finished", start_signal_args=[usccs[1]])

        async def counted(n: int):
            status = await handle.query(InspectionTaskWorkflow.status)
            return status if status.stage == Stage.IN_PROGRESS and status.finished == n else None
        status = await wait_for(lambda: counted(2))
        assert status.targets_total == 3  # two closed in the projection, whatever the carried count said

        with engine.begin() as c:
            c.execute(update(schema.targets).where(schema.targets.c.uscc == usccs[2]).values(stage="closed"))
        await handle.signal(InspectionTaskWorkflow.targets_finished, usccs[2])
        await wait_for(lambda: counted(3), what="the recount after the last target's signal")
        try:
            await handle.terminate("test over")  # closing would publish for a plan this test has not loaded
        except RPCError:
            pass  # already failed on that
