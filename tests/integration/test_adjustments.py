"""Plan adjustments (R5) and the plan deadline (R3) on the real dev server, through the command line.

An adjustment is published before it takes effect; a bad one is refused with its reason and
changes nothing: no row, no event in the plan's history. A plan published after 31 March of its
year is recorded as late.
"""
from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from db import schema
from domain.messages.plan import Adjustment, PlanPublished
from domain.workdays import SHANGHAI
from runtime.examples import EXAMPLES
from service.imports import import_examples
from tests.integration.devserver import Cli, workers
from tests.workflows.support import wait_for
from workflows.common import plan_workflow_id, task_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("adjust-data")


@pytest_asyncio.fixture(scope="module")
async def running(env, pg_engine, postgres_url, data_dir):
    """The directories, the workers of both queues, and the command line."""
    import_examples(pg_engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    async with workers(env, pg_engine, data_dir):
        yield Cli(env, postgres_url, data_dir)


def template_tasks() -> list[dict]:
    return json.loads((EXAMPLES / "plan-template.json").read_text(encoding="utf-8"))["tasks"]


def plan_file(folder, code: str, year: int, tasks: int, starts: date, ends: date):
    plan = {"plan_code": code, "year": year, "owner_unit": "360200-SCJ", "tasks": []}
    for n, task in enumerate(template_tasks()[:tasks], 1):
        plan["tasks"].append({**task, "task_id": f"{code}-T{n}", "starts": starts.isoformat(),
                              "ends": ends.isoformat()})
    path = folder / f"{code}.json"
    path.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
    return path


async def started_plan(cli: Cli, env, path):
    """`plan start FILE`, then the plan's handle once it has published (its queries answer)."""
    out = await cli.json("plan", "start", str(path))
    assert out["started"] is True
    handle = env.client.get_workflow_handle_for(AnnualPlanWorkflow.run, plan_workflow_id(out["plan_code"]))

    # No tasks before the plan is published (the query answers {} until then).
    await wait_for(lambda: handle.query(AnnualPlanWorkflow.tasks), what=f"plan {out['plan_code']} published")
    return handle


def publications(engine, plan_code: str) -> list[dict]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(select(schema.publications).where(
            schema.publications.c.plan_code == plan_code).order_by(schema.publications.c.publication_id)).mappings()]


def plan_tasks(engine, plan_code: str) -> list[tuple]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(select(
            schema.plan_tasks.c.task_id, schema.plan_tasks.c.origin, schema.plan_tasks.c.cancelled_at,
            schema.plan_tasks.c.cancel_reason).where(schema.plan_tasks.c.plan_code == plan_code)
            .order_by(schema.plan_tasks.c.task_id))]


async def history_length(handle) -> int:
    return len((await handle.fetch_history()).events)


async def published_plan(env, handle) -> PlanPublished:
    """The publish_plan activity's result, read back from the plan workflow's history."""
    history = await handle.fetch_history()
    scheduled = {e.event_id for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == "publish_plan"}
    [done] = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
              and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled]
    [published] = await env.client.data_converter.decode(
        list(done.activity_task_completed_event_attributes.result.payloads), [PlanPublished])
    return published


async def test_adjustments_are_published_and_bad_ones_change_nothing(env, running, pg_engine, tmp_path):
    cli, engine = running, pg_engine
    year = datetime.now(SHANGHAI).year + 1  # windows in the future: the tasks are pending
    code = f"ADJ-{uuid.uuid4().hex[:6].upper()}"
    plan = await started_plan(cli, env, plan_file(tmp_path, code, year, 2, date(year, 6, 1), date(year, 10, 31)))
    t1, t2 = f"{code}-T1", f"{code}-T2"
    assert await plan.query(AnnualPlanWorkflow.tasks) == {t1: "pending", t2: "pending"}
    assert [p["kind"] for p in publications(engine, code)] == ["plan"]

    # A planner of the owner unit asks; a supervisor of it, another person, approves and so carries it out.
    planner = cli.as_user(engine, "plan.jdz", roles=("planner",), unit="360200-SCJ")
    supervisor = cli.as_user(engine, "JDZ-I011")  # a supervisor of 360200-SCJ in the directory

    async def adjusted(*args: str) -> dict:
        asked = await planner.json("plan", "adjust", code, *args)
        assert asked["kind"] == "adjust" and asked["subject"] == code and asked["owner_unit"] == "360200-SCJ"
        done = await supervisor.json("approve", str(asked["request_id"]))
        assert (done["requested_by"], done["approved_by"]) == ("plan.jdz", "JDZ-I011")
        return done

    # --- add a task: published, then in the plan ----------------------------------------------
    added = f"{code}-ADD"
    task = {**template_tasks()[2], "task_id": added, "starts": f"{year}-07-01", "ends": f"{year}-09-30"}
    task_path = tmp_path / "added.json"
    task_path.write_text(json.dumps(task, ensure_ascii=False), encoding="utf-8")
    before_approval = publications(engine, code)
    asked = await planner.json("plan", "adjust", code, "--add-task", str(task_path), "--reason", "省局专项部署")
    assert publications(engine, code) == before_approval  # asked, not approved: nothing published yet
    waiting = await supervisor.json("approvals")
    assert [(r["request_id"], r["kind"], r["subject"], r["requested_by"]) for r in waiting] == \
        [(asked["request_id"], "adjust", code, "plan.jdz")]
    refused = await planner("approve", str(asked["request_id"]))  # a planner approves nothing
    assert refused.returncode == 2 and "plan.jdz is not a supervisor" in refused.stderr, refused.stderr
    out = await supervisor.json("approve", str(asked["request_id"]))
    assert out["kind"] == "adjust" and "added and published" in out["message"]
    again = await supervisor.json("approve", str(asked["request_id"]))  # a retried approval: once
    assert again["message"] == out["message"]
    rows = publications(engine, code)
    assert [(p["kind"], p["task_id"]) for p in rows] == [("plan", None), ("adjustment", added)]
    assert json.loads(rows[-1]["payload"]) == {"plan_code": code, "adjustment": "add", "task_id": added,
                                               "reason": "省局专项部署", "approver": "JDZ-I011"}
    assert (await plan.query(AnnualPlanWorkflow.tasks))[added] == "pending"
    assert (added, "adjustment", None, None) in plan_tasks(engine, code)
    last = await plan.query(AnnualPlanWorkflow.last_adjustment)
    assert (last.approver, last.requested_by, last.actor, last.auth_method) == \
        ("JDZ-I011", "plan.jdz", "JDZ-I011", "cli-local")

    # --- cancel a pending task: published, and it never starts ---------------------------------
    out = await adjusted("--cancel-task", t1, "--reason", "并入联合抽查")
    assert "cancelled and published" in out["message"]
    rows = publications(engine, code)
    assert [(p["kind"], p["task_id"]) for p in rows][-1] == ("adjustment", t1)
    assert await plan.query(AnnualPlanWorkflow.tasks) == {added: "pending", t1: "cancelled", t2: "pending"}
    [cancelled] = [r for r in plan_tasks(engine, code) if r[0] == t1]
    assert cancelled[2] is not None and cancelled[3] == "并入联合抽查"
    with pytest.raises(RPCError) as missing:
        await env.client.get_workflow_handle(task_workflow_id(t1)).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND

    # --- bad adjustments: refused with the reason, nothing changed -----------------------------
    before = (publications(engine, code), plan_tasks(engine, code), await history_length(plan),
              await plan.query(AnnualPlanWorkflow.tasks))
    asked_refusals = [
        (planner, ["--add-task", str(task_path), "--reason", "r"], f"already used by plan {code}"),
        (planner, ["--cancel-task", t2], "--reason"),  # no reason at all
        (planner, ["--cancel-task", t2, "--reason", ""], "reason"),  # an empty one
        (planner, ["--add-task", str(task_path)], "--reason"),
        (planner, ["--cancel-task", t2, "--reason", "r", "--approver", "JDZ-I011"], "--approver"),  # no such flag
        (supervisor, ["--cancel-task", t2, "--reason", "r"], "is not a planner"),
        (cli.as_user(engine, "plan.other", roles=("planner",), unit="360202-SCJ"), ["--cancel-task", t2, "--reason",
                                                                                    "r"], "not of 360200-SCJ"),
    ]
    for person, args, reason in asked_refusals:
        run = await person("plan", "adjust", code, *args)
        assert run.returncode == 2, (args, run.stdout, run.stderr)
        assert reason in run.stderr and run.stdout == "", (args, run.stderr)
    # Asked, then refused by the plan's validator when approved.
    for args, reason in [(["--cancel-task", f"{code}-NOPE", "--reason", "r"], f"{code}-NOPE is not in plan {code}"),
                         (["--cancel-task", t1, "--reason", "r"], "already cancelled")]:
        asked = await planner.json("plan", "adjust", code, *args)
        run = await supervisor("approve", str(asked["request_id"]))
        assert run.returncode == 2 and reason in run.stderr and run.stdout == "", (args, run.stderr)
    # The plan's own validator, past the command line's checks: a duplicate add, an unknown cancel.
    for adjustment, reason in [
        (Adjustment(kind="add", task_id=t2, reason="r", approver="A1", task_document=json.dumps(task)),
         f"task {t2} is already in plan {code}"),
        (Adjustment(kind="cancel", task_id="ELSEWHERE-1", reason="r", approver="A1"), "not in plan"),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await plan.execute_update(AnnualPlanWorkflow.adjust, adjustment)
        assert reason in str(refused.value.cause)
    after = (publications(engine, code), plan_tasks(engine, code), await history_length(plan),
             await plan.query(AnnualPlanWorkflow.tasks))
    assert after == before


async def test_plan_published_after_31_march_is_late_and_before_is_on_time(env, running, pg_engine, tmp_path):
    cli, engine = running, pg_engine
    today = datetime.now(SHANGHAI).date()
    # On time: next year's plan, published now (before 31 March of next year).
    early_year = today.year + 1
    early = f"EARLY-{uuid.uuid4().hex[:6].upper()}"
    early_plan = await started_plan(cli, env, plan_file(tmp_path, early, early_year, 1, date(early_year, 6, 1),
                                                        date(early_year, 10, 31)))
    # Late: the latest year whose 31 March has passed; its window as late as it can be.
    late_year = today.year if today > date(today.year, 3, 31) else today.year - 1
    late = f"LATE-{uuid.uuid4().hex[:6].upper()}"
    late_plan = await started_plan(cli, env, plan_file(tmp_path, late, late_year, 1, date(late_year, 12, 31),
                                                       date(late_year + 1, 1, 31)))

    on_time, overdue = await published_plan(env, early_plan), await published_plan(env, late_plan)
    assert (on_time.plan_code, on_time.year, on_time.on_time) == (early, early_year, True)
    assert (overdue.plan_code, overdue.year, overdue.on_time) == (late, late_year, False)
    for code, plan_year, expect in [(early, early_year, True), (late, late_year, False)]:
        [row] = [p for p in publications(engine, code) if p["kind"] == "plan"]
        assert row["year"] == plan_year
        assert (row["published_at"].astimezone(SHANGHAI).date() <= date(plan_year, 3, 31)) is expect
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(schema.publications).where(
            schema.publications.c.plan_code.in_([early, late]), schema.publications.c.kind == "plan")).scalar() == 2
