"""The freeze and `draw verify` share one eligibility filter: a task with every filter, checked from the CSV.

The expected population is computed here from examples/entities.csv by hand (subject type, region and
industry prefixes, labels, the items' target labels, the exclusions with another task's selection),
so the shared `store.draws.eligible_population` is checked against the rules, and the freeze's stored
population and published exclusions against it.
"""
from __future__ import annotations

import csv
import json
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from activities.draws import DrawActivities
from db import schema
from domain.messages.task import TaskStep
from domain.workdays import SHANGHAI
from read.audit_package import verify_against_database
from runtime.examples import EXAMPLES, shifted_plan
from service.imports import import_examples
from store.plans import load_plan
from store.directory import task_line
from store import views
from store.draws import eligible_population
from tests.integration.test_audit_package import ENTROPY, ENTROPY_SOURCE, run_activity

pytestmark = pytest.mark.postgres

FILTER = {"subject_type": ["enterprise"], "region": ["3602"], "industry": ["F", "H"], "labels": ["food_licence"]}
ITEMS = ["GS-001", "SP-001"]  # SP-001's target label: food_licence


def filtered_plan(code: str) -> bytes:
    """Two tasks with the same filter: the first one's selection is excluded from the second's freeze."""
    plan = json.loads(shifted_plan(datetime.now(SHANGHAI).date(), window_days=60))
    plan["plan_code"] = code
    template = plan["tasks"][0]
    plan["tasks"] = [{**template, "task_id": f"{code}-T{n}", "task_code": f"{template['task_code']}-{n}",
                      "entropy_source": ENTROPY_SOURCE, "filter": FILTER, "items": ITEMS} for n in (1, 2)]
    return json.dumps(plan, ensure_ascii=False).encode()


def matched_by_hand() -> list[dict]:
    """The example entities the task's filter and its items' target labels match."""
    with (EXAMPLES / "entities.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r for r in rows if r["subject_type"] in FILTER["subject_type"]
            and r["region"].startswith(tuple(FILTER["region"])) and r["industry"].startswith(tuple(FILTER["industry"]))
            and "food_licence" in r["labels"].split(";")]


def freeze(engine, task_id: str, draw: bool) -> None:
    activities = DrawActivities(engine)
    step = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY)
    for method in (activities.announce, activities.freeze, *([activities.draw] if draw else [])):
        run_activity(task_id, method, step)


def test_the_freeze_stores_what_eligible_population_says_and_the_rules_say(fresh_pg_engine):
    engine = fresh_pg_engine
    import_examples(engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    code = f"ELIG-{uuid.uuid4().hex[:6].upper()}"
    plan, created = load_plan(engine, filtered_plan(code), "plan.json")
    assert created
    first, second = (task.task_id for task in plan.tasks)
    freeze(engine, first, draw=True)
    freeze(engine, second, draw=False)

    ds, d = schema.draw_selection, schema.draws
    with engine.connect() as connection:
        drawn_before = {r.uscc for r in connection.execute(select(ds.c.uscc).where(ds.c.task_id == first))}
        stored = dict(views.draw_population(connection, second, 1))
        draw_row = connection.execute(select(d).where(d.c.task_id == second)).mappings().one()
        line, year = task_line(connection, second)
        rebuilt = connection.execute(eligible_population(connection, second, line, year, draw_row["frozen_at"])).all()
    freeze_record = json.loads(draw_row["record"])["freeze"]

    # The rules, by hand: inactive first, then R14 (A class drawn this year), then the frequency cap of 1.
    expected, excluded = {}, Counter()
    for r in matched_by_hand():
        if r["status"] != "active":
            excluded[r["status"]] += 1
        elif r["uscc"] in drawn_before:
            excluded["a_class_already_drawn" if r["risk_class"] == "A" else "frequency_cap"] += 1
        else:
            expected[r["uscc"]] = r["risk_class"] or "U"
    assert drawn_before and excluded["frequency_cap"] + excluded["a_class_already_drawn"] == len(drawn_before)
    assert stored == expected
    assert freeze_record["exclusions"] == dict(excluded)
    assert {uscc: stratum for uscc, stratum, reason in rebuilt if reason is None} == stored
    assert Counter(reason for _, _, reason in rebuilt if reason is not None) == excluded

    freeze(engine, second, draw=True)
    report = verify_against_database(engine, second)
    assert report.ok, str(report)
