"""R18 end to end on the real dev server: a joint task of the 昌江区 bureau (lead) with the city fire
brigade (partner, 360200-XF) — the lead draws the targets once, each unit dispatches its own inspectors
from its own pool.

Checked as an auditor would, through the command line: the dispatch record names each unit's pool
digest and the independent verifier recomputes every team from each unit's pool file; every target
has a team from each unit, each of that unit's inspectors; one result is entered by the lead's team
and one by the partner's, both are published; the year's joint rate counts the task.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from audit.verify import verify_dispatch
from db import schema
from domain.messages.plan import PlanRun
from domain.messages.target import CheckRecord, ResultEntry, Review
from domain.workdays import SHANGHAI
from service.imports import import_examples
from service.targets import send, status as target_status
from store.plans import load_plan
from tests.conftest import own_schema
from tests.integration.devserver import Cli, workers
from tests.workflows.support import ALL_PASS, UNIT, people, plan_file, rows_of, wait_for, waiting_targets
from workflows.common import TASK_QUEUE, plan_workflow_id, target_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres

PARTNER = "360200-XF"  # 景德镇市消防救援支队: its own inspector pool (examples/inspectors.csv)


def joint_plan(today, code: str) -> bytes:
    plan = json.loads(plan_file(today, code, industry="C15", window_days=30))
    plan["tasks"][0]["partner_units"] = [PARTNER]
    return json.dumps(plan, ensure_ascii=False).encode()


async def test_a_joint_task_runs_with_each_units_pool_teams_and_results(env, postgres_url, tmp_path):
    client = env.client
    code = f"JNT-{uuid.uuid4().hex[:6]}"
    with own_schema(postgres_url) as db:
        engine = db.engine
        import_examples(engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        cli = Cli(env, db.url, tmp_path)
        plan, _ = load_plan(engine, joint_plan(datetime.now(SHANGHAI).date(), code), "plan.json")
        task = plan.tasks[0]
        assert task.all_units == (UNIT, PARTNER)
        inspectors = {unit: set(people(engine, "inspector", unit)) for unit in task.all_units}
        async with workers(env, engine, tmp_path, workday_seconds=5):
            await client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code), id=plan_workflow_id(code),
                                        task_queue=TASK_QUEUE)
            usccs = await wait_for(lambda: waiting_targets(client, engine, task.task_id), timeout=120,
                                   what="dispatched targets")
            assert len(usccs) >= 2, usccs

            # Each unit's pool, frozen with its digest, and the teams recomputed from it by the verifier.
            exported = await cli.json("dispatch", "export", task.task_id, "--record", str(tmp_path / "d.json"))
            record = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
            assert exported["units"] == 2 and set(record["units"]) == {UNIT, PARTNER}
            with engine.connect() as c:
                pools = {r.unit_code: r.pool_file.encode("ascii") for r in c.execute(
                    select(schema.dispatch_pools).where(schema.dispatch_pools.c.task_id == task.task_id))}
            assert {unit: hashlib.sha256(pool).hexdigest() for unit, pool in pools.items()} == \
                {unit: params["pool_digest"] for unit, params in record["units"].items()}
            report = verify_dispatch(record, pools, record["seed"], record["required_qualifications"], usccs)
            assert report.ok, str(report)
            assert (await cli.json("draw", "verify", task.task_id))["ok"] is True

            # A team from each unit on every target, each of its own unit's inspectors.
            teams = {u: (await target_status(client, task.task_id, u)).teams for u in usccs}
            for uscc, unit_teams in teams.items():
                assert sorted(t.unit for t in unit_teams) == sorted(task.all_units), uscc
                for team in unit_teams:
                    assert len(team.inspectors) >= task.team_size and set(team.inspectors) <= inspectors[team.unit]

            # A result from each unit: the lead's team enters one, the partner's the other; both are published.
            reviewer = people(engine, "reviewer")[0]
            entered = {}
            for uscc, unit in zip(usccs[:2], task.all_units):
                team = next(t.inspectors for t in teams[uscc] if t.unit == unit)
                check = CheckRecord(inspectors=team, method="onsite", certificates_shown=True)
                await send(client, task.task_id, uscc, "check", check)
                await send(client, task.task_id, uscc, "result",
                           ResultEntry(inspector=team[0], category="no_issue", findings=ALL_PASS))
                await send(client, task.task_id, uscc, "review", Review(reviewer=reviewer, approve=True))
                entered[uscc] = team[0]

            def published():
                rows = [p for u in entered for p in rows_of(engine, schema.publications,
                                                            target_workflow_id(task.task_id, u))
                        if p["kind"] == "result"]
                return rows if len(rows) == len(entered) else None
            publications = await wait_for(published, timeout=60, what="both results published")
            assert {p["uscc"] for p in publications} == set(entered)
            assert {p["unit"] for p in publications} == {UNIT}  # published by the lead, whoever entered it

            # The joint rate counts the task (the only one of its year in this schema).
            metrics = await cli.json("metrics", "--year", str(plan.year), "--by-unit")
            assert metrics["joint_rate"] == {"value": 1.0, "numerator": 1, "denominator": 1}
            assert metrics["by_unit"][UNIT]["joint_rate"] == {"value": 1.0, "numerator": 1, "denominator": 1}
