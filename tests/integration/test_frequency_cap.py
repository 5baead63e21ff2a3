"""R14 on its own: the per-enterprise annual frequency cap counts an entity's selections across every
task of the plan year, and the cap's value decides; R12 (an A-class entity only once a year) applies
whatever the cap.

Five food-licensed enterprises of 360281 in industry C15 (examples/entities.csv: classes U, A, C, B, B),
drawn at ratio 1 (SP-001 is a key item: no ratio cap). T1 and T2 (cap 2) draw them all: T2's freeze
already leaves out the A-class one (R12) and draws the other four a second time. Then, as of now,
T3 (cap 2) excludes those four for the cap, and T4 (cap 3) admits them again; both exclude the
A-class entity.
"""
from __future__ import annotations

import csv
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from activities.draws import DrawActivities
from db import schema
from domain.messages.task import TaskStep
from domain.workdays import SHANGHAI
from runtime.examples import EXAMPLES, shifted_plan
from service.imports import import_examples
from store.directory import task_line
from store.draws import eligible_population, tally
from store.plans import load_plan
from tests.integration.test_audit_package import ENTROPY, ENTROPY_SOURCE, run_activity

pytestmark = pytest.mark.postgres

FILTER = {"subject_type": ["enterprise"], "region": ["360281"], "industry": ["C15"], "labels": ["food_licence"]}
ALL = {"A": "1", "B": "1", "C": "1", "D": "1", "U": "1"}
CAPS = {"T1": 2, "T2": 2, "T3": 2, "T4": 3}


def population_by_hand() -> dict[str, str]:
    with (EXAMPLES / "entities.csv").open(encoding="utf-8") as handle:
        return {r["uscc"]: r["risk_class"] or "U" for r in csv.DictReader(handle)
                if r["subject_type"] == "enterprise" and r["region"].startswith("360281")
                and r["industry"].startswith("C15") and "food_licence" in r["labels"].split(";")
                and r["status"] == "active"}


def capped_plan(code: str) -> bytes:
    plan = json.loads(shifted_plan(datetime.now(SHANGHAI).date(), window_days=60))
    template = plan["tasks"][0]
    plan |= {"plan_code": code, "tasks": [
        {**template, "task_id": f"{code}-{name}", "task_code": f"{template['task_code']}-{name}", "items": ["SP-001"],
         "filter": FILTER, "ratios": ALL, "frequency_cap": cap, "entropy_source": ENTROPY_SOURCE}
        for name, cap in CAPS.items()]}
    return json.dumps(plan, ensure_ascii=False).encode()


def draw(engine, task_id: str) -> int:
    activities = DrawActivities(engine)
    step = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY)
    run_activity(task_id, activities.announce, step)
    run_activity(task_id, activities.freeze, step)
    return run_activity(task_id, activities.draw, step).selected


def as_of_now(engine, task_id: str) -> tuple[dict[str, int], set[str]]:
    """The task's exclusions by reason and its eligible entities, were it frozen now."""
    with engine.connect() as connection:
        line, year = task_line(connection, task_id)
        now = datetime.now(timezone.utc)
        rows = connection.execute(eligible_population(connection, task_id, line, year, now)).all()
        return tally(connection, task_id, line, year, now)[1], {uscc for uscc, _, reason in rows if reason is None}


def test_the_frequency_cap_counts_across_tasks_and_its_value_decides(fresh_pg_engine):
    engine = fresh_pg_engine
    import_examples(engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    code = f"R14-{uuid.uuid4().hex[:6].upper()}"
    load_plan(engine, capped_plan(code), "plan.json")
    population = population_by_hand()
    a_class = {uscc for uscc, stratum in population.items() if stratum == "A"}
    others = set(population) - a_class
    assert len(a_class) == 1 and len(others) == 4, population

    assert draw(engine, f"{code}-T1") == 5
    assert as_of_now(engine, f"{code}-T2") == ({"a_class_already_drawn": 1}, others)  # R12, not the cap
    assert draw(engine, f"{code}-T2") == 4
    with engine.connect() as connection:
        ds = schema.draw_selection
        times = dict(connection.execute(select(ds.c.uscc, func.count()).group_by(ds.c.uscc)).all())
    assert times == {**{u: 2 for u in others}, **{u: 1 for u in a_class}}

    # R14: selected twice this year, at a cap of 2 no task may draw them again; at a cap of 3 one may.
    assert as_of_now(engine, f"{code}-T3") == ({"a_class_already_drawn": 1, "frequency_cap": 4}, set())
    assert as_of_now(engine, f"{code}-T4") == ({"a_class_already_drawn": 1}, others)
