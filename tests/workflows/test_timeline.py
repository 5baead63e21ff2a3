"""The timeline (`task history`) is read back from the event histories of a finished chain."""
from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from domain.messages.plan import PlanRun

from domain.messages.target import CheckRecord, FieldSignal, ResultEntry, Review
from domain.workdays import SHANGHAI, Deadlines, calendar_from_env
from service.targets import send, status as target_status
from store.plans import load_plan
from read.timeline import timeline
from workflows.common import plan_workflow_id, target_workflow_id, task_workflow_id
from workflows.plan import AnnualPlanWorkflow
from workflows.target import TargetInspectionWorkflow
from tests.workflows.support import make_workers, people, plan_file, wait_for, waiting_targets

pytestmark = pytest.mark.postgres

CHECKPOINTS = ["GS-001-1", "GS-001-2", "GS-001-3"]
CATEGORIES = ["no_issue", "unreachable"]
WORKDAY_SECONDS = 2.0  # the field-work window (~40 working days) lasts well beyond the test
INDUSTRY = "C15"  # 11 enterprises of 360202 in four strata: a few targets, a population of this test's own


def workers(env, engine, tmp_path):
    # A working day of a few real seconds: the task's one-working-day windows pass without skipping time.
    # (env.sleep is not used: after a chain the time-skipping server can fail to skip — closed parents
    # with abandoned children, sdk-java #2392 / #1618 — and the sleep times out.)
    return make_workers(env, engine, tmp_path, deadlines=Deadlines(calendar_from_env(), workday_seconds=WORKDAY_SECONDS))


def in_order(events: list[dict], expected: list[tuple[str, str | None]]) -> list[dict]:
    """The first event matching each (event, actor) pair, each after the previous one; actor None: any actor."""
    found, position = [], 0
    for name, actor in expected:
        for index in range(position, len(events)):
            e = events[index]
            if e["event"] == name and (actor is None or e["actor"] == actor):
                found.append(e)
                position = index + 1
                break
        else:
            raise AssertionError(f"{name!r} (actor {actor}) not found after position {position} in "
                                 f"{[(e['event'], e['actor'], e['target']) for e in events]}")
    return found


async def test_timeline_of_a_finished_task(ts_env, directories, tmp_path):
    engine = directories
    client = ts_env.client
    code = f"TL-{uuid.uuid4().hex[:6]}"
    today = (await ts_env.get_current_time()).astimezone(SHANGHAI).date()  # the session's server runs ahead
    plan, created = load_plan(engine, plan_file(today, code, industry=INDUSTRY), "plan.json")
    assert created
    task_id = plan.tasks[0].task_id
    queue, main, heavy = workers(ts_env, engine, tmp_path)
    async with main, heavy:
        handle = await client.start_workflow(
            AnnualPlanWorkflow.run, PlanRun(plan_code=code), id=plan_workflow_id(code), task_queue=queue,
            execution_timeout=timedelta(days=400))
        # Past the announcement and redraw windows (one working day each) to the dispatched targets.
        usccs = await wait_for(lambda: waiting_targets(client, engine, task_id), timeout=90)
        assert len(usccs) >= 2, usccs
        reviewer = people(engine, "reviewer")[0]

        actors: dict[str, tuple[str, str]] = {}  # uscc -> (check's first inspector, result's inspector)
        for n, uscc in enumerate(usccs):
            team = (await target_status(client, task_id, uscc)).teams[0].inspectors
            actors[uscc] = (team[0], team[1])
            if n == 0:
                target = client.get_workflow_handle_for(TargetInspectionWorkflow.run, target_workflow_id(task_id, uscc))
                await target.signal(TargetInspectionWorkflow.field_signal, FieldSignal(kind="arrive", inspector=team[1]))
            assert (await send(client, task_id, uscc, "check", CheckRecord(inspectors=team, method="document"))).accepted
            await send(client, task_id, uscc, "result", ResultEntry(
                inspector=team[1], category=CATEGORIES[n % len(CATEGORIES)],
                findings={p: "pass" for p in CHECKPOINTS}))
            await send(client, task_id, uscc, "review", Review(reviewer=reviewer, approve=True))

        assert (await handle.result()).tasks_closed == 1

    events = await timeline(client, task_id, engine=engine)
    assert events and all(set(e) >= {"at", "event", "actor", "target", "details"} for e in events)
    moments = [datetime.fromisoformat(e["at"]) for e in events]
    assert all(m.utcoffset() == timedelta(0) for m in moments)
    assert moments == sorted(moments)

    first, first_people = usccs[0], actors[usccs[0]]
    found = in_order(events, [
        ("announced", None), ("deadline passed", None), ("frozen", None), ("drawn", None), ("deadline passed", None),
        ("dispatched", None),
        ("target opened", None), ("check recorded", first_people[0]), ("result entered", first_people[1]),
        ("approved", reviewer), ("published", None), ("task closed", None),
    ])
    announced, window, frozen, drawn, redraws, dispatched, opened, checked, entered, approved, published, closed = found
    assert window["details"] == "freeze of the population" and redraws["details"].startswith("dispatch")
    assert announced["target"] is None and closed["target"] is None and drawn["target"] is None
    assert announced["details"].startswith("commitment ")
    assert "population " in frozen["details"] and "digest " in frozen["details"]
    selected, targeted = map(int, re.match(r"selected (\d+) \(\+(\d+) targeted\)", drawn["details"]).groups())
    assert selected + targeted == len(usccs)
    assert opened["target"] in usccs and checked["target"] in usccs
    assert "method document" in checked["details"]
    assert closed["details"] == "closed"
    # Task-level events come once; every target has its own complete story.
    assert [e["event"] for e in events].count("announced") == 1
    assert sum(e["event"] == "target closed" for e in events) == len(usccs)
    # One signal to the task, from the last target to close: the task counts the others in the projection.
    assert [e["event"] for e in events].count("last target finished") == 1
    assert [e["event"] for e in events].count("target finished") == 0
    assert sum(e["event"] == "published" for e in events) == len(usccs)
    assert not [e for e in events if e["event"] == "failed"]

    for n, uscc in enumerate(usccs):
        own = await timeline(client, task_id, uscc)
        assert own and {e["target"] for e in own} == {uscc}
        assert own == [e for e in events if e["target"] == uscc]
        checker, enterer = actors[uscc]
        in_order(own, [("target started", None), ("target opened", None), ("notice", None),
                       ("check recorded", checker), ("result entered", enterer), ("approved", reviewer),
                       ("published", None), ("target closed", None)])
        entered = next(e for e in own if e["event"] == "result entered")
        assert entered["details"] == f"category {CATEGORIES[n % len(CATEGORIES)]}"
        if CATEGORIES[n % len(CATEGORIES)] != "no_issue":
            in_order(own, [("approved", reviewer), ("follow-up opened", None), ("handed off", None)])
    arrived = [e for e in await timeline(client, task_id, first) if e["event"] == "arrive"]
    assert [(e["actor"], e["target"]) for e in arrived] == [(first_people[1], first)]


# --- the edges, on a stand-in task: continue-as-new, failures for good, a labelled deadline -------
@activity.defn(name="announce")
async def fake_announce(step: dict) -> dict:
    return {"commitment": "c0ffee", "entropy_source": "none"}


@activity.defn(name="freeze")
async def fake_freeze(step: dict) -> dict:
    raise ApplicationError("directory snapshot unavailable", type="FreezeError", non_retryable=True)


@activity.defn(name="close_task")
async def fake_close_task(closing: dict) -> None:
    return None


@workflow.defn(name="InspectionTaskWorkflow")
class StandInTask:
    """The task's shape only: what the timeline must read, without the database."""

    def __init__(self) -> None:
        self._reason: str | None = None

    @workflow.run
    async def run(self, run: int) -> str:
        options = dict(start_to_close_timeout=timedelta(seconds=10), retry_policy=RetryPolicy(maximum_attempts=1))
        if run == 0:
            await workflow.execute_activity("announce", {"task_id": "x"}, **options)
            workflow.continue_as_new(1)
        try:
            await workflow.execute_activity("freeze", {"task_id": "x"}, **options)
        except ActivityError:
            pass
        await workflow.wait_condition(lambda: self._reason is not None)
        try:
            # Short, so that it fires in real time too: a chain earlier in the session can leave the
            # time-skipping server unable to skip (a closed parent still listing its abandoned child).
            await workflow.wait_condition(lambda: False, timeout=timedelta(seconds=2), timeout_summary="publication due")
        except asyncio.TimeoutError:
            pass
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.execute_activity("close_task", {"task_id": "x", "cancelled": True, "reason": self._reason},
                                        **options)
        return "cancelled"

    @workflow.signal
    def cancel(self, reason: str) -> None:
        self._reason = reason

    @workflow.update
    async def record_check(self, check: dict) -> str:
        raise ApplicationError("the register is read-only", type="StoreDown")


async def test_timeline_follows_continue_as_new_and_shows_failures(ts_env):
    client = ts_env.client
    task_id = f"TL-{uuid.uuid4().hex[:6]}-EDGE"
    queue = f"q-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[StandInTask],
                      activities=[fake_announce, fake_freeze, fake_close_task],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        first = await client.start_workflow(StandInTask.run, 0, id=task_workflow_id(task_id), task_queue=queue)
        handle = client.get_workflow_handle_for(StandInTask.run, task_workflow_id(task_id))

        async def second_run():
            return (await handle.describe()).run_id != first.result_run_id

        await wait_for(second_run)  # messages for the first run would be lost in its continue-as-new
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(StandInTask.record_check,
                                        {"inspectors": ["JDZ-I001", "JDZ-I002"], "method": "document"})
        await handle.signal(StandInTask.cancel, "withdrawn by the plan")
        assert await first.result() == "cancelled"  # the started handle follows the runs

    events = await timeline(client, task_id)
    shown = [(e["event"], e["actor"], e["details"]) for e in events]
    assert ("announced", None, "commitment c0ffee; entropy none") in shown  # from the first run
    failed = [e for e in events if e["event"] == "failed"]
    assert any(e["details"].startswith("freeze: ") and "directory snapshot unavailable" in e["details"] for e in failed)
    assert any(e["details"].startswith("check recorded: ") and "read-only" in e["details"]
               and e["actor"] == "JDZ-I001" for e in failed)
    in_order(events, [("announced", None), ("cancel requested", None), ("deadline passed", None), ("task closed", None)])
    deadline = next(e for e in events if e["event"] == "deadline passed")
    assert deadline["details"] == "publication due"
    assert events[-1]["details"] == "cancelled: withdrawn by the plan"
    assert all(e["target"] is None for e in events)
    assert not [e for e in events if e["event"] == "frozen"]

    with pytest.raises(LookupError, match="not a target"):
        await timeline(client, task_id, "91360202MA00000000")
    with pytest.raises(LookupError, match="no task"):
        await timeline(client, f"{task_id}-NONE")
