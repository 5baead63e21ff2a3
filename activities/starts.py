"""Start a slice of a task's target workflows, page by page, from the database.

The task workflow hands each of its shards to this activity instead of starting every target as its child:
a child's start is two events and a transfer through the task's own history, which serialises a province's
120,000 starts on one workflow, where these activities run side by side on every worker of the queue. A
start is idempotent by workflow id (a target already started, or closed, is left alone), and the heartbeat
carries the shard's cursor: a retry goes on from the last page it reported.

A shard keeps at most OPENING targets started and not yet opened (waiting for one to open, or a while): started
faster than they open, a province's targets queue on the server with their first run half done, a workflow task
waits past its worker's sticky timeout and goes back to the queue to be replayed from its whole history, and a
cache smaller than the queue evicts them between tasks (bench/province.py: 5 targets opened per second so).
"""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.engine import Engine
from domain.messages.target import TargetsShard, TargetsStarted
from store import targets

START_PAGE = 50  # targets read per statement; a heartbeat once they are started
# Targets a shard has started and not seen open: with MAX_SHARDS shards about 130 in the server's queues, a few
# seconds of one worker's work (bench/province.py), so a target's workflow tasks keep to its worker's cache.
OPENING = 8
# How long a shard waits for one of them to open before it starts more all the same: pacing, not a gate (a
# target that cannot open, its first activity retrying, must not hold back the rest).
PACE_WAIT = timedelta(seconds=60)
PACE_POLL = 0.2  # seconds between looks at their rows


class StartActivities:
    def __init__(self, engine: Engine, client: Client, page_size: int = START_PAGE, opening: int = OPENING,
                 pace_wait: timedelta = PACE_WAIT) -> None:
        self._engine = engine
        self._client = client
        self.page_size = page_size
        self._opening = opening
        self._pace_wait = pace_wait

    @activity.defn
    async def start_targets(self, shard: TargetsShard) -> TargetsStarted:
        cursor, handled, skip = shard.after, 0, shard.skip
        if activity.info().heartbeat_details:  # a retry: on from the last page the previous attempt reported,
            reported, done = activity.info().heartbeat_details
            if done:  # if any: it also beats while its first page waits for room, before it has a cursor
                cursor, handled, skip = reported, done, 0
        queue = activity.info().task_queue  # the task's: its targets run where it runs
        opening: list[str] = []  # started, not seen open
        while handled < shard.count:
            page = await asyncio.to_thread(self._page, shard.run.task_id, cursor, skip,
                                           min(self.page_size, shard.count - handled))
            if not page:
                break
            waiting = page
            while waiting:
                opening = await self._room(shard.run.task_id, opening, (cursor, handled))
                now, waiting = waiting[:self._opening - len(opening)], waiting[self._opening - len(opening):]
                await asyncio.gather(*(self._start(shard, uscc, queue) for uscc in now))
                opening += now
            cursor, handled, skip = page[-1], handled + len(page), 0
            activity.heartbeat(cursor, handled)
        return TargetsStarted(handled=handled, last=cursor)

    async def _room(self, task_id: str, opening: list[str], beat: tuple) -> list[str]:
        """Those of `opening` still to open, once fewer than OPENING are; none once PACE_WAIT has passed."""
        deadline = time.monotonic() + self._pace_wait.total_seconds()
        while opening:
            opening = await asyncio.to_thread(self._unopened, task_id, opening)
            if len(opening) < self._opening:
                return opening
            if time.monotonic() >= deadline:
                return []
            await asyncio.sleep(PACE_POLL)
            activity.heartbeat(*beat)
        return opening

    def _page(self, task_id: str, after: str | None, skip: int, limit: int) -> list[str]:
        with self._engine.connect() as connection:
            return targets.page(connection, task_id, after, limit, skip)

    def _unopened(self, task_id: str, usccs: list[str]) -> list[str]:
        with self._engine.connect() as connection:
            return targets.unopened(connection, task_id, usccs)

    async def _start(self, shard: TargetsShard, uscc: str, queue: str) -> None:
        try:
            await self._client.start_workflow(
                shard.workflow, shard.run.model_copy(update={"uscc": uscc}), id=shard.id_prefix + uscc,
                task_queue=queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"{shard.run.task_id} · {uscc}")
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier attempt or run of the task: there already, not a failure
