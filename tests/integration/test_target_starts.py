"""A shard of a task's targets is started page by page (activities/starts.py): its slice only, each target once,
a heartbeat per page carrying the cursor; a retry goes on from the last heartbeat, and a target started already
(an earlier attempt, an earlier run of the task) is no failure."""
from __future__ import annotations

import dataclasses

import pytest
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import ActivityEnvironment

from activities.starts import StartActivities
from domain.messages.target import TargetRun, TargetsShard
from tests.integration.test_target_counts import seed_task

pytestmark = pytest.mark.postgres


class Server:
    """Stands in for the client: the workflow ids it was asked to start, and the ones that exist already."""

    def __init__(self, existing: set[str]) -> None:
        self.existing, self.asked = existing, []

    async def start_workflow(self, workflow: str, run: TargetRun, *, id: str, task_queue: str, **options) -> None:
        assert workflow == "TargetInspectionWorkflow" and id.endswith("/" + run.uscc) and task_queue
        self.asked.append(id)
        if id in self.existing:
            raise WorkflowAlreadyStartedError(id, workflow)
        self.existing.add(id)


async def test_a_shard_starts_its_slice_once_and_a_retry_goes_on_from_its_heartbeat(fresh_pg_engine):
    task_id, usccs = seed_task(fresh_pg_engine, ["drawn"] * 12)
    prefix = f"target/{task_id}/"
    server = Server(existing={prefix + usccs[3]})  # started by an earlier run of the task
    starts = StartActivities(fresh_pg_engine, server, page_size=3)
    shard = TargetsShard(run=TargetRun(task_id=task_id, uscc="", plan_code="CNT", plan_year=2026, finish_signal="last"),
                         workflow="TargetInspectionWorkflow", id_prefix=prefix, after=usccs[0], skip=1, count=7)
    beats: list = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    done = await env.run(starts.start_targets, shard)
    assert server.asked == [prefix + u for u in usccs[2:9]]  # after usccs[0], past one more, seven of them
    assert (done.handled, done.last) == (7, usccs[8])
    assert beats == [(usccs[4], 3), (usccs[7], 6), (usccs[8], 7)]

    # The attempt is lost after its first heartbeat: the retry asks only for the rest.
    server.asked.clear()
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(ActivityEnvironment.default_info(), heartbeat_details=[usccs[4], 3])
    done = await retry.run(starts.start_targets, shard)
    assert server.asked == [prefix + u for u in usccs[5:9]] and (done.handled, done.last) == (7, usccs[8])
    assert server.existing == {prefix + u for u in usccs[2:9]}
