"""Deadlines on the time-skipping server fall on the right days of a calendar the test writes itself.

The task window starts today (the test server's today, Asia/Shanghai) and ends in January of next
year, a year `chinesecalendar` does not know: its working days come only from a holiday file written
here, with a holiday inside each span so that a calendar that ignored the file would be a day off.
The worker gets that calendar (`Deadlines(WorkingDayCalendar.official([...file...]))`).

One run of the chain (module fixture `scenario`) drives two targets of one task through it, skipping
time with `env.sleep` and reading the alerts, histories and rows between skips:
- `late`: no check is ever recorded → reminder at 09:00 three working days before the window end,
  escalation at the window end, SpotcheckOverdue true;
- `checked`: check recorded on day D, result entered, never reviewed → publication escalation at the
  end of the 20th working day after D; then approved → published with on_time false.
The tests below each assert one part of what the run observed.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import pytest
import pytest_asyncio

from db import schema
from domain.messages.target import CheckRecord, ResultEntry, Review
from domain.workdays import (
    PACKAGED_HOLIDAY_DIR,
    SHANGHAI,
    Deadlines,
    WorkingDayCalendar,
    load_holiday_dir,
    load_holiday_file,
)
from service.targets import send, status as target_status
from service.imports import import_examples
from store.plans import load_plan
from tests.workflows.support import (
    ALL_PASS,
    alerts_of,
    history_events,
    make_workers,
    people,
    plan_file,
    release_leaked_time_lock,
    rows_of,
    server_now,
    server_today,
    sleep_until,
    start_plan,
    target_row,
    terminate_chain,
    timer_fire_times,
    wait_for,
    waiting_targets,
)
from workflows.common import OVERDUE, target_workflow_id

pytestmark = pytest.mark.postgres

INDUSTRY = "H61"  # 7 enterprises of 360202 in three risk classes: three targets


@pytest.fixture(scope="module")
def directories(pg_engine):
    import_examples(pg_engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    return pg_engine


# --- the calendar, by hand -------------------------------------------------------------------------
@dataclass(frozen=True)
class Days:
    """The days of the scenario, all in January/February of `year`, laid out around a Monday M.

    Week 1: M = check day D of `checked` (Mon) … M+4 (Fri)
    Week 2: M+7 Mon, M+8 Tue, M+9 Wed = HOLIDAY, M+10 Thu, M+11 Fri = window end E
    Week 3: M+14 Mon … M+18 Fri, M+19 Sat = WORKED (调休)
    Week 4: M+21 Mon … M+23 Wed, M+24 Thu = HOLIDAY, M+25 Fri
    Week 5: M+28 Mon, M+29 Tue
    Reminder, 3 working days before E (Fri M+11): Thu M+10 (1), Wed M+9 holiday, Tue M+8 (2), Mon M+7 (3)
      → M+7 09:00 (it would be M+8 with no holiday file).
    Publication due, 20 working days after D (Mon M), counted from M+1:
      week 1 Tue–Fri 1–4; week 2 Mon 5, Tue 6, (Wed holiday), Thu 7, Fri 8;
      week 3 Mon–Fri 9–13, Sat 14; week 4 Mon–Wed 15–17, (Thu holiday), Fri 18; week 5 Mon 19, Tue 20
      → end of M+29 (it would be M+28 with no holiday file: the two holidays and the worked Saturday).
    """

    year: int
    monday: date

    def day(self, offset: int) -> date:
        return self.monday + timedelta(days=offset)

    @property
    def check_day(self) -> date:
        return self.day(0)

    @property
    def window_end(self) -> date:
        return self.day(11)

    @property
    def reminder_day(self) -> date:
        return self.day(7)

    @property
    def publication_due_day(self) -> date:
        return self.day(29)

    @property
    def holidays(self) -> list[date]:
        return [date(self.year, 1, 1), self.day(9), self.day(24)]

    @property
    def workdays(self) -> list[date]:
        return [self.day(19)]


def scenario_days(year: int, not_before: date) -> Days:
    start = max(date(year, 1, 4), not_before)
    monday = start + timedelta(days=-start.weekday() % 7)
    days = Days(year=year, monday=monday)
    assert days.monday.weekday() == 0 and days.day(19).weekday() == 5
    assert days.day(29).year == year, "the scenario must stay inside the holiday file's year"
    return days


def local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=SHANGHAI)


END_OF_DAY = time(23, 59, 59)


def write_holiday_file(directory, days: Days):
    path = directory / f"holidays-{days.year}.json"
    path.write_text(json.dumps({
        "year": days.year,
        "provisional": False,
        "source": "test arrangement written by tests/workflows/test_deadlines.py (not the State Council's)",
        "holidays": [d.isoformat() for d in days.holidays],
        "workdays": [d.isoformat() for d in days.workdays],
    }), encoding="utf-8")
    return path


def calendar_for(days: Days, holiday_path) -> WorkingDayCalendar:
    """chinesecalendar and the packaged files for the other years, the test's file for `days.year`."""
    others = [hy for hy in load_holiday_dir(PACKAGED_HOLIDAY_DIR) if hy.year != days.year]
    return WorkingDayCalendar.official([*others, load_holiday_file(holiday_path)])


# --- the run -------------------------------------------------------------------------------------
@dataclass
class Observed:
    days: Days
    calendar: WorkingDayCalendar
    late: str = ""
    checked: str = ""
    task_id: str = ""
    late_alerts_before_reminder: set[str] = field(default_factory=set)
    late_alerts_before_escalation: set[str] = field(default_factory=set)
    reminder: dict = field(default_factory=dict)
    escalation: dict = field(default_factory=dict)
    late_timers: dict[str, datetime] = field(default_factory=dict)
    late_overdue_before: bool | None = None
    late_overdue_after: bool | None = None
    late_row: dict = field(default_factory=dict)
    check_answer: str = ""
    checked_status_due: datetime | None = None
    checked_row_after_check: dict = field(default_factory=dict)
    checked_alerts_before_due: set[str] = field(default_factory=set)
    publication_escalation: dict = field(default_factory=dict)
    checked_timers: dict[str, datetime] = field(default_factory=dict)
    checked_overdue_before: bool | None = None
    checked_overdue_after: bool | None = None
    publications: list[dict] = field(default_factory=list)
    checked_row_final: dict = field(default_factory=dict)
    approved_at: datetime | None = None


async def overdue(client, workflow_id: str) -> bool | None:
    return (await client.get_workflow_handle(workflow_id).describe()).typed_search_attributes.get(OVERDUE)


@pytest_asyncio.fixture(scope="module")
async def scenario(ts_env, directories, tmp_path_factory):
    env, engine, client = ts_env, directories, ts_env.client
    tmp = tmp_path_factory.mktemp("deadlines")
    await release_leaked_time_lock(env)
    today = await server_today(env)
    days = scenario_days(today.year + 1, not_before=today + timedelta(days=10))
    calendar = calendar_for(days, write_holiday_file(tmp, days))
    seen = Observed(days=days, calendar=calendar)

    code = f"DL-{uuid.uuid4().hex[:6]}"
    plan, created = load_plan(engine, plan_file(today, code, industry=INDUSTRY, ends=days.window_end), "plan.json")
    assert created
    task_id = seen.task_id = plan.tasks[0].task_id
    queue, main, heavy = make_workers(env, engine, tmp, Deadlines(calendar))
    async with main, heavy:
        try:
            await start_plan(client, code, queue)
            # Past the announcement and redraw windows (one working day each) to the dispatched targets.
            usccs = await wait_for(lambda: waiting_targets(client, engine, task_id), timeout=90, env=env,
                                   skip=timedelta(hours=6))
            assert len(usccs) >= 2, usccs
            seen.late, seen.checked = usccs[0], usccs[1]
            late_id, checked_id = target_workflow_id(task_id, seen.late), target_workflow_id(task_id, seen.checked)

            # Day D, 10:00: the check of `checked` is recorded, and its result entered (not reviewed).
            await sleep_until(env, local(days.check_day, time(10, 0)))
            team = (await target_status(client, task_id, seen.checked)).teams[0].inspectors
            seen.check_answer = (await send(client, task_id, seen.checked, "check",
                                            CheckRecord(inspectors=team, method="document"))).message
            await send(client, task_id, seen.checked, "result",
                       ResultEntry(inspector=team[0], category="no_issue", findings=ALL_PASS))
            seen.checked_status_due = (await target_status(client, task_id, seen.checked)).publication_due
            seen.checked_row_after_check = target_row(engine, task_id, seen.checked)

            # The field-work reminder of `late`: not at 08:59, at 09:00.
            await sleep_until(env, local(days.reminder_day, time(8, 59)))
            seen.late_alerts_before_reminder = set(alerts_of(engine, task_id, seen.late))
            await sleep_until(env, local(days.reminder_day, time(9, 1)))
            seen.reminder = await wait_for(lambda: alerts_of(engine, task_id, seen.late).get("field-work-reminder"))

            # The field-work escalation of `late`: not at 23:59, at 23:59:59 of the window end.
            await sleep_until(env, local(days.window_end, time(23, 59)))
            seen.late_alerts_before_escalation = set(alerts_of(engine, task_id, seen.late))
            seen.late_overdue_before = await overdue(client, late_id)
            await sleep_until(env, local(days.window_end + timedelta(days=1), time(0, 1)))
            seen.escalation = await wait_for(
                lambda: alerts_of(engine, task_id, seen.late).get("field-work-escalation"))
            seen.late_overdue_after = await wait_for(lambda: overdue(client, late_id))
            seen.late_row = target_row(engine, task_id, seen.late)
            seen.late_timers = timer_fire_times(await history_events(client, late_id))

            # The publication escalation of `checked`: not at 23:59, at 23:59:59 of the 20th working day.
            await sleep_until(env, local(days.publication_due_day, time(23, 59)))
            seen.checked_alerts_before_due = set(alerts_of(engine, task_id, seen.checked))
            seen.checked_overdue_before = await overdue(client, checked_id)
            await sleep_until(env, local(days.publication_due_day + timedelta(days=1), time(0, 1)))
            seen.publication_escalation = await wait_for(
                lambda: alerts_of(engine, task_id, seen.checked).get("publication-escalation"))
            seen.checked_overdue_after = await wait_for(lambda: overdue(client, checked_id))
            seen.checked_timers = timer_fire_times(await history_events(client, checked_id))

            # Approved late: published, on_time false.
            seen.approved_at = await server_now(env)
            await send(client, task_id, seen.checked, "review", Review(reviewer=people(engine, "reviewer")[0],
                                                                       approve=True))
            seen.publications = await wait_for(lambda: [
                p for p in rows_of(engine, schema.publications, checked_id) if p["kind"] == "result"])
            await wait_for(lambda: target_row(engine, task_id, seen.checked)["stage"] == "closed")
            seen.checked_row_final = target_row(engine, task_id, seen.checked)
        finally:
            await terminate_chain(client, engine, code, task_id)
    yield seen


# --- what the run shows -----------------------------------------------------------------------------
def fires_at(fire_time: datetime, expected: datetime) -> bool:
    """A timer is relative: the server fires it at its start event's time + duration, which is the
    workflow's deadline plus the few milliseconds between the workflow task's start and that event."""
    return expected <= fire_time < expected + timedelta(seconds=1)


def test_the_worker_calendar_is_the_test_file_and_agrees_with_the_hand_count(scenario):
    days, calendar = scenario.days, scenario.calendar
    assert "tests/workflows/test_deadlines.py" in calendar.holiday_year(days.year).source
    deadlines = Deadlines(calendar)
    assert deadlines.reminder_before(local(days.window_end, END_OF_DAY), 3) == local(days.reminder_day, time(9))
    assert deadlines.after_working_days(local(days.check_day, time(10)), 20) == local(days.publication_due_day,
                                                                                      END_OF_DAY)
    assert calendar.working_days_between(days.check_day, days.publication_due_day) == 20


def test_reminder_at_nine_three_working_days_before_the_window_end(scenario):
    days = scenario.days
    expected = local(days.reminder_day, time(9, 0))
    assert fires_at(scenario.late_timers["field-work reminder"], expected)
    assert "field-work-reminder" not in scenario.late_alerts_before_reminder
    reminder = scenario.reminder
    assert reminder["kind"] == "reminder"
    assert expected <= reminder["at"] < expected + timedelta(minutes=1)


def test_escalation_at_the_window_end_marks_the_target_overdue(scenario):
    days = scenario.days
    expected = local(days.window_end, END_OF_DAY)
    assert fires_at(scenario.late_timers["task window end"], expected)
    assert "field-work-escalation" not in scenario.late_alerts_before_escalation
    escalation = scenario.escalation
    assert escalation["kind"] == "escalation"
    assert expected <= escalation["at"] < expected + timedelta(minutes=1)
    assert scenario.late_overdue_before is False
    assert scenario.late_overdue_after is True
    assert scenario.late_row["overdue"] is True and scenario.late_row["stage"] == "dispatched"


def test_publication_due_is_the_end_of_the_20th_working_day_after_the_check(scenario):
    days = scenario.days
    expected = local(days.publication_due_day, END_OF_DAY)
    assert scenario.checked_status_due == expected
    assert expected.isoformat() in scenario.check_answer
    row = scenario.checked_row_after_check
    assert row["check_date"] == days.check_day and row["publication_due"] == expected
    assert fires_at(scenario.checked_timers["publication due"], expected)
    # Checked before its reminder: no field-work alert ever.
    assert not {"field-work-reminder", "field-work-escalation"} & scenario.checked_alerts_before_due


def test_publication_escalation_at_the_end_of_the_20th_working_day(scenario):
    days = scenario.days
    expected = local(days.publication_due_day, END_OF_DAY)
    assert "publication-escalation" not in scenario.checked_alerts_before_due
    escalation = scenario.publication_escalation
    assert escalation["kind"] == "escalation"
    assert expected <= escalation["at"] < expected + timedelta(minutes=1)
    assert scenario.checked_overdue_before is False
    assert scenario.checked_overdue_after is True


def test_late_approval_is_published_once(scenario):
    days = scenario.days
    [publication] = scenario.publications
    assert publication["task_id"] == scenario.task_id and publication["uscc"] == scenario.checked
    assert publication["category"] == "no_issue" and publication["year"] == days.year
    assert publication["due_at"] == local(days.publication_due_day, END_OF_DAY)
    assert scenario.checked_row_final["stage"] == "closed"


def test_late_publication_is_recorded_not_on_time(scenario):
    [publication] = scenario.publications
    assert publication["published_at"] >= scenario.approved_at
    assert publication["on_time"] is False
    assert scenario.checked_row_final["overdue"] is True
