"""The issue's cases end to end (issue 13): `spotcheck` against the dev server, the project's workers and
PostgreSQL. Each hostile command is refused with its cap or rule named — at the door, and again by the worker
when a client that does not validate sends it raw — never retried for ever; then the same workflow takes its
next valid command."""
from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError

from db import schema
from domain.messages.target import CheckRecord, ResultEntry
from domain.stages import Stage
from service.gateway import reasons
from tests.hostile.conftest import one_sentence
from tests.hostile.system import running_system
from tests.workflows.support import CHECKPOINTS, people, plan_file, rows_of, target_row, wait_for
from workflows.common import target_workflow_id, task_workflow_id
from workflows.task import InspectionTaskWorkflow

pytestmark = pytest.mark.postgres
LONG_ID = "I" * 40  # the probe's inspector id; entered_by holds 32 characters
FINDINGS = [arg for point in CHECKPOINTS for arg in ("--finding", f"{point}:pass")]


@pytest.fixture(scope="module")
def system(postgres_url, tmp_path_factory):
    with running_system(postgres_url, tmp_path_factory.mktemp("running")) as running:
        yield running


@pytest.fixture(scope="module")
def targets(system):
    """A task of six targets waiting for their check; each test takes its own."""
    task_id, usccs = system.start_plan(["C15", "E50"])
    assert len(usccs) >= 4, usccs
    return task_id, usccs


def raw_update(system, task_id: str, uscc: str, name: str, payload: dict) -> str:
    """An update as a client that does not validate would send it; the worker's refusal, as a sentence."""
    handle = system.client.get_workflow_handle(target_workflow_id(task_id, uscc))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        system.call(handle.execute_update(name, payload))
    return reasons(refused.value.cause)


def failed_steps(system, task_id: str, uscc: str) -> list[str]:
    return [a["step"] for a in rows_of(system.engine, schema.alerts, target_workflow_id(task_id, uscc))
            if a["step"].startswith("failed-")]


def test_a_40_character_inspector_id_is_refused_and_the_target_takes_its_check_and_result(system, targets):
    task_id, usccs = targets
    uscc = usccs[0]
    team = system.team(task_id, uscc)
    target = [task_id, uscc]
    leader = system.as_user(team[0])

    one_sentence(*leader("check", "record", *target, "--inspector", LONG_ID, "--inspector", team[1],
                         "--method", "document"), 2, "1-32")
    check = CheckRecord(inspectors=team, method="document").model_dump(mode="json")
    assert "1-32" in raw_update(system, task_id, uscc, "record_check", {**check, "inspectors": [LONG_ID, team[1]]})
    code, out, err = leader("check", "record", *target, "--inspector", team[0], "--inspector", team[1],
                            "--method", "document")
    assert code == 0 and err == "", err

    one_sentence(*system.spotcheck("login", LONG_ID, "--password-stdin", "--print-token", stdin=LONG_ID + "\n"),
                 2, "unknown user or wrong password")
    entry = ResultEntry(inspector=team[0], category="no_issue",
                        findings={p: "pass" for p in CHECKPOINTS}).model_dump(mode="json")
    assert "1-32" in raw_update(system, task_id, uscc, "enter_result", {**entry, "inspector": LONG_ID})
    supervisor = system.as_user(people(system.engine, "supervisor")[0])
    one_sentence(*supervisor("dispatch", "assign", *target, "--unit", "360202-SCJ", "--inspector", LONG_ID,
                             "--inspector", team[1], "--reason", "substitute"), 2, "1-32")
    code, out, err = leader("result", "enter", *target, "--category", "no_issue", *FINDINGS)
    assert code == 0 and err == "", err
    assert target_row(system.engine, task_id, uscc)["entered_by"] == team[0]
    assert failed_steps(system, task_id, uscc) == []  # nothing reached an activity to fail there


def test_twenty_120_kb_field_signals_leave_the_status_small_and_the_target_working(system, targets):
    task_id, usccs = targets
    uscc = usccs[1]
    team = system.team(task_id, uscc)
    leader = system.as_user(team[0])
    huge = "I" * 120_000
    handle = system.client.get_workflow_handle(target_workflow_id(task_id, uscc))
    for _ in range(20):  # a client that does not validate: the worker drops what it cannot decode
        system.call(handle.signal("field_signal", {"kind": "arrive", "inspector": huge}))
    assert leader("task", "arrive", task_id, uscc)[0] == 0

    status = system.call(wait_for(lambda: _signalled(system, task_id, uscc), timeout=30, what="the valid signal"))
    assert status.field_signal_count == 1 and len(status.model_dump_json()) < 10_000
    code, out, err = leader("check", "record", task_id, uscc, "--inspector", team[0], "--inspector", team[1],
                            "--method", "document")
    assert code == 0 and err == "", err


async def _signalled(system, task_id, uscc):
    from service.targets import status

    current = await status(system.client, task_id, uscc)
    return current if current.field_signal_count else None


def _plan_path(system, name: str, change, industry: str = "C15") -> str:
    plan = json.loads(plan_file(date.today(), f"H-{name}", industry=industry))
    change(plan)
    path = system.data_dir / f"{name}.json"
    path.write_text(json.dumps(plan, ensure_ascii=False))
    return str(path)


def _tasks(count: int):
    def change(plan: dict) -> None:
        task = plan["tasks"][0]
        plan["tasks"] = [{**task, "task_id": f"BIG-{n:06d}"} for n in range(count)]
    return change


def _past(plan: dict) -> None:
    today = date.today()  # within the plan's year, so that only the window's being past is wrong
    plan["tasks"][0] |= {"starts": (today - timedelta(days=60)).isoformat(), "ends": (today - timedelta(days=30)).isoformat()}


def _no_u_ratio(plan: dict) -> None:
    plan["tasks"][0]["ratios"].pop("U")


@pytest.mark.parametrize("name, change, named", [
    ("BIG", _tasks(100_000), ["bytes; the cap is 8388608 bytes"]),  # the probe's: publish_plan retried for ever
    ("MANY", _tasks(2001), ["lists 2001; the cap is 2000 tasks"]),
    ("PAST", _past, ["wholly in the past", "--allow-past"]),
    ("NO-U", _no_u_ratio, ["ratios.U: is required", "needs a ratio"]),
])
def test_a_plan_that_would_fail_later_is_refused_at_start_and_the_system_goes_on(system, targets, name, change,
                                                                                  named):
    task_id, usccs = targets
    code, out, err = system.spotcheck("plan", "start", _plan_path(system, name, change), timeout=120)
    one_sentence(code, out, err, 2, *named)
    with system.engine.connect() as connection:
        assert connection.execute(schema.plans.select().where(schema.plans.c.plan_code == f"H-{name}")).first() is None
    code, out, err = system.spotcheck("task", "show", task_id, "--json")
    assert code == 0 and json.loads(out)["task_id"] == task_id


def test_an_empty_entropy_value_for_a_lottery_source_is_refused_and_the_published_value_is_taken(system):
    def lottery(plan: dict) -> None:
        plan["tasks"][0]["entropy_source"] = "中国福利彩票3D 2026年第001期开奖号码"

    path = _plan_path(system, "LOTTERY", lottery, industry="K70")
    assert system.spotcheck("plan", "start", path)[0] == 0
    task_id = "H-LOTTERY-T1"

    async def awaiting():
        handle = system.client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(task_id))
        try:
            return (await handle.query(InspectionTaskWorkflow.status)).stage == Stage.AWAITING_ENTROPY
        except RPCError:  # the plan has not started its task yet
            return False

    system.call(wait_for(awaiting, timeout=100, what="the task awaiting entropy"), timeout=110)
    for value in ("", " ", " 123"):
        code, out, err = system.spotcheck("draw", "entropy", task_id, value)
        one_sentence(code, out, err, 2, "entropy")
    code, out, err = system.spotcheck("draw", "entropy", task_id, "123")
    assert code == 0 and err == "", err


NOT_DRAWN = "91360202MA04A8FU86"


def test_commands_on_what_does_not_exist_or_has_finished_are_one_sentence(system, targets):
    task_id, usccs = targets
    uscc = usccs[2]
    team = system.team(task_id, uscc)
    leader = system.as_user(team[0])
    one_sentence(*system.spotcheck("task", "show", "NOPE-0001"), 2, "NOPE-0001")
    one_sentence(*leader("task", "arrive", task_id, NOT_DRAWN), 2, NOT_DRAWN)
    planner = system.as_user(system.planner())
    one_sentence(*planner("plan", "adjust", "NO-SUCH-PLAN", "--cancel-task", task_id, "--reason", "r"), 2,
                 "NO-SUCH-PLAN")

    target = [task_id, uscc]
    assert leader("check", "record", *target, "--inspector", team[0], "--inspector", team[1],
                  "--method", "document")[0] == 0
    assert leader("result", "enter", *target, "--category", "no_issue", *FINDINGS)[0] == 0
    reviewer = system.as_user(next(r for r in people(system.engine, "reviewer") if r not in team))
    assert reviewer("result", "review", *target, "--approve")[0] == 0
    handle = system.client.get_workflow_handle(target_workflow_id(task_id, uscc))

    async def finished():
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    system.call(wait_for(finished, timeout=60, what="the target closed"), timeout=70)

    for person, argv in ((leader, ["check", "record", *target, "--inspector", team[0], "--inspector", team[1],
                                   "--method", "onsite", "--certificates-shown"]),
                         (reviewer, ["result", "review", *target, "--return", "again"]),
                         (leader, ["task", "arrive", *target])):
        code, out, err = person(*argv)
        one_sentence(code, out, err, 2, uscc)
        assert "already completed" not in err
