"""Nothing left behind, nothing doubled.

- A refused update (each rule of the validators of TargetInspectionWorkflow) raises Refused
  with a message that names the problem, and changes nothing: the same `targets` row, no alert,
  outbox, publication or follow-up row, and no event in the history — exactly the same history
  length on the real server; on the time-skipping server, which has no speculative workflow tasks,
  at most the three bookkeeping events of the update's workflow task.
- An activity that fails after its transaction committed is retried without a second row: a
  worker whose `publish_result` and `open_follow_up` raise on their first attempt, after the real
  activity wrote, still leaves one publication, one follow-up per step and one outbox row per step.
- The webhook adapter sends the idempotency key and the JSON body, and a non-2xx answer raises (so
  the delivery activity retries, with the same key).
"""
from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import HTTPError

import pydantic
import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

from activities.handoff import HandoffActivities, JsonlReceiver, Notifier, WebhookReceiver
from activities.targets import TargetActivities
from db import schema
from domain.messages.target import (
    CheckRecord,
    FollowUpOpened,
    FollowUpStep,
    ManualAssignment,
    Recheck,
    ResultEntry,
    Review,
    TargetRun,
    TargetStep,
)
from domain.workdays import Deadlines, calendar_from_env
from runtime.client import build_worker
from service.errors import Refused
from service.targets import send, status as target_status
from service.imports import import_examples
from store.plans import load_plan
from tests.conftest import own_schema
from tests.workflows.support import (
    ALL_PASS,
    CHECKPOINTS,
    UNIT,
    alerts_of,
    dev_server,
    history_events,
    make_workers,
    people,
    plan_file,
    release_leaked_time_lock,
    rows_of,
    server_today,
    start_plan,
    target_row,
    terminate_chain,
    wait_for,
    waiting_targets,
)
from workflows.common import HEAVY_TASK_QUEUE, target_workflow_id
from workflows.target import TargetInspectionWorkflow

REFUSALS_INDUSTRIES = ["C15", "E50"]  # five strata of 360202 enterprises: six targets
RETRY_INDUSTRY = "K70"  # three more, never drawn by this module's other task (frequency cap)
postgres = pytest.mark.postgres
PROJECTIONS = (schema.alerts, schema.outbox, schema.publications, schema.follow_ups)


@pytest.fixture(scope="module")
def directories(postgres_url):
    """The example directories in a schema of this module's own: no other test's draw shrinks its
    populations (the frequency cap spans the plan year), so its tasks draw the same targets every run."""
    with own_schema(postgres_url) as schema:
        import_examples(schema.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        yield schema.engine


# --- refusals ----------------------------------------------------------------------------------------
# What a refused update may add to the history. The real server runs an update's workflow task
# speculatively and drops it on rejection: nothing. The Java time-skipping server has no speculative
# workflow tasks: it keeps that task's three bookkeeping events, and nothing else.
WORKFLOW_TASK_EVENTS = {EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
                        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED}


class Targets:
    """Targets whose workflows run on `client`; each refusal test takes one of its own."""

    def __init__(self, client, engine, plan, usccs: list[str], *, speculative_updates: bool):
        self.client, self.engine, self.plan, self.usccs = client, engine, plan, usccs
        self.task_id = plan.tasks[0].task_id
        self.speculative_updates = speculative_updates

    async def team(self, uscc: str) -> list[str]:
        return (await target_status(self.client, self.task_id, uscc)).teams[0].inspectors

    async def accept(self, uscc: str, verb: str, command) -> None:
        assert (await send(self.client, self.task_id, uscc, verb, command)).accepted
        await self.settled(uscc)

    async def settled(self, uscc: str) -> int:
        """Wait until the target's workflow is idle: no activity in flight, history no longer growing."""
        workflow_id = target_workflow_id(self.task_id, uscc)
        handle = self.client.get_workflow_handle(workflow_id)
        previous = -1

        async def idle():
            nonlocal previous
            events = await history_events(self.client, workflow_id)
            raw = (await handle.describe()).raw_description
            stable, previous = len(events) == previous, len(events)
            # Idle: no activity and no workflow task in flight (a loaded server can lag one sample), and
            # the run has completed one (a run the target just continued as new into has not).
            busy = raw.pending_activities or raw.HasField("pending_workflow_task") or not any(
                e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events)
            return len(events) if stable and not busy else None
        return await wait_for(idle, timeout=30)

    async def snapshot(self, uscc: str):
        workflow_id = target_workflow_id(self.task_id, uscc)
        return (await history_events(self.client, workflow_id),
                target_row(self.engine, self.task_id, uscc),
                {table.name: rows_of(self.engine, table, workflow_id) for table in PROJECTIONS})

    async def refused(self, uscc: str, verb: str, command, *named: str) -> str:
        """Send a command that must be refused; the refusal names `named`; nothing changes."""
        events, row, rows = await self.snapshot(uscc)
        with pytest.raises(Refused) as refusal:
            await send(self.client, self.task_id, uscc, verb, command)
        message = str(refusal.value)
        for fragment in named:
            assert fragment in message, f"{fragment!r} not in refusal {message!r}"
        events_after, row_after, rows_after = await self.snapshot(uscc)
        added = [EventType.Name(e.event_type) for e in events_after[len(events):]]
        if self.speculative_updates:
            assert len(events_after) == len(events), f"refusal {message!r} added events {added}"
        else:
            assert {e.event_type for e in events_after[len(events):]} <= WORKFLOW_TASK_EVENTS and len(added) <= 3, (
                f"refusal {message!r} added events {added}")
        assert events_after[:len(events)] == events
        assert row_after == row, f"targets row changed on refusal {message!r}"
        assert rows_after == rows, f"rows written on refusal {message!r}"
        return message


@pytest_asyncio.fixture(scope="module")
async def chain(ts_env, directories, tmp_path_factory):
    """A task on the time-skipping server, run until its targets are dispatched and idle."""
    env, engine = ts_env, directories
    await release_leaked_time_lock(env)
    code = f"RF-{uuid.uuid4().hex[:6]}"
    plan, created = load_plan(engine, plan_file(await server_today(env), code, industry=REFUSALS_INDUSTRIES),
                              "plan.json")
    assert created
    task_id = plan.tasks[0].task_id
    queue, main, heavy = make_workers(env, engine, tmp_path_factory.mktemp("refusals"))
    async with main:
        try:
            # The heavy worker only until dispatch: its queue is global, and another test starts its own.
            async with heavy:
                await start_plan(env.client, code, queue)
                usccs = await wait_for(lambda: waiting_targets(env.client, engine, task_id), timeout=90, env=env,
                                       skip=timedelta(hours=6))
            assert len(usccs) >= 5, usccs
            running = Targets(env.client, engine, plan, usccs, speculative_updates=False)
            for uscc in usccs:
                await running.settled(uscc)
            yield running
        finally:
            await terminate_chain(env.client, engine, code, task_id)


def outsider(engine, team: list[str]) -> str:
    """An active inspector of the same unit who is not on this team."""
    return next(p for p in people(engine, "inspector") if p not in team)


@postgres
async def test_refusals_before_the_check(chain):
    uscc = chain.usccs[0]
    team = await chain.team(uscc)
    other = outsider(chain.engine, team)
    reviewer = people(chain.engine, "reviewer")[0]

    await chain.refused(uscc, "check", CheckRecord(inspectors=[team[0]], method="document"),
                        "at least two inspectors", team[0])
    await chain.refused(uscc, "check", CheckRecord(inspectors=[team[0], team[0]], method="document"),
                        "at least two inspectors")
    await chain.refused(uscc, "check", CheckRecord(inspectors=[team[0], other], method="document"),
                        "not on this target's team", other)
    await chain.refused(uscc, "check", CheckRecord(inspectors=team, method="onsite"),
                        "certificates were shown", "--certificates-shown")
    await chain.refused(uscc, "check", CheckRecord(inspectors=team, method="entrusted"),
                        "'entrusted' is not allowed")
    await chain.refused(uscc, "result", ResultEntry(inspector=team[0], category="no_issue", findings=ALL_PASS),
                        "cannot enter a result", "stage dispatched")
    await chain.refused(uscc, "review", Review(reviewer=reviewer, approve=True),
                        "cannot review a result", "stage dispatched")
    assert target_row(chain.engine, chain.task_id, uscc)["stage"] == "dispatched"


@postgres
async def test_refusals_of_a_result(chain):
    uscc = chain.usccs[1]
    team = await chain.team(uscc)
    other = outsider(chain.engine, team)
    reviewer = people(chain.engine, "reviewer")[0]
    await chain.accept(uscc, "check", CheckRecord(inspectors=team, method="onsite", certificates_shown=True))

    await chain.refused(uscc, "check", CheckRecord(inspectors=list(reversed(team)), method="document"),
                        "cannot record a check", "stage checked")
    await chain.refused(uscc, "review", Review(reviewer=reviewer, approve=True),
                        "cannot review a result", "stage checked")
    await chain.refused(uscc, "result", ResultEntry(inspector=other, category="no_issue", findings=ALL_PASS),
                        "not on this target's team", other)
    await chain.refused(uscc, "result", ResultEntry(inspector=team[0], category="other", findings=ALL_PASS),
                        "'other' needs a note", "--note")
    await chain.refused(uscc, "result", ResultEntry(inspector=team[0], category="other", note="   ",
                                                    findings=ALL_PASS), "'other' needs a note")
    partial = {p: "pass" for p in CHECKPOINTS[:-1]}
    await chain.refused(uscc, "result", ResultEntry(inspector=team[0], category="no_issue", findings=partial),
                        "a finding is needed for each check point", f"missing: {CHECKPOINTS[-1]}")
    await chain.refused(uscc, "result", ResultEntry(inspector=team[0], category="no_issue",
                                                    findings={**ALL_PASS, "SP-001-1": "fail"}),
                        "not in this task's checklists: SP-001-1")
    # The same target still takes a valid entry.
    await chain.accept(uscc, "result", ResultEntry(inspector=team[1], category="other", note="搬迁中",
                                                   findings=ALL_PASS))
    assert target_row(chain.engine, chain.task_id, uscc)["category"] == "other"


def bogus_entry(inspector: str) -> ResultEntry:
    """A category the client refuses (ValidationError), built as a client that does not validate would send it."""
    with pytest.raises(pydantic.ValidationError, match="unknown result category 'bogus'"):
        ResultEntry(inspector=inspector, category="bogus", findings=ALL_PASS)
    return ResultEntry.model_construct(inspector=inspector, category="bogus", note="", findings=ALL_PASS)


async def checked(targets: Targets, uscc: str) -> list[str]:
    """The target with its check recorded (once); its team."""
    team = await targets.team(uscc)
    if (await target_status(targets.client, targets.task_id, uscc)).check is None:
        await targets.accept(uscc, "check", CheckRecord(inspectors=team, method="document"))
    return team


@postgres
async def test_an_unknown_category_is_refused_and_leaves_nothing(chain):
    uscc = chain.usccs[3]
    team = await checked(chain, uscc)
    await chain.refused(uscc, "result", bogus_entry(team[0]))
    assert target_row(chain.engine, chain.task_id, uscc)["category"] is None


@postgres
async def test_an_unknown_category_refusal_names_the_category(chain):
    uscc = chain.usccs[3]
    team = await checked(chain, uscc)
    await chain.refused(uscc, "result", bogus_entry(team[0]), "unknown result category 'bogus'")


@postgres
async def test_refusals_of_a_review(chain):
    uscc = chain.usccs[2]
    team = await chain.team(uscc)
    reviewers = people(chain.engine, "reviewer")
    supervisor = people(chain.engine, "supervisor")[0]
    assert len(reviewers) >= 2
    await chain.accept(uscc, "check", CheckRecord(inspectors=team, method="document"))
    await chain.accept(uscc, "result", ResultEntry(inspector=team[0], category="no_issue", findings=ALL_PASS))
    # A supervisor puts a reviewer on the team (recorded); that reviewer may no longer review it.
    await chain.accept(uscc, "assign", ManualAssignment(unit=UNIT, inspectors=[team[0], reviewers[0]],
                                                        by=supervisor, reason="test: a reviewer in the field"))

    await chain.refused(uscc, "result", ResultEntry(inspector=team[0], category="passed", findings=ALL_PASS),
                        "cannot enter a result", "stage entered")
    await chain.refused(uscc, "review", Review(reviewer=reviewers[0], approve=True),
                        reviewers[0], "is on the inspection team")
    await chain.refused(uscc, "review", Review(reviewer=team[0], approve=True),
                        team[0], f"is not a reviewer of unit {UNIT}")
    await chain.refused(uscc, "review", Review(reviewer=supervisor, approve=True),
                        supervisor, f"is not a reviewer of unit {UNIT}")
    await chain.refused(uscc, "review", Review(reviewer=reviewers[1], approve=False),
                        "a return needs a note")
    # The right reviewer still can.
    assert (await send(chain.client, chain.task_id, uscc, "review",
                       Review(reviewer=reviewers[1], approve=True))).accepted
    await wait_for(lambda: target_row(chain.engine, chain.task_id, uscc)["reviewed_by"] == reviewers[1])


# Malformed payloads (issue 7): what a client that does not validate (another SDK, the UI) could send.
RAW_UPDATES = {  # update name: (payload model, a well-formed payload to break one field of)
    "record_check": (CheckRecord, {"inspectors": ["I1", "I2"], "method": "document", "certificates_shown": False,
                                   "evidence": []}),
    "enter_result": (ResultEntry, {"inspector": "I1", "category": "no_issue", "note": "", "findings": {}}),
    "review_result": (Review, {"reviewer": "R1", "approve": True, "note": ""}),
    "assign_team": (ManualAssignment, {"unit": UNIT, "inspectors": ["I1", "I2"], "by": "S1", "reason": "test"}),
    "record_recheck": (Recheck, {"inspector": "I1", "passed": True, "note": ""}),
}


@postgres
async def test_malformed_update_payloads_are_refused_and_change_nothing(chain):
    """hypothesis: each update with one field of its payload broken (wrong type, missing, unknown key, a NUL
    in its text) is refused while decoding, naming the field, and leaves the history, the
    target's row and the projections as they were (the Targets.refused checks)."""
    import asyncio

    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as st
    from temporalio.client import WorkflowUpdateFailedError

    from service.gateway import reasons

    assert len(chain.usccs) >= 6, "needs a sixth target that no other test uses"
    uscc, loop = chain.usccs[5], asyncio.get_running_loop()
    handle = chain.client.get_workflow_handle(target_workflow_id(chain.task_id, uscc))
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                               lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
                               max_leaves=4)

    async def refused(name: str, payload: dict, field: str) -> None:
        events, row, rows = await chain.snapshot(uscc)
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update(name, payload, id=f"fuzz-{uuid.uuid4()}")
        assert field in reasons(failure.value.cause), reasons(failure.value.cause)
        events_after, row_after, rows_after = await chain.snapshot(uscc)
        assert {e.event_type for e in events_after[len(events):]} <= WORKFLOW_TASK_EVENTS
        assert events_after[:len(events)] == events and row_after == row and rows_after == rows

    @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        name = data.draw(st.sampled_from(sorted(RAW_UPDATES)), label="update")
        model, good = RAW_UPDATES[name]
        field = data.draw(st.sampled_from(sorted(good)), label="field")
        action = data.draw(st.sampled_from(["replace", "delete", "unknown", "text"]), label="action")
        payload = dict(good)
        if action == "replace":
            payload[field] = data.draw(json_values, label="value")
        elif action == "delete":
            del payload[field]
        elif action == "unknown":
            field = data.draw(st.text("abcxyz_", min_size=1, max_size=8).filter(lambda k: k not in good), label="key")
            payload[field] = 1
        else:
            assume(isinstance(good[field], str))
            payload[field] = good[field] + "\x00"  # (a lone surrogate cannot even be sent: the client cannot encode it)
        try:  # only what the model refuses: a payload it accepts would go on to the validator
            model.model_validate(payload)
            assume(False)
        except pydantic.ValidationError:
            pass
        asyncio.run_coroutine_threadsafe(refused(name, payload, field), loop).result(timeout=60)

    await asyncio.to_thread(run)


@postgres
async def test_refusals_add_no_event_on_the_real_server(chain, tmp_path):
    """The same validators on the real server, where a rejected update's workflow task is speculative:
    a refusal leaves the history exactly as long as it was. The target moves from the time-skipping
    server (terminated there) to a dev server, where a TargetInspectionWorkflow reopens it from the rows."""
    uscc = chain.usccs[4]
    await chain.client.get_workflow_handle(target_workflow_id(chain.task_id, uscc)).terminate(
        reason="moved to the dev server")
    async with dev_server() as dev:
        queue = f"q-{uuid.uuid4()}"
        worker = build_worker(dev.client, queue, chain.engine, Deadlines(calendar_from_env()),
                              JsonlReceiver(tmp_path / "outbox.jsonl"), ThreadPoolExecutor(max_workers=4))
        async with worker:
            handle = await dev.client.start_workflow(
                TargetInspectionWorkflow.run,
                TargetRun(task_id=chain.task_id, uscc=uscc, plan_code=chain.plan.plan_code,
                          plan_year=chain.plan.year),
                id=target_workflow_id(chain.task_id, uscc), task_queue=queue, execution_timeout=timedelta(days=30))
            try:
                real = Targets(dev.client, chain.engine, chain.plan, [uscc], speculative_updates=True)
                await wait_for(lambda: "notify-team" in alerts_of(chain.engine, chain.task_id, uscc), timeout=30)
                await real.settled(uscc)
                team = await real.team(uscc)
                reviewer = people(chain.engine, "reviewer")[0]
                await real.refused(uscc, "check", CheckRecord(inspectors=[team[0]], method="document"),
                                   "at least two inspectors")
                await real.refused(uscc, "check", CheckRecord(inspectors=team, method="onsite"),
                                   "--certificates-shown")
                await real.refused(uscc, "result", ResultEntry(inspector=team[0], category="no_issue",
                                                               findings=ALL_PASS), "stage dispatched")
                await real.accept(uscc, "check", CheckRecord(inspectors=team, method="document"))
                await real.refused(uscc, "result", bogus_entry(team[0]))
                await real.refused(uscc, "result", ResultEntry(inspector=team[0], category="other",
                                                               findings=ALL_PASS), "needs a note")
                await real.refused(uscc, "result", ResultEntry(
                    inspector=team[0], category="no_issue", findings={CHECKPOINTS[0]: "pass"}), "missing:")
                await real.refused(uscc, "review", Review(reviewer=reviewer, approve=True), "stage checked")
                await real.accept(uscc, "result", ResultEntry(inspector=team[0], category="no_issue",
                                                              findings=ALL_PASS))
                await real.refused(uscc, "review", Review(reviewer=team[1], approve=True), "is not a reviewer")
                await real.refused(uscc, "review", Review(reviewer=reviewer, approve=False), "needs a note")
            finally:
                await handle.terminate(reason="test finished")


# --- a side effect retried after its write -------------------------------------------------------------
def failing_after_the_write(client, queue: str, engine, deadlines, receiver, executor,
                            attempts: list[tuple[str, str, int]]) -> Worker:
    """The main worker of runtime.client.build_worker, with publish_result and open_follow_up raising on
    their first attempt after the real activity's transaction committed."""
    notifier = Notifier(engine, receiver)
    targets = TargetActivities(engine, deadlines, notifier)
    handoff = HandoffActivities(engine, deadlines, notifier)

    def after(name: str, key: str) -> None:
        attempt = activity.info().attempt
        attempts.append((name, key, attempt))
        if attempt == 1:
            raise RuntimeError(f"{name} {key}: lost the answer after the commit (test)")

    @activity.defn(name="publish_result")
    def publish_result(step: TargetStep) -> None:
        targets.publish_result(step)
        after("publish_result", step.step)

    @activity.defn(name="open_follow_up")
    def open_follow_up(step: FollowUpStep) -> FollowUpOpened:
        opened = handoff.open_follow_up(step)
        after("open_follow_up", step.step)
        return opened

    # build_worker's own configuration (workflows, every other activity, interceptors), read from a worker
    # built for a queue nobody polls: core allows one worker per queue, and that one is never started.
    config = build_worker(client, f"unused-{uuid.uuid4()}", engine, deadlines, receiver, executor).config()
    replaced = {"publish_result": publish_result, "open_follow_up": open_follow_up}
    names = {activity._Definition.must_from_callable(fn).name: fn for fn in config["activities"]}
    assert set(replaced) <= set(names), sorted(names)
    config["activities"] = [replaced.get(name, fn) for name, fn in names.items()]
    config["task_queue"] = queue
    return Worker(**config)


@postgres
async def test_side_effects_retried_after_their_write_are_not_doubled(ts_env, directories, tmp_path):
    env, engine, client = ts_env, directories, ts_env.client
    await release_leaked_time_lock(env)
    code = f"RT-{uuid.uuid4().hex[:6]}"
    plan, created = load_plan(engine, plan_file(await server_today(env), code, industry=RETRY_INDUSTRY), "plan.json")
    assert created
    task_id = plan.tasks[0].task_id
    deadlines = Deadlines(calendar_from_env())
    receiver = JsonlReceiver(tmp_path / "outbox.jsonl")
    queue = f"q-{uuid.uuid4()}"
    executor = ThreadPoolExecutor(max_workers=8)
    heavy = build_worker(client, HEAVY_TASK_QUEUE, engine, deadlines, receiver, executor)
    attempts: list[tuple[str, str, int]] = []
    flaky = failing_after_the_write(client, queue, engine, deadlines, receiver, executor, attempts)
    async with flaky, heavy:
        try:
            await start_plan(client, code, queue)
            usccs = await wait_for(lambda: waiting_targets(env.client, engine, task_id), timeout=90, env=env,
                                   skip=timedelta(hours=6))
            uscc = usccs[0]
            team = (await target_status(client, task_id, uscc)).teams[0].inspectors
            await send(client, task_id, uscc, "check", CheckRecord(inspectors=team, method="document"))
            # unreachable: an abnormal-operations listing, closed when the register accepts it.
            await send(client, task_id, uscc, "result",
                       ResultEntry(inspector=team[0], category="unreachable", findings=ALL_PASS))
            await send(client, task_id, uscc, "review", Review(reviewer=people(engine, "reviewer")[0], approve=True))
            handle = client.get_workflow_handle(target_workflow_id(task_id, uscc))
            assert await handle.result() == "closed"
        finally:
            await terminate_chain(client, engine, code, task_id)

    # Each replaced activity did fail once after writing, and was retried.
    assert Counter((name, key) for name, key, _ in attempts) == {
        ("publish_result", "publish-result"): 2, ("open_follow_up", "credit-feedback"): 2,
        ("open_follow_up", "follow-up"): 2}
    workflow_id = target_workflow_id(task_id, uscc)
    publications = rows_of(engine, schema.publications, workflow_id)
    assert [(p["kind"], p["uscc"]) for p in publications] == [("result", uscc)]
    with engine.connect() as c:
        results = c.execute(select(schema.publications).where(
            schema.publications.c.kind == "result", schema.publications.c.task_id == task_id,
            schema.publications.c.uscc == uscc)).all()
    assert len(results) == 1
    follow_ups = rows_of(engine, schema.follow_ups, workflow_id)
    assert Counter(f["step"] for f in follow_ups) == {"follow-up": 1}
    assert [(f["kind"], f["state"]) for f in follow_ups] == [("abnormal_listing", "closed")]
    outbox = rows_of(engine, schema.outbox, workflow_id)
    by_step = Counter(row["step"] for row in outbox)
    assert {"credit-feedback", "follow-up"} <= set(by_step)
    assert set(by_step.values()) == {1}, by_step
    assert all(row["delivered_at"] is not None for row in outbox)
    assert target_row(engine, task_id, uscc)["stage"] == "closed"


# --- the webhook adapter --------------------------------------------------------------------------------
class Hook:
    """A local HTTP endpoint that records each POST and answers with `status`."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.seen.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/handoff"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_webhook_sends_the_idempotency_key_and_the_json_body():
    payload = {"lead_id": "T1/91360202MA00000000/follow-up", "entity_name": "景德镇市某某有限公司", "n": 1}
    with Hook() as hook:
        WebhookReceiver(hook.url).send("target/T1/91360202MA00000000/follow-up", "case_lead", payload)
    [request] = hook.seen
    assert request["path"] == "/handoff"
    assert request["headers"]["Idempotency-Key"] == "target/T1/91360202MA00000000/follow-up"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == {"kind": "case_lead", "payload": payload}


def test_webhook_error_answer_raises_and_the_delivery_is_retried_with_the_same_key(sqlite_engine):
    with Hook() as hook:
        hook.status = 500
        with pytest.raises(HTTPError, match="500"):
            WebhookReceiver(hook.url).send("wf/step", "notification", {"text": "x"})

        # Through the outbox: a failed send leaves the row undelivered, the retry sends the same key once.
        notifier = Notifier(sqlite_engine, WebhookReceiver(hook.url))
        with sqlite_engine.begin() as connection:
            notifier.enqueue(connection, "wf-1", "alert-1", "notification", {"text": "提醒"})
        with pytest.raises(HTTPError):
            notifier.deliver("wf-1", "alert-1")
        [row] = rows_of(sqlite_engine, schema.outbox, "wf-1")
        assert row["delivered_at"] is None and row["attempts"] == 1
        hook.status = 204
        assert notifier.deliver("wf-1", "alert-1") is True
        assert notifier.deliver("wf-1", "alert-1") is False  # delivered: never sent again
    [row] = rows_of(sqlite_engine, schema.outbox, "wf-1")
    assert row["delivered_at"] is not None and row["attempts"] == 2
    keys = [r["headers"]["Idempotency-Key"] for r in hook.seen]
    assert keys == ["wf/step", "wf-1/alert-1", "wf-1/alert-1"]
    assert hook.seen[-1]["body"] == {"kind": "notification", "payload": {"text": "提醒"}}
