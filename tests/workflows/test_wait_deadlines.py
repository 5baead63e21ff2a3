"""The waits on people that used to wait for ever have deadlines on the working-day calendar.

One task announces an entropy source, so after the freeze it waits for the value; its team size is
larger than the unit's inspector pool, so every target it dispatches waits for a supervisor's manual
assignment. One run (module fixture `scenario`) skips time with `env.sleep` through both waits:
- the task: no value entered → reminder at 09:00 one working day before the deadline, escalation at
  the end of the 5th working day after the freeze, SpotcheckOverdue true; then the value goes in and
  the draw runs;
- target `late`: never staffed → reminder, escalation at the end of the 3rd working day after it
  opened, SpotcheckOverdue true and the row overdue;
- target `staffed`: a supervisor assigns a team before the reminder → no staffing alert, dispatched.
Each deadline is the one the worker's calendar computes from the instant the wait began.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError

from db import schema
from domain import alert_texts
from domain.messages.target import ManualAssignment
from domain.messages.task import EntropyEntry
from domain.workdays import Deadlines, calendar_from_env
from service.targets import send
from store.plans import load_plan
from tests.workflows.support import (
    UNIT,
    alerts_of,
    history_events,
    make_workers,
    people,
    plan_file,
    release_leaked_time_lock,
    rows_of,
    server_today,
    sleep_until,
    start_plan,
    target_row,
    terminate_chain,
    timer_fire_times,
    wait_for,
)
from workflows.common import OVERDUE, STAGE, target_workflow_id, task_workflow_id
from workflows.task import InspectionTaskWorkflow

pytestmark = pytest.mark.postgres

INDUSTRY = "L72"  # 62 enterprises of 360202: a few targets of a population of this test's own
ENTROPY_SOURCE = "福彩3D next draw after the freeze"
ENTROPY_VALUE = "3D-2026123"
MINUTE = timedelta(minutes=1)


def wait_started(events, activity: str) -> datetime:
    """When the workflow asked for the wait's deadline: the instant the wait began."""
    for e in events:
        if (e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                and e.activity_task_scheduled_event_attributes.activity_type.name == activity):
            return e.event_time.ToDatetime(tzinfo=timezone.utc)
    raise AssertionError(f"no {activity} scheduled")


def fires_at(fire_time: datetime, expected: datetime) -> bool:
    return expected <= fire_time < expected + timedelta(seconds=1)


async def overdue(client, workflow_id: str) -> bool | None:
    return (await client.get_workflow_handle(workflow_id).describe()).typed_search_attributes.get(OVERDUE)


async def stage(client, workflow_id: str) -> str | None:
    return (await client.get_workflow_handle(workflow_id).describe()).typed_search_attributes.get(STAGE)


def task_alerts(engine, task_id: str) -> dict[str, dict]:
    return {a["step"]: a for a in rows_of(engine, schema.alerts, task_workflow_id(task_id))}


def unstaffed_targets(engine, task_id: str) -> list[str] | None:
    t = schema.targets
    with engine.connect() as c:
        rows = c.execute(select(t.c.uscc).where(t.c.task_id == task_id, t.c.workflow_id != "",
                                                t.c.stage == "unstaffed").order_by(t.c.uscc)).scalars().all()
    return list(rows) if len(rows) >= 2 else None


@dataclass
class Observed:
    deadlines: Deadlines
    task_id: str = ""
    task_events: list = field(default_factory=list)
    task_alerts_before_reminder: set[str] = field(default_factory=set)
    task_alerts_before_due: set[str] = field(default_factory=set)
    task_alerts: dict[str, dict] = field(default_factory=dict)
    task_overdue_before: bool | None = None
    task_overdue_after: bool | None = None
    late: str = ""
    staffed: str = ""
    late_events: list = field(default_factory=list)
    late_alerts_before_reminder: set[str] = field(default_factory=set)
    late_alerts_before_due: set[str] = field(default_factory=set)
    late_alerts: dict[str, dict] = field(default_factory=dict)
    late_overdue_before: bool | None = None
    late_overdue_after: bool | None = None
    late_row: dict = field(default_factory=dict)
    staffed_alerts: dict[str, dict] = field(default_factory=dict)
    staffed_row: dict = field(default_factory=dict)
    staffed_stage: str | None = None
    assign_answer: str = ""


def plan_with_waits(today, code: str) -> bytes:
    plan = json.loads(plan_file(today, code, industry=INDUSTRY))
    plan["tasks"][0] |= {"entropy_source": ENTROPY_SOURCE, "team_size": 99}
    return json.dumps(plan, ensure_ascii=False).encode()


@pytest_asyncio.fixture(scope="module")
async def scenario(ts_env, directories, tmp_path_factory):
    env, engine, client = ts_env, directories, ts_env.client
    await release_leaked_time_lock(env)
    deadlines = Deadlines(calendar_from_env())
    seen = Observed(deadlines=deadlines)
    code = f"WD-{uuid.uuid4().hex[:6]}"
    plan, created = load_plan(engine, plan_with_waits(await server_today(env), code), "plan.json")
    assert created
    task_id = seen.task_id = plan.tasks[0].task_id
    task = client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(task_id))
    queue, main, heavy = make_workers(env, engine, tmp_path_factory.mktemp("waits"), deadlines)
    async with main, heavy:
        try:
            await start_plan(client, code, queue)

            # The task waits for its entropy value: past the reminder, past the deadline.
            await wait_for(lambda: awaits_entropy(client, task_id), timeout=90, env=env, skip=timedelta(hours=6))
            seen.task_events = await history_events(client, task.id)
            due = deadlines.after_working_days(wait_started(seen.task_events, "wait_deadline"), 5)
            reminder = deadlines.reminder_before(due, 1)
            await sleep_until(env, reminder - MINUTE)
            seen.task_alerts_before_reminder = set(task_alerts(engine, task_id))
            await sleep_until(env, due - MINUTE)
            seen.task_alerts_before_due = set(task_alerts(engine, task_id))
            seen.task_overdue_before = await overdue(client, task.id)
            await sleep_until(env, due + MINUTE)
            seen.task_alerts = await wait_for(
                lambda: (lambda a: a if "entropy-escalation-1" in a else None)(task_alerts(engine, task_id)))
            seen.task_overdue_after = await wait_for(lambda: overdue(client, task.id))
            seen.task_events = await history_events(client, task.id)

            # The value goes in late; the draw runs and dispatches targets nobody can staff.
            await task.execute_update(InspectionTaskWorkflow.enter_entropy, EntropyEntry(value=ENTROPY_VALUE))
            usccs = await wait_for(lambda: unstaffed_targets(engine, task_id), timeout=90, env=env,
                                   skip=timedelta(hours=2))
            seen.late, seen.staffed = usccs[0], usccs[1]
            late_id = target_workflow_id(task_id, seen.late)
            seen.assign_answer = (await send(client, task_id, seen.staffed, "assign", ManualAssignment(
                unit=UNIT, inspectors=people(engine, "inspector")[:2], by=people(engine, "supervisor")[0],
                reason="the draw found no team of 99"))).message

            seen.late_events = await history_events(client, late_id)
            due = deadlines.after_working_days(wait_started(seen.late_events, "wait_deadline"), 3)
            reminder = deadlines.reminder_before(due, 1)
            await sleep_until(env, reminder - MINUTE)
            seen.late_alerts_before_reminder = set(alerts_of(engine, task_id, seen.late))
            await sleep_until(env, due - MINUTE)
            seen.late_alerts_before_due = set(alerts_of(engine, task_id, seen.late))
            seen.late_overdue_before = await overdue(client, late_id)
            await sleep_until(env, due + MINUTE)
            seen.late_alerts = await wait_for(
                lambda: (lambda a: a if "staffing-escalation" in a else None)(alerts_of(engine, task_id, seen.late)))
            seen.late_overdue_after = await wait_for(lambda: overdue(client, late_id))
            seen.late_row = target_row(engine, task_id, seen.late)
            seen.late_events = await history_events(client, late_id)
            seen.staffed_alerts = alerts_of(engine, task_id, seen.staffed)
            seen.staffed_row = target_row(engine, task_id, seen.staffed)
            seen.staffed_stage = await stage(client, target_workflow_id(task_id, seen.staffed))
        finally:
            await terminate_chain(client, engine, code, task_id)
    yield seen


async def awaits_entropy(client, task_id: str) -> bool:
    """The task waits for its entropy value, the reminder's timer started (False before the plan starts it)."""
    try:
        return "entropy reminder" in timer_fire_times(await history_events(client, task_workflow_id(task_id)))
    except RPCError:
        return False


# --- the task's entropy value -------------------------------------------------------------------------
def test_entropy_deadline_is_the_end_of_the_5th_working_day_with_a_reminder_the_day_before(scenario):
    deadlines = scenario.deadlines
    due = deadlines.after_working_days(wait_started(scenario.task_events, "wait_deadline"), 5)
    timers = timer_fire_times(scenario.task_events)
    assert fires_at(timers["entropy due"], due)
    assert fires_at(timers["entropy reminder"], deadlines.reminder_before(due, 1))


def test_entropy_reminder_then_escalation_marks_the_task_overdue(scenario):
    assert not scenario.task_alerts_before_reminder
    assert scenario.task_alerts_before_due == {"entropy-reminder-1"}
    reminder, escalation = scenario.task_alerts["entropy-reminder-1"], scenario.task_alerts["entropy-escalation-1"]
    assert reminder["kind"] == "reminder" and escalation["kind"] == "escalation"
    assert reminder["details"] == alert_texts.entropy_reminder(ENTROPY_SOURCE)
    assert escalation["details"] == alert_texts.entropy_due(ENTROPY_SOURCE) and escalation["uscc"] is None
    assert scenario.task_overdue_before is None  # a task carries the flag only once overdue
    assert scenario.task_overdue_after is True


# --- a target nobody could staff -----------------------------------------------------------------------
def test_staffing_deadline_is_the_end_of_the_3rd_working_day_after_dispatch(scenario):
    deadlines = scenario.deadlines
    due = deadlines.after_working_days(wait_started(scenario.late_events, "wait_deadline"), 3)
    timers = timer_fire_times(scenario.late_events)
    assert fires_at(timers["staffing due"], due)
    assert fires_at(timers["staffing reminder"], deadlines.reminder_before(due, 1))


def test_unstaffed_target_is_reminded_then_escalated_and_overdue(scenario):
    assert not {"staffing-reminder", "staffing-escalation"} & scenario.late_alerts_before_reminder
    assert "staffing-reminder" in scenario.late_alerts_before_due
    assert "staffing-escalation" not in scenario.late_alerts_before_due
    assert scenario.late_alerts["staffing-escalation"]["kind"] == "escalation"
    assert scenario.late_alerts["staffing-escalation"]["details"] == alert_texts.staffing_due([UNIT])
    assert scenario.late_overdue_before is False and scenario.late_overdue_after is True
    assert scenario.late_row["overdue"] is True and scenario.late_row["stage"] == "unstaffed"


def test_staffed_in_time_is_neither_reminded_nor_overdue(scenario):
    assert "is now" in scenario.assign_answer
    assert not {"staffing-reminder", "staffing-escalation"} & set(scenario.staffed_alerts)
    assert scenario.staffed_row["overdue"] is False and scenario.staffed_stage == "dispatched"
    assert scenario.staffed_row["stage"] == "dispatched"  # the projection leaves 'unstaffed' with the workflow
