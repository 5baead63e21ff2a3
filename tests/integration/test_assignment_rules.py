"""A supervisor's manual assignment is held to the draw's rules against the directory as it stands (api.md):
each rule broken once is refused by name, before anything reaches the workflow."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, update

from db import schema
from domain.access import Actor
from domain.workdays import SHANGHAI
from runtime import config
from runtime.context import Context
from service.errors import Refused
from service.imports import import_examples
from service.targets import assign_team, assignment_refusal
from store.plans import load_plan
from tests.conftest import own_schema
from tests.workflows.support import plan_file

pytestmark = pytest.mark.postgres
UNIT = "360202-SCJ"
RECUSED_BY_I012 = "91360202MAMGKALJ7B"  # examples/inspectors.csv: JDZ-I012 is recused for it
OTHER = "91360202MA00000000"  # another target of the task, for the load
SUPERVISOR = Actor(id="JDZ-I022", roles=frozenset({"supervisor"}), unit=UNIT, method="password")


@pytest.fixture(scope="module")
def task(postgres_url, tmp_path_factory):
    """A task of unit 360202-SCJ whose item needs `registration`, load cap 1; JDZ-I014 already on a team."""
    with own_schema(postgres_url) as db:
        import_examples(db.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        plan = json.loads(plan_file(datetime.now(SHANGHAI).date(), "RULES"))
        plan["tasks"][0]["load_cap"] = 1
        loaded, _ = load_plan(db.engine, json.dumps(plan).encode(), "plan.json")
        task_id = loaded.tasks[0].task_id
        with db.engine.begin() as c:
            c.execute(insert(schema.teams).values(
                task_id=task_id, uscc=OTHER, unit_code=UNIT, inspectors="JDZ-I014;JDZ-I016", source="draw",
                at=datetime.now(timezone.utc), workflow_id="wf", step="dispatch"))
        # No Temporal client: a refused assignment never gets that far.
        yield Context(config.load(tmp_path_factory.mktemp("rules")), engine=db.engine), task_id


def _set(ctx, inspector: str, **values) -> None:
    with ctx.engine().begin() as c:
        c.execute(update(schema.inspectors).where(schema.inspectors.c.inspector_id == inspector,
                                                   schema.inspectors.c.valid_to.is_(None)).values(**values))


CASES = [  # (what, team, directory change, the rule)
    ("inactive", ["JDZ-I015", "JDZ-I013"], None, "active"),
    ("certificate expired", ["JDZ-I019", "JDZ-I013"], None, "certificate"),
    ("lacking the item's qualification", ["JDZ-I017", "JDZ-I013"],
     ("JDZ-I017", {"qualifications": "price;quality"}), "qualifications"),
    ("recused for the entity", ["JDZ-I012", "JDZ-I013"], None, "recusal"),
    ("of another unit", ["JDZ-I001", "JDZ-I013"], None, "pool"),
    ("not in the directory", ["JDZ-X999", "JDZ-I013"], None, "pool"),
    ("a reviewer", ["JDZ-I020", "JDZ-I013"], None, "role"),
    ("a team of one", ["JDZ-I013"], None, "team-size"),
    ("the same inspector twice", ["JDZ-I013", "JDZ-I013"], None, "team-size"),
    ("over the load cap", ["JDZ-I014", "JDZ-I013"], None, "load-cap"),
    ("made inactive in the directory just now", ["JDZ-I018", "JDZ-I013"], ("JDZ-I018", {"status": "inactive"}),
     "active"),
]


@pytest.mark.parametrize("what,team,change,rule", CASES, ids=[c[0] for c in CASES])
async def test_each_rule_broken_once_is_refused_by_name(task, what, team, change, rule):
    ctx, task_id = task
    if change:
        _set(ctx, change[0], **change[1])
    try:
        with pytest.raises(Refused) as refused:
            await assign_team(ctx, SUPERVISOR, task_id, RECUSED_BY_I012, unit=UNIT, inspectors=team, reason="sick")
    finally:
        if change:  # back to examples/inspectors.csv's values
            _set(ctx, change[0], **{"qualifications": "price;quality;registration", "status": "active"}
                 if change[0] == "JDZ-I017" else {"status": "active"})
    assert [b.rule for b in refused.value.breaches] == [rule]
    assert f"[{rule}]" in str(refused.value) and str(refused.value).startswith("the assignment breaks the draw's rules")


def test_a_team_within_the_rules_stands_and_the_load_cap_yields_to_a_recorded_reason(task):
    ctx, task_id = task
    assert assignment_refusal(ctx, task_id, RECUSED_BY_I012, UNIT, ["JDZ-I013", "JDZ-I018"], "") is None
    over = assignment_refusal(ctx, task_id, RECUSED_BY_I012, UNIT, ["JDZ-I014", "JDZ-I013"], "")
    assert [b.rule for b in over.breaches] == ["load-cap"]
    assert assignment_refusal(ctx, task_id, RECUSED_BY_I012, UNIT, ["JDZ-I014", "JDZ-I013"], "flood season") is None
    # The target's own current team does not count against its load: reassigning it is not over the cap.
    assert assignment_refusal(ctx, task_id, OTHER, UNIT, ["JDZ-I014", "JDZ-I016"], "") is None


def test_every_broken_rule_is_named_at_once(task):
    ctx, task_id = task
    refusal = assignment_refusal(ctx, task_id, RECUSED_BY_I012, UNIT, ["JDZ-I015", "JDZ-I020"], "")
    assert {b.rule for b in refusal.breaches} == {"active", "role"}
    alone = assignment_refusal(ctx, task_id, RECUSED_BY_I012, UNIT, ["JDZ-I019"], "")
    assert [b.rule for b in alone.breaches] == ["certificate", "team-size"]
