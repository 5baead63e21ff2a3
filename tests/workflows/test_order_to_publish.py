"""R25 end to end on the time-skipping server: information not published → an order to publish within
10 working days of the verification → the re-check fails → the entity goes on the abnormal list.

The check (the verification) is recorded on one day and the result approved two working days later, so the
order opens after its clock started: its deadline is 10 working days after the check, not after the
opening. The re-check then fails before that deadline; the order closes as failed and the fallback,
an abnormal listing, is opened and handed to the receiving system (which closes it on acceptance).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
import pytest_asyncio

from db import schema
from domain.categories import ORDER_WORKING_DAYS
from domain.messages.target import CheckRecord, Recheck, ResultEntry, Review
from domain.workdays import Deadlines, calendar_from_env
from service.targets import send, status as target_status
from store.plans import load_plan
from tests.workflows.support import (
    ALL_PASS,
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
    wait_for,
    waiting_targets,
)
from workflows.common import target_workflow_id

pytestmark = pytest.mark.postgres

INDUSTRY = "I65"  # 68 enterprises of 360202: a population of this test's own


@dataclass
class Observed:
    deadlines: Deadlines
    check_at: datetime | None = None
    approved_at: datetime | None = None
    order: dict = field(default_factory=dict)
    order_payload: dict = field(default_factory=dict)
    follow_ups: list[dict] = field(default_factory=list)
    listing_payload: dict = field(default_factory=dict)
    final_row: dict = field(default_factory=dict)
    recheck_answer: str = ""


def follow_ups(engine, workflow_id: str) -> list[dict]:
    return sorted(rows_of(engine, schema.follow_ups, workflow_id), key=lambda r: r["opened_at"])


def handed_over(engine, workflow_id: str, kind: str) -> dict | None:
    """The payload queued for the receiving system for the follow-up of `kind`, once queued."""
    rows = [r for r in rows_of(engine, schema.outbox, workflow_id) if r["kind"] == kind]
    return json.loads(rows[0]["payload"]) if rows else None


@pytest_asyncio.fixture(scope="module")
async def scenario(ts_env, directories, tmp_path_factory):
    env, engine, client = ts_env, directories, ts_env.client
    await release_leaked_time_lock(env)
    seen = Observed(deadlines=Deadlines(calendar_from_env()))
    code = f"OP-{uuid.uuid4().hex[:6]}"
    plan, created = load_plan(engine, plan_file(await server_today(env), code, industry=INDUSTRY), "plan.json")
    assert created
    task_id = plan.tasks[0].task_id
    queue, main, heavy = make_workers(env, engine, tmp_path_factory.mktemp("order"), seen.deadlines)
    async with main, heavy:
        try:
            await start_plan(client, code, queue)
            [uscc, *_] = await wait_for(lambda: waiting_targets(client, engine, task_id), timeout=90, env=env,
                                        skip=timedelta(hours=6))
            workflow_id = target_workflow_id(task_id, uscc)
            team = (await target_status(client, task_id, uscc)).teams[0].inspectors

            # The verification: the entity has not published what it must.
            await send(client, task_id, uscc, "check", CheckRecord(inspectors=team, method="document"))
            await send(client, task_id, uscc, "result",
                       ResultEntry(inspector=team[0], category="unpublished_info", findings=ALL_PASS))
            seen.check_at = (await target_status(client, task_id, uscc)).check_at
            await sleep_until(env, seen.deadlines.after_working_days(seen.check_at, 2) + timedelta(minutes=1))
            seen.approved_at = await env.get_current_time()
            await send(client, task_id, uscc, "review", Review(reviewer=people(engine, "reviewer")[0], approve=True))
            seen.order = (await wait_for(lambda: [r for r in follow_ups(engine, workflow_id)
                                                  if r["kind"] == "order_to_publish"]))[0]
            seen.order_payload = await wait_for(lambda: handed_over(engine, workflow_id, "order_to_publish"))

            # The re-check before the deadline finds it still unpublished.
            seen.recheck_answer = (await send(client, task_id, uscc, "recheck",
                                              Recheck(inspector=team[0], passed=False))).message
            await wait_for(lambda: target_row(engine, task_id, uscc)["stage"] == "closed")
            seen.follow_ups = follow_ups(engine, workflow_id)
            seen.listing_payload = handed_over(engine, workflow_id, "abnormal_listing")
            seen.final_row = target_row(engine, task_id, uscc)
        finally:
            await terminate_chain(client, engine, code, task_id)
    yield seen


def test_the_order_is_due_10_working_days_after_the_verification(scenario):
    expected = scenario.deadlines.after_working_days(scenario.check_at, ORDER_WORKING_DAYS)
    assert scenario.order["due_at"] == expected
    assert scenario.order_payload["due_at"] == expected.isoformat()
    # It opened at the approval, two working days after the check: a clock from the opening ends later.
    assert scenario.order["opened_at"] >= scenario.approved_at
    assert scenario.deadlines.after_working_days(scenario.order["opened_at"], ORDER_WORKING_DAYS) > expected


def test_a_failed_recheck_closes_the_order_and_lists_the_entity(scenario):
    assert "failed" in scenario.recheck_answer
    order, listing = scenario.follow_ups
    assert (order["kind"], order["state"], order["closed_by"]) == ("order_to_publish", "closed", "re-check failed")
    assert listing["kind"] == "abnormal_listing" and listing["category"] == "unpublished_info"
    assert listing["opened_at"] >= order["closed_at"]
    assert listing["state"] == "closed" and listing["closed_by"] == "accepted by the receiving system"
    assert scenario.listing_payload["kind"] == "abnormal_listing"
    assert scenario.final_row["stage"] == "closed"
