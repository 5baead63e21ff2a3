"""What every workflow, worker and client agrees on: task queues, ids, search attributes, retries."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ApplicationError

TASK_QUEUE = "spotcheck"
HEAVY_TASK_QUEUE = "spotcheck-heavy"  # freeze, draw, dispatch: CPU-bound, in their own process

STAGE = SearchAttributeKey.for_keyword("SpotcheckStage")
PLAN_YEAR = SearchAttributeKey.for_int("SpotcheckPlanYear")
TASK_ID = SearchAttributeKey.for_keyword("SpotcheckTaskId")
UNIT = SearchAttributeKey.for_keyword("SpotcheckUnit")
REGION = SearchAttributeKey.for_keyword("SpotcheckRegion")
OVERDUE = SearchAttributeKey.for_bool("SpotcheckOverdue")
# The one list: the embedded server, the test servers and docker-compose register these.
# Never the credit-risk class (R29): anyone with UI access would read it.
SEARCH_ATTRIBUTES = (STAGE, PLAN_YEAR, TASK_ID, UNIT, REGION, OVERDUE)

# Errors that no retry can mend: the workflow sees them at once.
NON_RETRYABLE = ["DrawError", "DispatchError", "PlanInvalid", "NotFound"]
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=NON_RETRYABLE,
)
# A light activity is a few statements or one webhook call (10 s timeout). Its timeout is how long an
# attempt lost with a killed worker waits before the retry: the chaos test saw p99 under 6 s at load 13.
LIGHT = dict(start_to_close_timeout=timedelta(seconds=30), retry_policy=RETRY)
HEAVY = dict(
    task_queue=HEAVY_TASK_QUEUE,
    start_to_close_timeout=timedelta(hours=2),
    heartbeat_timeout=timedelta(minutes=2),
    retry_policy=RETRY,
)

CHILD_BATCH = 100  # children started concurrently
CHILDREN_PER_RUN = 500  # then continue-as-new, well below the 2,000-pending and history limits
# Targets are started by activities, a shard each, side by side on the queue's workers: as many shards as
# SHARD_TARGETS fill, at most MAX_SHARDS (each start a request to the server, a page of them at a time).
SHARD_TARGETS = 200
MAX_SHARDS = 16
STARTS = dict(start_to_close_timeout=timedelta(hours=1), heartbeat_timeout=timedelta(minutes=1), retry_policy=RETRY)


def plan_workflow_id(plan_code: str) -> str:
    return f"plan/{plan_code}"


def task_workflow_id(task_id: str) -> str:
    return f"task/{task_id}"


def target_workflow_id(task_id: str, uscc: str) -> str:
    return f"target/{task_id}/{uscc}"


# A wait whose moment has passed still starts its timer, for a moment. The clock a live workflow task reads
# can lag the one its replay reads: in a chaos run, a worker that kept a target cached through a server
# restart started a 0.72 s timer for the order deadline where the replay of that history found the deadline
# passed and scheduled the next activity (tests/replay/test_patching.py keeps that history). A command chosen
# by the sign of (deadline - now) then differs between the two; a timer of any length does not. Runs from
# before the patch keep the old branch.
ALWAYS_TIMED = "waits-always-timed"
MOMENT = timedelta(milliseconds=1)


def time_left(deadline: datetime) -> timedelta | None:
    """In a workflow: how long to wait for `deadline`, never nothing; None (no timer: the deadline passed)
    only in runs from before ALWAYS_TIMED."""
    timed = workflow.patched(ALWAYS_TIMED)
    remaining = deadline - workflow.now()
    if remaining > timedelta(0):
        return remaining
    return MOMENT if timed else None


async def wait_until(done: Callable[[], bool], deadline: datetime, summary: str) -> bool:
    """In a workflow: wait for `done` until `deadline` (a durable timer named `summary`); False when
    the deadline came first."""
    remaining = time_left(deadline)
    if remaining is None:
        return done()
    return await wait_at_most(done, remaining, summary)


async def wait_at_most(done: Callable[[], bool], remaining: timedelta, summary: str) -> bool:
    """In a workflow: wait for `done` at most `remaining` (a durable timer named `summary`); False when the
    time came first."""
    try:
        await workflow.wait_condition(done, timeout=remaining, timeout_summary=summary)
        return True
    except asyncio.TimeoutError:
        return done()


async def signal_unless_closed(workflow_id: str, signal: str, arg: str) -> bool:
    """In a workflow: signal another one; False when it has closed already (the server finds no open run)."""
    try:
        await workflow.get_external_workflow_handle(workflow_id).signal(signal, arg)
        return True
    except ApplicationError as closed:
        workflow.logger.info("not signalled %s (%s): %s", workflow_id, signal, closed)
        return False
