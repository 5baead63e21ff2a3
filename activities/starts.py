"""Start a slice of a task's target workflows, page by page, from the database.

The task workflow hands each of its shards to this activity instead of starting every target as its child:
a child's start is two events and a transfer through the task's own history, which serialises a province's
120,000 starts on one workflow, where these activities run side by side on every worker of the queue. A
start is idempotent by workflow id (a target already started, or closed, is left alone), and the heartbeat
carries the shard's cursor: a retry goes on from the last page it reported.

A shard starts a page only once the two before it have mostly opened (or a while has passed): started faster than
they open, 120,000 targets each wait in the server's queues with their first run half done, a worker's cache
smaller than them evicts each between its workflow tasks, and every task after the first replays a history
(bench/province.py: 5 targets opened per second so, against 30 when paced).
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

START_PAGE = 50  # targets read per statement and started concurrently; then a heartbeat
# How long a shard waits for its last page to open before it starts the next all the same: pacing, not a gate
# (a target that cannot open, its first activity retrying, must not hold back the rest).
PACE_WAIT = timedelta(seconds=60)
PACE_POLL = 0.25  # seconds between looks at the page's rows


class StartActivities:
    def __init__(self, engine: Engine, client: Client, page_size: int = START_PAGE,
                 pace_wait: timedelta = PACE_WAIT) -> None:
        self._engine = engine
        self._client = client
        self.page_size = page_size
        self._pace_wait = pace_wait

    @activity.defn
    async def start_targets(self, shard: TargetsShard) -> TargetsStarted:
        cursor, handled = shard.after, 0
        skip = shard.skip
        if activity.info().heartbeat_details:  # a retry: on from the last page the previous attempt reported
            cursor, handled = activity.info().heartbeat_details
            skip = 0
        queue = activity.info().task_queue  # the task's: its targets run where it runs
        in_flight: list[str] = []  # the last two pages started
        while handled < shard.count:
            page = await asyncio.to_thread(self._page, shard.run.task_id, cursor, skip,
                                           min(self.page_size, shard.count - handled))
            if not page:
                break
            await self._opened(shard.run.task_id, in_flight, (cursor, handled))
            await asyncio.gather(*(self._start(shard, uscc, queue) for uscc in page))
            in_flight = [*in_flight[-self.page_size:], *page][-2 * self.page_size:]
            cursor, handled, skip = page[-1], handled + len(page), 0
            activity.heartbeat(cursor, handled)
        return TargetsStarted(handled=handled, last=cursor)

    async def _opened(self, task_id: str, in_flight: list[str], beat: tuple) -> None:
        """Until no more than a page of the last two pages is still to open, or PACE_WAIT has passed."""
        deadline = time.monotonic() + self._pace_wait.total_seconds()
        while (in_flight and await asyncio.to_thread(self._unopened, task_id, in_flight) > self.page_size // 2
               and time.monotonic() < deadline):
            await asyncio.sleep(PACE_POLL)
            activity.heartbeat(*beat)

    def _page(self, task_id: str, after: str | None, skip: int, limit: int) -> list[str]:
        with self._engine.connect() as connection:
            return targets.page(connection, task_id, after, limit, skip)

    def _unopened(self, task_id: str, page: list[str]) -> int:
        with self._engine.connect() as connection:
            return targets.unopened(connection, task_id, page)

    async def _start(self, shard: TargetsShard, uscc: str, queue: str) -> None:
        try:
            await self._client.start_workflow(
                shard.workflow, shard.run.model_copy(update={"uscc": uscc}), id=shard.id_prefix + uscc,
                task_queue=queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"{shard.run.task_id} · {uscc}")
        except WorkflowAlreadyStartedError:
            pass  # started by an earlier attempt or run of the task: there already, not a failure
