"""The yearly Schedule "annual-plan" on the real dev server: `plan schedule` creates it once and then
updates it in place; each run launches the year's plan from the stored template, exactly once, even
against a manual `plan start` of the same year."""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from temporalio.client import (
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    WorkflowFailureError,
)
from temporalio.exceptions import ApplicationError

from db import schema
from domain.messages.launcher import LaunchInput, LaunchOutcome
from domain.plan import PlanInvalid
from domain.workdays import SHANGHAI
from runtime.examples import EXAMPLES
from service.plan_schedule import SCHEDULE_ID, ScheduleRefused, read_template, store_template
from service.imports import import_examples
from tests.integration.devserver import Cli, workers
from tests.workflows.support import wait_for
from workflows.common import TASK_QUEUE, plan_workflow_id
from workflows.launcher import PlanLauncherWorkflow
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres
TEMPLATE_YEAR = 2025


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("schedule-data")


@pytest.fixture(scope="module")
def directories(pg_engine):
    import_examples(pg_engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    return pg_engine


def template_file(data_dir, name: str, code: str):
    """The shipped template under a code of its own; windows late in December, so that the plan
    launched for this year still has them pending."""
    plan = json.loads((EXAMPLES / "plan-template.json").read_text(encoding="utf-8"))
    plan["plan_code"], plan["year"] = code, TEMPLATE_YEAR
    for n, task in enumerate(plan["tasks"], 1):
        task["task_id"] = f"{code}-{n:04d}"
        task["starts"], task["ends"] = f"{TEMPLATE_YEAR}-12-30", f"{TEMPLATE_YEAR + 1}-01-31"
    path = data_dir.parent / f"{name}.json"
    path.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    return path


def march_firsts(after: datetime, n: int) -> list[datetime]:
    year = after.astimezone(SHANGHAI).year
    times = [datetime(y, 3, 1, 6, tzinfo=SHANGHAI) for y in range(year, year + n + 1)]
    return [t.astimezone(timezone.utc) for t in times if t > after][:n]


async def launched(env, before: int) -> LaunchOutcome:
    """The result of the schedule's next action after `before` recent actions."""
    handle = env.client.get_schedule_handle(SCHEDULE_ID)

    async def new_action():
        actions = (await handle.describe()).info.recent_actions
        return actions[before:] or None

    [action] = (await wait_for(new_action, what="a schedule action"))[:1]
    run = env.client.get_workflow_handle_for(PlanLauncherWorkflow.run, action.action.workflow_id)
    return await run.result()


async def test_schedule_launches_the_year_once(env, directories, postgres_url, data_dir):
    engine = directories
    cli = Cli(env, postgres_url, data_dir)
    tag = uuid.uuid4().hex[:6].upper()
    code, name = f"SCH-{tag}", f"sched-{tag.lower()}"
    path = template_file(data_dir, name, code)

    # --- plan schedule, twice: one schedule, the right spec and policy ---------------------------
    first = await cli.json("plan", "schedule", "--file", str(path))
    assert first["created"] is True and first["template"] == name
    assert first["overlap"] == "allow_all" and first["time_zone"] == "Asia/Shanghai"
    assert first["warnings"] == []
    with engine.connect() as c:
        stored = c.execute(select(schema.plan_templates).where(
            schema.plan_templates.c.name == name)).mappings().one()
    assert stored["document"].encode("utf-8") == path.read_bytes()
    assert stored["document_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not (data_dir / "templates").exists()  # nothing in the data dir: workers need only the database
    now = datetime.now(timezone.utc)
    expected = march_firsts(now, 3)
    assert [datetime.fromisoformat(t) for t in first["next_action_times"][:3]] == expected

    again = await cli.json("plan", "schedule", "--template", name, "--cron", "0 7 1 3 *")
    assert again["created"] is False and again["template"] == name
    assert datetime.fromisoformat(again["next_action_times"][0]) == expected[0] + timedelta(hours=1)
    # Without --template the schedule keeps its template; the spec is what the command says.
    text = await cli("plan", "schedule")
    assert text.returncode == 0, text.stderr
    assert f"schedule {SCHEDULE_ID} updated: template {name}" in text.stdout
    assert "next runs (Asia/Shanghai): " + expected[0].astimezone(SHANGHAI).strftime("%Y-%m-%d 06:00") in text.stdout

    schedules = [s.id async for s in await env.client.list_schedules()]
    assert schedules == [SCHEDULE_ID]
    handle = env.client.get_schedule_handle(SCHEDULE_ID)
    described = await handle.describe()
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL
    assert described.schedule.spec.time_zone_name == "Asia/Shanghai"
    assert list(described.info.next_action_times[:3]) == expected
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == "PlanLauncherWorkflow" and action.task_queue == TASK_QUEUE
    assert await env.client.data_converter.decode(list(action.args), [LaunchInput]) == [LaunchInput(template=name)]

    # --- bad input is refused, naming it, and changes nothing ------------------------------------
    for args, named in [(["--cron", "61 6 1 3 *"], "--cron"), (["--tz", "Mars/Olympus"], "--tz"),
                        (["--template", "no-such-template"], "no-such-template"),
                        (["--template", "../escape"], "--template")]:
        run = await cli("plan", "schedule", *args)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert named in run.stderr and run.stdout == ""
    unchanged = await handle.describe()
    assert list(unchanged.info.next_action_times[:3]) == expected
    assert await env.client.data_converter.decode(list(unchanged.schedule.action.args), [LaunchInput]) \
        == [LaunchInput(template=name)]

    async with workers(env, engine, data_dir, heavy=False):
        # --- trigger: the launcher loads this year's plan and starts plan/<code> ----------------
        await handle.trigger()
        outcome = await launched(env, 0)
        year = datetime.now(SHANGHAI).year
        plan_code = f"{code}-{year}"
        assert outcome == LaunchOutcome(template=name, year=year, plan_code=plan_code, plan_started=True,
                                        plan_created=True)
        plan = env.client.get_workflow_handle_for(AnnualPlanWorkflow.run, plan_workflow_id(plan_code))

        async def published():
            with engine.connect() as c:
                return c.execute(select(schema.publications).where(
                    schema.publications.c.plan_code == plan_code,
                    schema.publications.c.kind == "plan")).mappings().first()

        row = await wait_for(published, what=f"plan {plan_code} published")
        assert row["year"] == year and row["workflow_id"] == plan_workflow_id(plan_code)
        assert json.loads(row["payload"])["tasks"] == [f"{code}-{year}-{n:04d}" for n in (1, 2, 3)]
        if datetime.now(SHANGHAI).date() < date(year, 12, 30):
            # The row is written by the publishing activity, a moment before the workflow has its result.
            tasks = await wait_for(lambda: plan.query(AnnualPlanWorkflow.tasks), what="the plan's tasks")
            assert set(tasks.values()) == {"pending"}
        plan_run = (await plan.describe()).run_id

        # --- a manual start of the same plan code is reported, not started twice -----------------
        with engine.connect() as c:
            document = c.execute(select(schema.plans.c.document).where(
                schema.plans.c.plan_code == plan_code)).scalar_one()
        manual = data_dir.parent / "manual.json"
        manual.write_text(document, encoding="utf-8")
        started = await cli.json("plan", "start", str(manual))
        assert started == {"plan_code": plan_code, "started": False, "tasks": 3}
        text = await cli("plan", "start", str(manual))
        assert text.returncode == 0 and "already started; not started twice" in text.stdout

        # --- triggering again launches nothing new -----------------------------------------------
        await handle.trigger()
        second = await launched(env, 1)
        assert second == LaunchOutcome(template=name, year=year, plan_code=plan_code, plan_started=False,
                                       plan_created=False)
        assert (await plan.describe()).run_id == plan_run
        with engine.connect() as c:
            plans = c.execute(select(func.count()).select_from(schema.publications).where(
                schema.publications.c.plan_code == plan_code, schema.publications.c.kind == "plan")).scalar()
        assert plans == 1
        runs = await wait_for(lambda: _runs(env, plan_workflow_id(plan_code)), what="visibility")
        assert runs == 1

        # --- the year is the scheduled one, not the day it ran: a backfilled 1 March 2025 --------
        # That year's plan was started by hand, with content of its own: the launcher keeps it and
        # starts nothing.
        manual_code = f"{code}-{TEMPLATE_YEAR}"
        hand = json.loads(document)
        hand |= {"plan_code": manual_code, "year": TEMPLATE_YEAR,
                 "tasks": [{**hand["tasks"][0], "task_id": f"{manual_code}-M1", "starts": f"{TEMPLATE_YEAR}-12-30",
                            "ends": f"{TEMPLATE_YEAR + 1}-01-31"}]}
        manual.write_text(json.dumps(hand, ensure_ascii=False), encoding="utf-8")
        assert (await cli.json("plan", "start", str(manual), "--allow-past"))["started"] is True
        by_hand = env.client.get_workflow_handle(plan_workflow_id(manual_code))
        hand_run = (await by_hand.describe()).run_id
        march = datetime(TEMPLATE_YEAR, 3, 1, 6, tzinfo=SHANGHAI)
        await handle.backfill(ScheduleBackfill(start_at=march - timedelta(minutes=1),
                                               end_at=march + timedelta(minutes=1),
                                               overlap=ScheduleOverlapPolicy.ALLOW_ALL))
        backfilled = await launched(env, 2)
        assert backfilled == LaunchOutcome(template=name, year=TEMPLATE_YEAR, plan_code=manual_code,
                                           plan_started=False, plan_created=False)
        info = await env.client.get_workflow_handle(
            f"{SCHEDULE_ID}-{march.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}").describe()
        assert info.workflow_type == "PlanLauncherWorkflow"
        assert (await by_hand.describe()).run_id == hand_run
        with engine.connect() as c:
            stored = c.execute(select(schema.plan_tasks.c.task_id).where(
                schema.plan_tasks.c.plan_code == manual_code)).scalars().all()
        assert stored == [f"{manual_code}-M1"]  # the template did not replace the plan loaded by hand


async def test_a_missing_template_fails_the_launch_at_once_naming_it(env, directories, data_dir):
    async with workers(env, directories, data_dir, heavy=False):
        run = await env.client.start_workflow(PlanLauncherWorkflow.run, LaunchInput(template="gone"),
                                              id=f"launch-{uuid.uuid4().hex[:6]}", task_queue=TASK_QUEUE)
        with pytest.raises(WorkflowFailureError) as failed:
            await run.result()
    cause = failed.value.cause.cause
    assert isinstance(cause, ApplicationError) and cause.type == "NotFound"
    assert "plan template gone not found" in cause.message
    assert "spotcheck plan schedule --file gone.json" in cause.message


@pytest.mark.parametrize("engine_fixture", ["sqlite_engine", "fresh_pg_engine"])
def test_templates_are_stored_in_the_database(engine_fixture, request, tmp_path):
    engine = request.getfixturevalue(engine_fixture)
    first = template_file(tmp_path / "a", "tpl", "TPL-A").read_bytes()
    second = template_file(tmp_path / "b", "tpl", "TPL-B").read_bytes()

    def row():
        with engine.connect() as c:
            return c.execute(select(schema.plan_templates).where(schema.plan_templates.c.name == "tpl")).one()

    assert store_template(engine, "tpl", first, "tpl.json") is True
    assert read_template(engine, "tpl") == first
    stored = row()
    assert store_template(engine, "tpl", first, "tpl.json") is False  # same content: no change
    assert row() == stored
    assert store_template(engine, "tpl", b"\xef\xbb\xbf" + second, "tpl.json") is True  # replaced, byte for byte
    assert read_template(engine, "tpl") == b"\xef\xbb\xbf" + second
    assert row().document_sha256 == hashlib.sha256(b"\xef\xbb\xbf" + second).hexdigest()

    with pytest.raises(ScheduleRefused, match="template name '../escape'"):
        store_template(engine, "../escape", first, "../escape.json")
    with pytest.raises(PlanInvalid):
        store_template(engine, "tpl", b'{"plan_code": 1}', "tpl.json")
    with pytest.raises(ScheduleRefused, match="--template missing: no stored template missing"):
        read_template(engine, "missing")
    assert read_template(engine, "tpl") == b"\xef\xbb\xbf" + second  # refusals changed nothing


async def _runs(env, workflow_id: str) -> int | None:
    n = (await env.client.count_workflows(f"WorkflowId = '{workflow_id}'")).count
    return n or None


