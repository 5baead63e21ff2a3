"""A shard of a task's targets is started page by page (activities/starts.py): its slice only, each target once,
a heartbeat per page carrying the cursor; a retry goes on from the last heartbeat, and a target started already
(an earlier attempt, an earlier run of the task) is no failure. A shard keeps only a few targets started and not
yet open, waiting for them for a while and not for ever."""
from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import ActivityEnvironment

from activities.starts import StartActivities
from db import schema
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


class OpeningServer(Server):
    """Starts each workflow and opens it (names it on its row, as its first activity does) a moment later,
    unless told the targets never open; notes how many of the targets asked before were open at each ask."""

    def __init__(self, engine, task_id: str, opens: bool) -> None:
        super().__init__(existing=set())
        self.engine, self.task_id, self.opens, self.open_at_ask, self._opening = engine, task_id, opens, [], []

    async def start_workflow(self, workflow: str, run: TargetRun, *, id: str, task_queue: str, **options) -> None:
        await super().start_workflow(workflow, run, id=id, task_queue=task_queue, **options)
        with self.engine.connect() as c:
            self.open_at_ask.append(c.execute(select(func.count()).select_from(schema.targets).where(
                schema.targets.c.task_id == self.task_id, schema.targets.c.workflow_id != "")).scalar_one())
        if self.opens:
            self._opening.append(asyncio.create_task(self._open(run.uscc, id)))

    async def settled(self) -> None:
        await asyncio.gather(*self._opening)

    async def _open(self, uscc: str, workflow_id: str) -> None:
        await asyncio.sleep(0.1)
        with self.engine.begin() as c:
            c.execute(update(schema.targets).where(schema.targets.c.task_id == self.task_id,
                                                   schema.targets.c.uscc == uscc).values(workflow_id=workflow_id))


def unopened_task(engine, count: int) -> tuple[str, list[str], TargetsShard]:
    task_id, usccs = seed_task(engine, ["drawn"] * count)
    with engine.begin() as c:  # drawn and dispatched, no workflow yet
        c.execute(update(schema.targets).where(schema.targets.c.task_id == task_id).values(workflow_id=""))
    shard = TargetsShard(run=TargetRun(task_id=task_id, uscc="", plan_code="CNT", plan_year=2026, finish_signal="last"),
                         workflow="TargetInspectionWorkflow", id_prefix=f"target/{task_id}/", count=count)
    return task_id, usccs, shard


async def test_a_shard_keeps_only_a_few_targets_started_and_not_yet_open(fresh_pg_engine):
    task_id, usccs, shard = unopened_task(fresh_pg_engine, 9)
    server = OpeningServer(fresh_pg_engine, task_id, opens=True)
    starts = StartActivities(fresh_pg_engine, server, page_size=5, opening=2)
    done = await ActivityEnvironment().run(starts.start_targets, shard)
    await server.settled()
    assert done.handled == 9 and server.asked == [f"target/{task_id}/{u}" for u in usccs]
    # At each start, of the targets started before it fewer than two were still to open: never the nine at once.
    assert all(n - opened < 2 for n, opened in enumerate(server.open_at_ask)), server.open_at_ask
    assert server.open_at_ask[-1] >= 6 and server.open_at_ask[:2] == [0, 0]


async def test_targets_that_never_open_hold_the_next_back_only_for_a_while(fresh_pg_engine):
    task_id, usccs, shard = unopened_task(fresh_pg_engine, 6)
    server = OpeningServer(fresh_pg_engine, task_id, opens=False)  # say, every first activity retrying
    beats: list = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    starts = StartActivities(fresh_pg_engine, server, page_size=3, opening=3, pace_wait=timedelta(seconds=1))
    done = await env.run(starts.start_targets, shard)
    assert done.handled == 6 and len(server.asked) == 6 and server.open_at_ask == [0] * 6
    # The heartbeat went on while it waited: the page's own, then the wait's, each carrying the cursor.
    assert beats.count((usccs[2], 3)) > 2 and beats[-1] == (usccs[5], 6)


async def test_a_retry_after_a_beat_before_the_first_page_was_started_starts_the_shard_s_own_slice(fresh_pg_engine):
    """The attempt was lost while its first page waited for room, having beaten (no cursor, none handled): the
    retry starts the shard's slice from its own beginning, not the task's (it once started the slice before
    it, found every one started already and ended with its own slice never started)."""
    task_id, usccs, _ = unopened_task(fresh_pg_engine, 10)
    prefix = f"target/{task_id}/"
    server = Server(existing={prefix + u for u in usccs[:5]})  # the first shard's slice, started
    second = TargetsShard(run=TargetRun(task_id=task_id, uscc="", plan_code="CNT", plan_year=2026,
                                        finish_signal="last"),
                          workflow="TargetInspectionWorkflow", id_prefix=prefix, skip=5, count=5)
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(ActivityEnvironment.default_info(), heartbeat_details=[None, 0])
    starts = StartActivities(fresh_pg_engine, server, page_size=3, opening=10, pace_wait=timedelta(0))
    done = await retry.run(starts.start_targets, second)
    assert server.asked == [prefix + u for u in usccs[5:]] and (done.handled, done.last) == (5, usccs[9])
