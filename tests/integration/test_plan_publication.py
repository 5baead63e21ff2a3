"""The published plan names the unit it was filed with (R6) and lists its special campaigns apart (R7).

The publish_plan activity runs on PostgreSQL against a plan loaded from the example template, once
with both recorded and once with neither (the payload of plans from before them)."""
from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.plans import PlanActivities
from db import schema
from domain.messages.plan import PlanRun
from runtime.examples import shifted_plan
from service.imports import import_examples
from store.plans import load_plan

pytestmark = pytest.mark.postgres

FILING = {"unit": "360200-SCJ", "filed_on": "2026-03-20", "ref": "景市监信备〔2026〕3号"}
CAMPAIGN = {"name": "燃气安全专项检查", "approval_ref": "昌市监批〔2026〕7号"}


@pytest.fixture(scope="module")
def directories(pg_engine):
    import_examples(pg_engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    return pg_engine


def published_plan(engine, **changes) -> dict:
    """Load the template as a plan of the county unit (filed with the city), publish it, read the payload."""
    plan = json.loads(shifted_plan(date.today(), window_days=60))
    code = f"PP-{uuid.uuid4().hex[:6]}"
    tasks = [{**task, "task_id": f"{code}-T{n}"} for n, task in enumerate(plan["tasks"], 1)]
    if "campaign" in changes:
        tasks[-1]["special_campaign"] = changes.pop("campaign")
    plan |= {"plan_code": code, "owner_unit": "360202-SCJ", "tasks": tasks, **changes}
    load_plan(engine, json.dumps(plan, ensure_ascii=False).encode(), "plan.json")
    env = ActivityEnvironment()
    env.info = dataclasses.replace(ActivityEnvironment.default_info(), workflow_id=f"plan/{code}")
    env.run(PlanActivities(engine).publish_plan, PlanRun(plan_code=code))
    p = schema.publications
    with engine.connect() as c:
        [payload] = c.execute(select(p.c.payload).where(p.c.plan_code == code, p.c.kind == "plan")).scalars().all()
    return json.loads(payload) | {"_tasks": [t["task_id"] for t in tasks]}


def test_the_plan_published_names_its_filing_and_its_special_campaign_apart(directories):
    payload = published_plan(directories, filed_with=FILING, campaign=CAMPAIGN)
    assert payload["filed_with"] == FILING
    assert payload["special_campaigns"] == [{"task_id": payload["_tasks"][-1], **CAMPAIGN}]
    assert payload["tasks"] == payload["_tasks"]


def test_a_plan_with_neither_is_published_as_before(directories):
    payload = published_plan(directories)
    assert set(payload) == {"plan_code", "year", "owner_unit", "tasks", "document_sha256", "_tasks"}
