"""R23 for an item, on the time-skipping server: a task whose plan line marks its item (`withheld_items`)
opens every target marked by it. Each result then waits for a supervisor's decision, as a result a person
marked does (the same update, the same register row): approved, it is published with the item's fields
withheld and a note; refused, in full. A person's own marking is refused, the result being marked already.

One run (module fixture `scenario`) in a schema of this module's own; the tests read what it saw.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from db import schema
from domain.messages.target import CheckRecord, ResultEntry, Review, Withholding, WithholdingDecision
from domain.stages import Stage
from domain.workdays import Deadlines, calendar_from_env
from read.public_site import WITHHELD, site
from read.timeline import execution_chain
from service.imports import import_examples
from service.targets import send
from service.targets import status as target_status
from store.plans import load_plan
from tests.conftest import own_schema
from tests.workflows.support import (
    ALL_PASS,
    make_workers,
    people,
    plan_file,
    release_leaked_time_lock,
    rows_of,
    server_today,
    start_plan,
    terminate_chain,
    wait_for,
    waiting_targets,
)
from workflows.common import target_workflow_id
from workflows.target import WITHHOLDS_MARKED_ITEMS, TargetInspectionWorkflow

pytestmark = pytest.mark.postgres

INDUSTRY = "C15"  # 11 enterprises of 360202: a few targets; the schema is this module's own
MARKING = {"item": "GS-001", "grounds": "trade_secret", "fields": ["check_date", "entity_name"],
           "reason": "年报中的生产工艺信息属于商业秘密"}


@dataclass
class Observed:
    withheld: str = ""  # the target whose withholding a supervisor approved
    full: str = ""  # the one whose withholding was refused
    marking: Withholding | None = None  # the approved one's status, before anything was sent to it
    person_mark_refusal: str = ""
    unpublished_before_decision: list = field(default_factory=list)
    stage_before_decision: Stage | None = None
    answers: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    payloads: dict[str, dict] = field(default_factory=dict)
    decisions: dict[str, dict] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    replay_failures: list = field(default_factory=list)
    first_run_markers: str = ""
    supervisor: str = ""


@pytest.fixture(scope="module")
def engine(postgres_url):
    with own_schema(postgres_url) as own:
        import_examples(own.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        yield own.engine


def marked_plan(today, code: str) -> bytes:
    plan = json.loads(plan_file(today, code, industry=INDUSTRY))
    plan["tasks"][0]["withheld_items"] = [MARKING]
    return json.dumps(plan, ensure_ascii=False).encode()


def result_payload(engine, task_id: str, uscc: str) -> dict | None:
    p = schema.publications
    with engine.connect() as c:
        row = c.execute(select(p.c.payload).where(p.c.task_id == task_id, p.c.uscc == uscc,
                                                  p.c.kind == "result")).first()
    return json.loads(row.payload) if row else None


@pytest_asyncio.fixture(scope="module")
async def scenario(ts_env, engine, tmp_path_factory):
    env, client = ts_env, ts_env.client
    await release_leaked_time_lock(env)
    seen = Observed()
    code = f"IW-{uuid.uuid4().hex[:6]}"
    plan, created = load_plan(engine, marked_plan(await server_today(env), code), "plan.json")
    assert created
    task_id = plan.tasks[0].task_id
    queue, main, heavy = make_workers(env, engine, tmp_path_factory.mktemp("items"), Deadlines(calendar_from_env()))
    async with main, heavy:
        try:
            await start_plan(client, code, queue)
            usccs = await wait_for(lambda: waiting_targets(client, engine, task_id), timeout=90, env=env)
            seen.withheld, seen.full = usccs[:2]
            seen.supervisor = people(engine, "supervisor")[0]
            reviewer = people(engine, "reviewer")[0]
            for uscc in (seen.withheld, seen.full):
                status = await target_status(client, task_id, uscc)
                if uscc == seen.withheld:
                    seen.marking = status.withholding
                team = status.teams[0].inspectors
                handle = client.get_workflow_handle_for(TargetInspectionWorkflow.run, target_workflow_id(task_id, uscc))
                if uscc == seen.withheld:
                    with pytest.raises(WorkflowUpdateFailedError) as refused:
                        await handle.execute_update(TargetInspectionWorkflow.mark_withholding, Withholding(
                            marked_by=team[0], grounds="privacy", fields=["entity_name"], reason="经营者姓名"))
                    seen.person_mark_refusal = refused.value.cause.message
                await send(client, task_id, uscc, "check", CheckRecord(inspectors=team, method="document"))
                await send(client, task_id, uscc, "result", ResultEntry(
                    inspector=team[1], category="no_issue", findings=ALL_PASS))
                await send(client, task_id, uscc, "review", Review(reviewer=reviewer, approve=True))
                # Approved, and waiting for the decision on withholding: nothing is published meanwhile.
                seen.stage_before_decision = (await target_status(client, task_id, uscc)).stage
                seen.unpublished_before_decision.append(result_payload(engine, task_id, uscc))
                seen.answers.append(await handle.execute_update(
                    TargetInspectionWorkflow.decide_withholding,
                    WithholdingDecision(approver=seen.supervisor, approve=uscc == seen.withheld)))
                seen.results.append(await handle.result())
                seen.payloads[uscc] = result_payload(engine, task_id, uscc)
                [seen.decisions[uscc]] = rows_of(engine, schema.register_decisions, target_workflow_id(task_id, uscc))
            with engine.connect() as c:
                seen.pages = site(c)
                seen.names = dict(c.execute(select(schema.entities.c.uscc, schema.entities.c.name).where(
                    schema.entities.c.uscc.in_(usccs[:2]))).all())

            # Every run replays on the current code; the patch's marker is in the run that opened the target.
            replayer = Replayer(workflows=[TargetInspectionWorkflow], data_converter=pydantic_data_converter)
            runs = await execution_chain(client, target_workflow_id(task_id, seen.withheld))
            for events in runs:
                replayed = await replayer.replay_workflow(
                    WorkflowHistory(target_workflow_id(task_id, seen.withheld), list(events)),
                    raise_on_replay_failure=False)
                seen.replay_failures.append(replayed.replay_failure)
            seen.first_run_markers = json.dumps([str(e.marker_recorded_event_attributes) for e in runs[0]])
        finally:
            await terminate_chain(client, engine, code, task_id)
    yield seen


def test_a_target_of_a_marked_item_opens_marked_by_it(scenario):
    marking = scenario.marking
    assert marking is not None and marking.marked_by == "GS-001"
    assert (marking.grounds, marking.fields) == ("trade_secret", ["check_date", "entity_name"])
    assert MARKING["reason"] in marking.reason
    assert "already marked for withholding by GS-001" in scenario.person_mark_refusal


def test_each_result_waits_for_the_decision_before_publication(scenario):
    assert scenario.stage_before_decision == Stage.APPROVED
    assert scenario.unpublished_before_decision == [None, None]
    assert scenario.results == ["closed", "closed"]
    assert scenario.answers[0].startswith("approved") and scenario.answers[1].startswith("refused")


def test_approved_the_items_fields_are_withheld_with_a_note(scenario):
    payload = scenario.payloads[scenario.withheld]
    assert "entity_name" not in payload and "check_date" not in payload
    assert payload["withheld"] == ["check_date", "entity_name"] and payload["withheld_grounds"] == "trade_secret"
    assert "商业秘密" in payload["withheld_note"] and payload["category"] == "no_issue"
    page = scenario.pages[f"entities/{scenario.withheld}.html"]
    assert scenario.names[scenario.withheld] not in page
    assert WITHHELD in page and payload["withheld_note"] in page


def test_refused_the_result_is_published_in_full(scenario):
    payload = scenario.payloads[scenario.full]
    assert payload["entity_name"] == scenario.names[scenario.full] and "withheld" not in payload
    assert scenario.names[scenario.full] in scenario.pages[f"entities/{scenario.full}.html"]


def test_the_register_records_each_marking_and_its_decision(scenario):
    for uscc, decision in ((scenario.withheld, "approved"), (scenario.full, "rejected")):
        row = scenario.decisions[uscc]
        assert (row["kind"], row["requested_by"], row["decision"], row["decided_by"]) == \
               ("withholding", "GS-001", decision, scenario.supervisor)
        assert row["reason"].startswith("trade_secret: check_date, entity_name: GS-001: ")


def test_every_run_replays_with_the_patch_marker_where_the_target_opened(scenario):
    assert scenario.replay_failures and all(failure is None for failure in scenario.replay_failures)
    assert WITHHOLDS_MARKED_ITEMS in scenario.first_run_markers
