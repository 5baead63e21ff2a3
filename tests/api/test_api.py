"""The HTTP API on the dev server and PostgreSQL: every endpoint × every role against api.md's table
(forbidden calls change no row and add no history event), the chain end to end through the API with the
authenticated actors in the history, and Idempotency-Key replays."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from sqlalchemy import func, select

from api.app import create_app
from api.auth import Auth
from db import schema
from domain.access import Actor
from domain.messages.plan import PlanRun
from domain.workdays import SHANGHAI
from read.timeline import execution_chain
from runtime import config
from runtime.context import Context
from service import identity
from service.identity import LocalTokens
from service.imports import import_examples
from service.targets import status
from store import idempotency
from store.plans import load_plan
from store.register import corrections, result_publication
from tests.conftest import own_schema
from tests.integration.devserver import dev_server, workers
from tests.workflows.support import history_events, plan_file, wait_for, waiting_targets
from tests.workflows.test_timeline import CHECKPOINTS
from workflows.common import TASK_QUEUE, plan_workflow_id, target_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres
UNIT = "360202-SCJ"
TOKENS = LocalTokens(secret=b"t" * 32)
ADMIN = Actor(id="root", roles=frozenset({"admin"}), unit=None, method="cli-local")
PASSWORD = "correct horse battery staple"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture(scope="module", autouse=True)
def cheap_argon2id():
    """argon2id at its lowest cost: the production parameters take seconds a hash on a busy test machine."""
    saved = identity._hasher
    identity._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    identity._dummy_hash.cache_clear()
    yield
    identity._hasher = saved
    identity._dummy_hash.cache_clear()


class World:
    """One task dispatched on the dev server, the API in process, and a token for each persona."""

    def __init__(self, env, engine, app, task_id, usccs, tokens):
        self.env, self.engine, self.app, self.task_id, self.usccs, self.tokens = env, engine, app, task_id, usccs, tokens

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://api")

    def headers(self, persona: str | None) -> dict:
        return {"Authorization": f"Bearer {self.tokens[persona]}"} if persona else {}

    async def team(self, uscc: str) -> list[str]:
        async with self.http() as http:
            answer = await http.get(f"/api/v1/tasks/{self.task_id}/targets/{uscc}", headers=self.headers("supervisor"))
        return answer.json()["teams"][0]["inspectors"]

    async def settled(self, uscc: str) -> None:
        """Until the target's workflow is idle: a signal's workflow task adds events after the 202."""
        handle = self.env.client.get_workflow_handle(target_workflow_id(self.task_id, uscc))
        seen = [-1]

        async def idle():
            raw = (await handle.describe()).raw_description
            length = len(await history_events(self.env.client, handle.id))
            stable, seen[0] = length == seen[0], length
            return stable and not raw.pending_activities and not raw.HasField("pending_workflow_task")
        await wait_for(idle, timeout=30, what="an idle target")

    async def snapshot(self, uscc: str):
        """History, the target's row, its teams and the idempotency keys: what a forbidden call must not touch."""
        events = await history_events(self.env.client, target_workflow_id(self.task_id, uscc))
        with self.engine.connect() as c:
            row = dict(c.execute(select(schema.targets).where(schema.targets.c.task_id == self.task_id,
                                                              schema.targets.c.uscc == uscc)).mappings().one())
            teams = c.execute(select(func.count()).select_from(schema.teams)).scalar()
            keys = c.execute(select(func.count()).select_from(schema.api_idempotency)).scalar()
        return len(events), row, teams, keys


def api_plan(engine, code: str) -> str:
    """The directory, and a plan of one task over two industries with a 60-day window: its task's id."""
    import_examples(engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    plan, _ = load_plan(engine, plan_file(datetime.now(SHANGHAI).date(), code, industry=["C15", "E50"],
                                          window_days=60), "plan.json")
    return plan.tasks[0].task_id


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(postgres_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    code = f"API-{uuid.uuid4().hex[:6]}"
    async with dev_server() as env:
        with own_schema(postgres_url) as db:
            task_id = api_plan(db.engine, code)
            ctx = Context(config.load(tmp), engine=db.engine, client=env.client)
            app = create_app(lambda: ctx, auth_settings=Auth(tokens=TOKENS), evidence_dir=tmp / "evidence")
            async with workers(env, db.engine, tmp, workday_seconds=1):
                await env.client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code),
                                                id=plan_workflow_id(code), task_queue=TASK_QUEUE)
                usccs = await wait_for(lambda: waiting_targets(env.client, db.engine, task_id), timeout=120,
                                       what="dispatched targets")
                assert len(usccs) >= 3, usccs
                world = World(env, db.engine, app, task_id, usccs, {})
                for account, roles, unit in (("ops.plan", ["planner"], UNIT), ("ops.audit", ["auditor"], None),
                                             ("ops.admin", ["admin"], None), ("ops.gone", ["auditor"], None)):
                    identity.add_user(db.engine, ADMIN, account, PASSWORD, roles=roles, unit=unit)
                team = await _team(ctx, task_id, usccs[0])
                outsider = next(i for i in (f"JDZ-I0{n:02d}" for n in range(12, 20)) if i not in team)
                people = {"lead": team[0], "teammate": team[1], "outsider": outsider, "reviewer": "JDZ-I020",
                          "supervisor": "JDZ-I022", "parent-supervisor": "JDZ-I011",
                          "other-supervisor": "JDZ-I033", "planner": "ops.plan", "auditor": "ops.audit",
                          "admin": "ops.admin", "stranger": "nobody", "disabled": "ops.gone"}
                world.tokens = {p: identity.issue_access_token(u, TOKENS)[0] for p, u in people.items()}
                world.tokens["expired"] = identity.issue_access_token(
                    "ops.audit", TOKENS, now=datetime.now(timezone.utc) - timedelta(hours=1))[0]
                identity.disable_user(db.engine, ADMIN, "ops.gone")
                world.people = people
                world.database_url = db.url
                yield world


async def _team(ctx, task_id, uscc) -> list[str]:
    return (await status(await ctx.client(), task_id, uscc)).teams[0].inspectors


# --- the matrix -------------------------------------------------------------------------------------------
PERSONAS = ["lead", "teammate", "outsider", "reviewer", "supervisor", "parent-supervisor", "other-supervisor",
            "planner", "auditor", "admin", "stranger", "disabled", "expired"]
UNAUTHENTICATED = {"stranger": 401, "disabled": 401, "expired": 401}
OK = "ok"  # passed the door: answered, or refused by the workflow's own rules (409)
ON_TEAM = {"lead": OK, "teammate": OK, "outsider": 404, "reviewer": 403, "supervisor": 403,
           "parent-supervisor": 403, "other-supervisor": 403, "planner": 403, "auditor": 403, "admin": 403}
SEES = {"lead": OK, "teammate": OK, "outsider": 404, "reviewer": OK, "supervisor": OK, "parent-supervisor": OK,
        "other-supervisor": 404, "planner": 403, "auditor": 403, "admin": 403}
# A supervisor of the target's unit only: a parent unit's is refused (the register's decisions are the unit's own).
SUPERVISOR_OF_UNIT = {**{p: 403 for p in ON_TEAM}, "supervisor": OK, "other-supervisor": 404}
UNPUBLISHED = "unpublished"  # past the door, and 404 from the service: the target has no published result yet
# (method, path under the target or absolute, body, files, {persona: expected})
ENDPOINTS = [
    ("GET", "", None, None, SEES),
    ("POST", "/accept", None, None, ON_TEAM),
    ("POST", "/arrive", None, None, ON_TEAM),
    ("POST", "/check", {"members": ["{lead}"], "method": "document"}, None, ON_TEAM),  # one member: refused
    ("POST", "/evidence", None, {"file": ("photo.png", PNG, "image/png")}, {**ON_TEAM}),
    ("POST", "/result", {"category": "no_issue", "findings": {}}, None, ON_TEAM),  # before the check: refused
    ("POST", "/review", {"approve": True}, None,
     {**{p: 403 for p in ON_TEAM}, "reviewer": OK, "outsider": 403}),  # nothing entered yet: refused
    ("POST", "/recheck", {"passed": True}, None, ON_TEAM),  # no order to re-check: refused
    ("POST", "/assign", {"unit": UNIT, "inspectors": ["{lead}"], "reason": "sick"}, None,
     {**{p: 403 for p in ON_TEAM}, "supervisor": OK, "parent-supervisor": OK, "other-supervisor": 404}),
    ("POST", "/withholding", {"grounds": "privacy", "fields": ["entity_name"], "reason": "病历"}, None, SEES),
    ("POST", "/withholding/decision", {"approve": True}, None, SUPERVISOR_OF_UNIT),
    ("POST", "/correction", {"category": "other", "reason": "录入有误"}, None,
     {**SUPERVISOR_OF_UNIT, "supervisor": UNPUBLISHED}),
    ("POST", "/stop-publication", {"applicant": "张三", "grounds": "已整改"}, None,
     {**SEES, **{p: UNPUBLISHED for p in ("lead", "teammate", "reviewer", "supervisor")}, "parent-supervisor": 403}),
    ("POST", "/stop-publication/decision", {"approve": True}, None, {**SUPERVISOR_OF_UNIT, "supervisor": UNPUBLISHED}),
    ("GET", "/api/v1/me", None, None, {p: OK for p in ON_TEAM}),
    ("GET", "/api/v1/me/targets", None, None, {p: OK for p in ON_TEAM}),
    ("GET", "/api/v1/me/alerts", None, None, {p: OK for p in ON_TEAM}),
    ("GET", "/api/v1/entities/{uscc}/inspections", None, None,
     {**SEES, "planner": 404, "auditor": 404, "admin": 404}),
]


def _fill(value, world, uscc):
    text = json.dumps(value).replace("{lead}", world.people["lead"]).replace("{uscc}", uscc)
    return json.loads(text)


async def test_every_endpoint_for_every_role(world):
    uscc = world.usccs[0]
    base = f"/api/v1/tasks/{world.task_id}/targets/{uscc}"
    failures = []
    async with world.http() as http:
        for method, path, body, files, table in ENDPOINTS:
            url = path.replace("{uscc}", uscc) if path.startswith("/api") else base + path
            for persona in PERSONAS:
                expected = UNAUTHENTICATED.get(persona) or table[persona]
                before = await world.snapshot(uscc)
                answer = await http.request(method, url, headers=world.headers(persona),
                                            json=_fill(body, world, uscc) if body else None, files=files)
                if expected == OK:
                    if answer.status_code not in (200, 201, 202, 409):
                        failures.append(f"{method} {path} as {persona}: {answer.status_code} {answer.text[:200]}")
                    await world.settled(uscc)
                    continue
                problem = answer.json()
                if expected == UNPUBLISHED:
                    expected = 404 if "no published result" in problem.get("detail", "") else "404 (unpublished)"
                if answer.status_code != expected:
                    failures.append(f"{method} {path} as {persona}: {answer.status_code}, not {expected}")
                assert answer.headers["content-type"] == "application/problem+json"
                assert {"type", "title", "status", "detail"} <= problem.keys() and problem["status"] == expected
                after = await world.snapshot(uscc)
                if after != before:
                    failures.append(f"{method} {path} as {persona}: changed {before} -> {after}")
    assert not failures, "\n".join(failures)


async def test_public_endpoints_need_no_login_and_the_draw_records_are_there(world):
    async with world.http() as http:
        assert (await http.get("/api/v1/public/register")).status_code == 200
        draws = await http.get(f"/api/v1/public/draws/{world.task_id}")
        assert draws.status_code == 200 and draws.json()[0]["draw_seq"] == 1
        assert (await http.get("/api/v1/public/draws/NO-SUCH-TASK")).status_code == 404
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert "/api/v1/tasks/{task_id}/targets/{uscc}/check" in (await http.get("/openapi.json")).json()["paths"]
        metrics = (await http.get("/metrics")).text
        assert "spotcheck_api_requests_total" in metrics and "spotcheck_api_refusals_total" in metrics


# --- the chain, and idempotency ----------------------------------------------------------------------
async def _signals_through(world, uscc: str, kind: str):
    """The target's status once its last logged field signal is `kind` (signals are taken in order)."""
    current = await status(world.env.client, world.task_id, uscc)
    return current if current.field_signals and current.field_signals[-1].split()[1] == kind else None


async def _login(http, user_id: str) -> dict:
    answer = await http.post("/api/v1/auth/token", data={"username": user_id, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def test_the_chain_through_the_api_records_who_authenticated(world):
    uscc = world.usccs[1]
    base = f"/api/v1/tasks/{world.task_id}/targets/{uscc}"
    lead, teammate = await world.team(uscc)
    for person in (lead, teammate, "JDZ-I020", "JDZ-I022"):
        identity.add_user(world.engine, ADMIN, person, PASSWORD)  # inspectors' roles come from the directory
    async with world.http() as http:
        as_lead, as_mate, as_reviewer, as_supervisor = [await _login(http, p)
                                                        for p in (lead, teammate, "JDZ-I020", "JDZ-I022")]
        assert (await http.get("/api/v1/me", headers=as_lead)).json() == {"id": lead, "roles": ["inspector"],
                                                                          "unit": UNIT}
        listed = (await http.get("/api/v1/me/targets", headers=as_lead)).json()
        assert uscc in [t["uscc"] for t in listed]
        # A field signal retried under its key after its door lost the answer (here the stored answer is
        # dropped, so the door runs the request again, as after a process killed mid-request) reaches the
        # target again, and is logged once.
        accept = {"Idempotency-Key": f"accept-{uuid.uuid4()}"}
        assert (await http.post(base + "/accept", headers=as_lead | accept)).status_code == 202
        idempotency.release(world.engine, lead, accept["Idempotency-Key"])
        assert (await http.post(base + "/accept", headers=as_lead | accept)).status_code == 202
        assert (await http.post(base + "/arrive", headers=as_lead)).status_code == 202
        logged = await wait_for(lambda: _signals_through(world, uscc, "arrive"), timeout=60, what="the arrival")
        assert logged.field_signal_count == 2 and [s.split()[1:] for s in logged.field_signals] == [
            ["accept", lead], ["arrive", lead]]
        photo = (await http.post(base + "/evidence", headers=as_lead,
                                 files={"file": ("门头.png", PNG, "image/png")})).json()
        check = await http.post(base + "/check", headers=as_lead, json={
            "members": [lead, teammate], "method": "document", "evidence": [{"sha256": photo["sha256"],
                                                                             "name": photo["name"]}]})
        assert check.status_code == 200, check.text
        result = await http.post(base + "/result", headers=as_mate, json={
            "category": "no_issue", "findings": {p: "pass" for p in CHECKPOINTS}})
        assert result.status_code == 200, result.text
        waiting = (await http.get("/api/v1/me/targets", headers=as_reviewer)).json()
        assert uscc in [t["uscc"] for t in waiting]
        # R23: the reviewer marks the entity's name to withhold; a supervisor of the unit approves withholding it.
        marked = await http.post(base + "/withholding", headers=as_reviewer, json={
            "grounds": "privacy", "fields": ["entity_name"], "reason": "个体工商户，字号即经营者姓名"})
        assert marked.status_code == 200 and marked.json()["message"].startswith("marked"), marked.text
        decided = await http.post(base + "/withholding/decision", headers=as_supervisor, json={"approve": True})
        assert decided.status_code == 200 and decided.json()["message"].startswith("approved"), decided.text
        review = await http.post(base + "/review", headers=as_reviewer, json={"approve": True})
        assert review.status_code == 200, review.text

        # Published: the unit's supervisor corrects it (once, under its key); staff record an application to
        # stop publishing it, refused while the province has set no minimum period (R27).
        await wait_for(lambda: _published(world, uscc), timeout=60, what="the result published")
        key = {"Idempotency-Key": f"correct-{uuid.uuid4()}"}
        correction = {"category": "other", "reason": "录入时类别选择有误"}
        corrected = await http.post(base + "/correction", headers=as_supervisor | key, json=correction)
        assert corrected.status_code == 200 and corrected.json()["correction"] == 1, corrected.text
        again = await http.post(base + "/correction", headers=as_supervisor | key, json=correction)
        assert again.json() == corrected.json() and again.headers["Idempotent-Replayed"] == "true"
        applied = await http.post(base + "/stop-publication", headers=as_reviewer,
                                  json={"applicant": "张三（经营者）", "grounds": "已整改"})
        assert applied.status_code == 409 and "minimum publication period is not set" in applied.json()["detail"]
        no_application = await http.post(base + "/stop-publication/decision", headers=as_supervisor,
                                         json={"approve": True})
        assert no_application.status_code == 404, no_application.text
    with world.engine.connect() as c:
        assert len(corrections(c, world.task_id, uscc)) == 1

    updates = {}
    for event in await _chain(world, uscc):
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            payload = json.loads(request.input.args.payloads[0].data)
            updates[request.input.name] = (payload["actor"], payload["auth_method"])
    assert updates == {"record_check": (lead, "password"), "enter_result": (teammate, "password"),
                       "mark_withholding": ("JDZ-I020", "password"), "decide_withholding": ("JDZ-I022", "password"),
                       "review_result": ("JDZ-I020", "password")}


def _published(world, uscc: str) -> bool:
    with world.engine.connect() as c:
        return result_publication(c, world.task_id, uscc) is not None


async def test_a_retried_post_with_the_same_key_takes_effect_once(world):
    uscc = world.usccs[2]
    base = f"/api/v1/tasks/{world.task_id}/targets/{uscc}"
    lead, teammate = await world.team(uscc)
    as_lead = world.headers("lead") if world.people["lead"] == lead else \
        {"Authorization": f"Bearer {identity.issue_access_token(lead, TOKENS)[0]}"}
    body = {"members": [lead, teammate], "method": "document"}
    key = {"Idempotency-Key": f"check-{uuid.uuid4()}"}
    async with world.http() as http:
        # The first attempt dies mid-request (the process is killed): its task is cancelled, unanswered.
        first = asyncio.ensure_future(http.post(base + "/check", headers=as_lead | key, json=body))
        await asyncio.sleep(0.05)
        first.cancel()
        retried = await http.post(base + "/check", headers=as_lead | key, json=body)
        again = await http.post(base + "/check", headers=as_lead | key, json=body)
        other = await http.post(base + "/check", headers=as_lead | key, json={**body, "method": "on_site"})
    assert retried.status_code == 200, retried.text
    assert again.status_code == 200 and again.json() == retried.json() and again.headers["Idempotent-Replayed"]
    assert other.status_code == 409 and other.json()["rule"] == "idempotency-key-reused"
    # One command (one update id) and one effect: the first attempt may have reached the target, which then
    # continued as new at its check; the retry is accepted there and answered with the first one's answer.
    chain = await _chain(world, uscc)
    commands = {e.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
                for e in chain if e.HasField("workflow_execution_update_accepted_event_attributes")}
    effects = [e for e in chain if e.HasField("activity_task_scheduled_event_attributes")
               and e.activity_task_scheduled_event_attributes.activity_type.name == "record_check"]
    assert len(commands) == 1 and len(effects) == 1, (commands, effects)


async def _chain(world, uscc: str) -> list:
    """Every event of the target's runs (it continues as new once its check is recorded)."""
    return [e for run in await execution_chain(world.env.client, target_workflow_id(world.task_id, uscc)) for e in run]


async def test_an_assignment_against_the_draws_rules_is_409_naming_each_rule_and_changes_nothing(world):
    uscc = world.usccs[0]
    url = f"/api/v1/tasks/{world.task_id}/targets/{uscc}/assign"
    before = await world.snapshot(uscc)
    async with world.http() as http:
        reviewer = await http.post(url, headers=world.headers("supervisor"), json={
            "unit": UNIT, "inspectors": [world.people["lead"], "JDZ-I020"], "reason": "sick"})
        two = await http.post(url, headers=world.headers("supervisor"), json={
            "unit": UNIT, "inspectors": ["JDZ-I015"], "reason": "sick"})
    assert reviewer.status_code == 409 and reviewer.json()["rule"] == "role", reviewer.text
    assert reviewer.json()["errors"] == [{"rule": "role", "message": "JDZ-I020 does not hold the role inspector"}]
    assert two.status_code == 409 and two.json()["rule"] == "draw-rules"
    assert [e["rule"] for e in two.json()["errors"]] == ["active", "team-size"]
    assert await world.snapshot(uscc) == before


async def test_a_human_verb_at_the_command_line_records_the_logged_in_user_and_cli_local(world, tmp_path,
                                                                                          monkeypatch):
    import io

    import cli
    uscc = world.usccs[0]
    lead, teammate = await world.team(uscc)
    try:
        identity.add_user(world.engine, ADMIN, lead, PASSWORD)
    except identity.UserExists:
        pass
    monkeypatch.setenv("DATABASE_URL", world.database_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", world.env.client.service_client.config.target_host)
    monkeypatch.setenv("SPOTCHECK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert await asyncio.to_thread(cli.main, ["login", lead, "--password-stdin"]) == 0
    assert await asyncio.to_thread(cli.main, ["check", "record", world.task_id, uscc, "--inspector", lead,
                                              "--inspector", teammate, "--method", "document"]) == 0
    accepted = [e.workflow_execution_update_accepted_event_attributes.accepted_request.input
                for e in await _chain(world, uscc) if e.HasField("workflow_execution_update_accepted_event_attributes")]
    checks = [json.loads(i.args.payloads[0].data) for i in accepted if i.name == "record_check"]
    assert [(c["actor"], c["auth_method"], c["inspectors"]) for c in checks] == [(lead, "cli-local", [lead, teammate])]
