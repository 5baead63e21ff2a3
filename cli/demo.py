"""`spotcheck demo` (`make demo`): one year, end to end, on the embedded defaults.

Starts the embedded Temporal server and a worker unless ours are running, imports the sample
directories, makes the directory's people users, starts the plan (dated today, fixed plan code) and
plays the inspectors and the reviewers through the HTTP API (`spotcheck api`, started for the run):
each logs in with their password and sends their own steps, so the histories name who authenticated.
The operator's steps (plan, draws, archive) stay on the command path. Working days last a few seconds here
(SPOTCHECK_DEMO_WORKDAY_SECONDS, read only by the deadline computation), so reminders, an
escalation and a late publication happen while you watch. A second run finds the finished plan
and prints its summary again.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.archive import archive_pass
from cli.demo_api import DemoStopped, People, api_server
from db.engine import make_engine, migrate
from domain.access import Actor
from domain.categories import ORDER_KINDS, category
from domain.messages.archiver import ArchiveBatch, ArchiveSummary
from domain.messages.plan import PlanRun
from domain.messages.target import TargetStatus
from domain.stages import Stage
from domain.workdays import SHANGHAI
from read.archive import human_steps, verify_chain
from read.metrics import unit_line, year_summary
from runtime import config
from runtime.client import connect
from runtime.codec import codec_for
from runtime.context import Context
from runtime.examples import shifted_plan
from runtime.server import server_running, start_server_background
from service import identity
from service.errors import Refused
from service.imports import import_examples
from service.targets import assignment_refusal
from service.targets import status as target_status
from store import directory
from store import targets as targets_store
from store.plans import load_plan
from workflows.common import TASK_QUEUE, plan_workflow_id
from workflows.plan import AnnualPlanWorkflow

PLAN_CODE = "JDZ-DEMO"
PEOPLE_PASSWORD = "spotcheck-demo-people"  # every demo person's, to try `spotcheck login` and the API with
DEMO_ADMIN = Actor(id="demo", roles=frozenset({"admin"}), unit=None, method="cli-local")
WORKDAY_SECONDS = "4"  # a demo working day; a 30-day task window then lasts about 90 s
WINDOW_DAYS = 30
# Category mix the demo inspectors find (weights), mostly clean as in real years.
FINDINGS = [("no_issue", 10), ("passed", 4), ("no_activity", 2), ("ordered_to_correct", 3),
            ("unpublished_info", 2), ("unreachable", 1), ("pending_investigation", 1), ("failed", 1),
            ("obstructed", 1), ("other", 1)]


@dataclass(frozen=True)
class Role:
    """How the demo plays one target; chosen from a hash of its id, so a rerun plays it the same."""

    category: str
    wait_for: str | None = None  # act only after this alert: field-work-reminder | field-work-escalation
    slow_review: bool = False  # approve only after the publication escalation: a late publication
    returned_once: bool = False
    recheck_passes: bool = True
    substituted: bool = False  # the unit's supervisor assigns another team before the check (the lead is away)


SPECIAL_ROLES = 5  # the first targets of the plan's first task play these (role_for), every other target by hash
SUBSTITUTION_REASON = "原检查组组长休假，由科室负责人改派"


def role_for(task_id: str, uscc: str, special: int | None) -> Role:
    """`special`: the target's place among the first SPECIAL_ROLES of the plan's first task, else None; so each
    special role is played once a year, whatever order the targets open in."""
    h = int.from_bytes(hashlib.sha256(f"{task_id}/{uscc}".encode()).digest()[:8], "big")
    weights = [c for c, w in FINDINGS for _ in range(w)]
    chosen = weights[h % len(weights)]
    roles = [Role(chosen, wait_for="field-work-reminder"), Role(chosen, wait_for="field-work-escalation"),
             Role("no_issue", slow_review=True), Role(chosen, returned_once=True), Role(chosen, substituted=True)]
    if special is not None:
        return roles[special]
    return Role(chosen, recheck_passes=h % 5 != 0)


class Demo:
    def __init__(self, ctx: Context, client: Client, out, people: People) -> None:
        self.ctx, self.client, self.engine, self.out, self.people = ctx, client, ctx.engine(), out, people
        self.refusals = 0
        self.done: set[tuple[str, str, str]] = set()  # the steps this run has sent

    async def play(self, task_id: str, uscc: str, role: Role) -> None:
        """One target's people: the team checks and enters, the reviewer reviews, the team re-checks orders."""
        while True:
            try:
                status = await target_status(self.client, task_id, uscc)
                if status.stage == Stage.CLOSED:
                    return
                if not await self.step(task_id, uscc, role, status):
                    await asyncio.sleep(0.5)
            except Refused as refused:  # a race with the workflow's own progress: look again
                self.refusals += 1
                self.out(f"  (refused, retrying: {refused})")
                await asyncio.sleep(0.5)
            except RPCError as error:  # a query timing out while the machine is busy: look again
                self.out(f"  (Temporal: {error.message}; retrying {uscc} in {task_id})")
                await asyncio.sleep(2)

    async def step(self, task_id: str, uscc: str, role: Role, status: TargetStatus) -> bool:
        """One person's next step on the target, sent as that person through the API; False: nothing to do yet.
        The team lead accepts, arrives and records the check, the teammate enters the result, the unit's
        reviewer reviews, the lead re-checks an order."""
        team = sorted({i for t in status.teams for i in t.inspectors})
        if not team:  # its projection row is written, its workflow not yet past that step: still opening
            return False
        lead, mate = team[0], team[-1]
        if status.stage == Stage.DISPATCHED and role.substituted and status.commands == 0:
            await self.substitute(task_id, uscc, status, set(team))
        elif status.stage == Stage.DISPATCHED:
            await self.act(lead, task_id, uscc, "accept", status, once=True)
            if role.wait_for and not self.alerted(task_id, uscc, role.wait_for):
                return False
            method = status.methods[0]
            if method == "onsite":
                await self.act(lead, task_id, uscc, "arrive", status, once=True)
            await self.act(lead, task_id, uscc, "check", status,
                           {"members": team, "method": method, "certificates_shown": method == "onsite"})
        elif status.stage == Stage.CHECKED:
            note = "经营场所已变更用途" if category(role.category).needs_note else ""
            await self.act(mate, task_id, uscc, "result", status, {
                "category": role.category, "note": note,
                "findings": {p: "fail" if category(role.category).problem and n == 0 else "pass"
                             for n, p in enumerate(status.checklist)}})
        elif status.stage == Stage.ENTERED:
            if role.slow_review and not self.alerted(task_id, uscc, "publication-escalation"):
                return False
            back = role.returned_once and status.returns == 0
            await self.act(status.reviewers[0], task_id, uscc, "review", status,
                           {"return": "请补充现场照片"} if back else {"approve": True})
        elif status.stage == Stage.FOLLOW_UP and status.result and status.follow_up:
            kind = category(status.result.category).follow_up
            if kind in ORDER_KINDS and status.follow_up.endswith("/follow-up"):
                await self.act(lead, task_id, uscc, "recheck", status, {"passed": role.recheck_passes})
            return False
        else:
            return False
        return True

    async def act(self, person: str, task_id: str, uscc: str, step: str, status: TargetStatus,
                  body: dict | None = None, once: bool = False) -> None:
        """The Idempotency-Key names the target, the step and (unless the step happens `once`) how far the target
        has come, so a step resent after a lost answer, or by a resumed demo, takes effect once."""
        where = "" if once else f"/{status.returns}/{status.commands}"
        if (task_id, uscc, step + where) in self.done:
            return
        await self.people.act(person, task_id, uscc, step, f"demo/{task_id}/{uscc}/{step}{where}", body)
        self.done.add((task_id, uscc, step + where))

    async def substitute(self, task_id: str, uscc: str, status: TargetStatus, team: set[str]) -> None:
        """The unit's supervisor assigns two other inspectors of the unit than `team`, the first pair the draw's
        rules allow (service.targets.assignment_refusal: the same check the API makes before it sends it)."""
        unit = status.teams[0].unit
        now = datetime.now(timezone.utc)
        with self.engine.connect() as connection:
            supervisor = directory.people_with_role(connection, unit, "supervisor", now)[0]
            pool = [i for i in directory.people_with_role(connection, unit, "inspector", now) if i not in team]
        pair = next((p for p in map(list, itertools.combinations(pool, 2))
                     if assignment_refusal(self.ctx, task_id, uscc, unit, p, "") is None), None)
        if pair is None:
            raise DemoStopped(f"no two inspectors of {unit} may take over {uscc} in {task_id}")
        await self.act(supervisor, task_id, uscc, "assign", status,
                       {"unit": unit, "inspectors": pair, "reason": SUBSTITUTION_REASON}, once=True)
        self.out(f"  {supervisor} assigned {', '.join(pair)} to {uscc} in {task_id} ({SUBSTITUTION_REASON})")

    def alerted(self, task_id: str, uscc: str, step: str) -> bool:
        with self.engine.connect() as connection:
            return targets_store.alerted(connection, task_id, uscc, step)

    def progress(self) -> str:
        with self.engine.connect() as connection:
            stages, alerts = targets_store.stage_and_alert_counts(connection)
        order = ["drawn", "unstaffed", "dispatched", "checked", "entered", "approved", "published", "follow_up",
                 "closed"]
        return (" ".join(f"{s}={stages[s]}" for s in order if stages.get(s)) +
                f" | reminders={alerts.get('reminder', 0)} escalations={alerts.get('escalation', 0)}")


class WorkerDied(DemoStopped):
    pass


def worker_alive(settings: config.Settings) -> bool:
    try:
        os.kill(int((settings.data_dir / "worker.pid").read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def ensure_worker(settings: config.Settings, out) -> None:
    """A worker of ours for this data dir, with the demo's working-day scale; reused when alive."""
    pid_file = settings.data_dir / "worker.pid"
    if worker_alive(settings):
        return
    pid_file.unlink(missing_ok=True)
    log = (settings.data_dir / "worker.log").open("ab")
    env = {**os.environ, "SPOTCHECK_DATA_DIR": str(settings.data_dir),
           "SPOTCHECK_DEMO_WORKDAY_SECONDS": os.environ.get("SPOTCHECK_DEMO_WORKDAY_SECONDS", WORKDAY_SECONDS)}
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent.parent / "worker.py")],
                               stdout=log, stderr=log, env=env, start_new_session=True)
    pid_file.write_text(str(process.pid))
    out(f"worker started (pid {process.pid}, log {settings.data_dir / 'worker.log'})")


async def plan_state(client: Client) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(plan_workflow_id(PLAN_CODE)).describe()).status
    except RPCError:
        return None


def create_people(engine) -> int:
    """The directory's people as local accounts (their roles and units stay the directory's), so the people the
    demo plays exist as users; how many are new."""
    with engine.connect() as connection:
        ids = directory.everyone(connection, datetime.now(timezone.utc))
    added = 0
    for person in ids:
        try:
            identity.add_user(engine, DEMO_ADMIN, person, PEOPLE_PASSWORD)
            added += 1
        except identity.UserExists:
            pass
    return added


async def run_demo(settings: config.Settings, json_output: bool = False) -> int:
    out = (lambda line: print(line, file=sys.stderr)) if json_output or not sys.stdout.isatty() else print
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not server_running(settings.data_dir):
        out("starting the embedded Temporal server…")
        start_server_background(settings.data_dir)
    settings = config.load(settings.data_dir)
    engine = make_engine(settings.database_url)
    migrate(engine)
    client = await connect(settings)
    state = await plan_state(client)
    if state is None or state == WorkflowExecutionStatus.RUNNING:
        ensure_worker(settings, out)
    if state is None:
        for summary in import_examples(engine, now=datetime.now(timezone.utc)):
            out(f"imported {summary.kind}: {summary.rows_read} rows ({summary.added} new, {summary.changed} changed)")
        out(f"{create_people(engine)} people of the directory added as users (password {PEOPLE_PASSWORD})")
        raw = shifted_plan(datetime.now(SHANGHAI).date(), WINDOW_DAYS)
        plan, _ = load_plan(engine, raw, "examples/plan-template.json (dated today)")
        await client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=PLAN_CODE),
                                    id=plan_workflow_id(PLAN_CODE), task_queue=TASK_QUEUE)
        out(f"plan {PLAN_CODE} started: {len(plan.tasks)} tasks; playing inspectors and reviewers…")
    elif state == WorkflowExecutionStatus.RUNNING:
        out(f"plan {PLAN_CODE} is running: resuming the inspectors and reviewers…")
    else:
        out(f"plan {PLAN_CODE} already ran ({state.name.lower()}): its summary again")
    if state in (None, WorkflowExecutionStatus.RUNNING):
        async with api_server(settings.data_dir, out) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
            await drive(Context(settings, engine=engine, client=client), client, out, lambda: worker_alive(settings),
                        People(http, PEOPLE_PASSWORD, out))
        # The hourly archive schedule would get there too; the demo archives at once so the summary is whole.
        archived = ArchiveSummary()
        while True:
            archived = archived.plus(await archive_pass(client, engine, ArchiveBatch(limit=1000)))
            if not archived.more:
                break
        out(f"archived {archived.archived} closed histories in the hash chain (head {archived.head_hash})")
    with engine.connect() as connection:
        summary = year_summary(connection, PLAN_CODE)
    summary["web_ui"] = settings.ui_address
    summary["archive"] = verify_chain(engine).as_json()
    summary["human_steps"] = human_steps(engine, codec_for(settings)).as_json()
    if json_output:
        print(json.dumps(summary, ensure_ascii=False, default=str, indent=1))
    else:
        print(render(summary))
    return 0


async def drive(ctx: Context, client: Client, out, worker_ok, people: People) -> None:
    demo = Demo(ctx, client, out, people)
    engine = demo.engine
    handle = client.get_workflow_handle_for(AnnualPlanWorkflow.run, plan_workflow_id(PLAN_CODE))
    players: dict[tuple[str, str], asyncio.Task] = {}
    plan_done = asyncio.ensure_future(handle.result())
    last = 0.0
    while not plan_done.done():
        with engine.connect() as connection:
            opened = targets_store.opened_targets(connection)
            special = {key: n for n, key in enumerate(targets_store.first_targets(connection, PLAN_CODE, SPECIAL_ROLES))}
        for key in opened:
            if key not in players:
                players[key] = asyncio.ensure_future(demo.play(*key, role_for(*key, special.get(key))))
        if failed := next((p for p in players.values() if p.done() and p.exception()), None):
            raise failed.exception()  # a target nobody plays any more would keep the year open for ever
        if time.monotonic() - last > 3:
            out(f"  {demo.progress()}")
            last = time.monotonic()
            if not worker_ok():
                raise WorkerDied("the worker stopped (see .data/worker.log); start it again with `make demo`: "
                                 "the year resumes where it was")
        await asyncio.wait([plan_done], timeout=1)
    await plan_done
    out(f"  {demo.progress()}")


def human_steps_line(steps: dict) -> str:
    """Who acted, as the archived histories record it: the demo's people log in with their passwords."""
    api = steps.get("password", {"steps": 0, "people": 0})
    others = [f"{v['steps']} by {v['people']} ({method})" for method, v in steps.items() if method != "password"]
    return (f"human steps through the API: {api['steps']} by {api['people']} people, each recorded as the person "
            "who logged in (method password)" + (f"; by other doors: {', '.join(others)}" if others else ""))


def render(s: dict) -> str:
    m = s["metrics"]
    lines = [
        f"══ spotcheck demo: plan {s['plan_code']} ({s['year']}) ══",
        f"tasks: {len(s['tasks'])}  " + ", ".join(f"{k}={v}" for k, v in s.get("task_counts", {}).items()),
        "targets per stratum: " + ", ".join(f"{k}={v}" for k, v in sorted(s["targets_by_stratum"].items())),
        "results per category: " + ", ".join(f"{k}={v}" for k, v in sorted(s["results_by_category"].items())),
        f"publications: on time={s['publications']['on_time']}, late={s['publications']['late']}",
        "follow-ups: " + ", ".join(f"{k} open={v['open']} closed={v['closed']}"
                                   for k, v in sorted(s["follow_ups"].items())),
        "alerts: " + ", ".join(f"{k}={v}" for k, v in sorted(s["alerts"].items())),
        "metrics:",
        *(f"  {name:<26} {v['value'] if v['value'] is None else round(v['value'], 4)}"
          f"  ({v['numerator']}/{v['denominator']})"
          for name, v in m.items() if isinstance(v, dict)),
        "metrics per unit (a task counts for its lead unit):",
        *(f"  {unit:<14} {unit_line(figures)}" for unit, figures in s["metrics_by_unit"].items()),
        human_steps_line(s["human_steps"]),
        f"history archive: {s['archive']['entries']} entries, hash chain "
        + ("verified" if s["archive"]["ok"] else f"BROKEN: {s['archive']['broken']}"),
        f"Web UI: {s['web_ui']}/namespaces/default/workflows  (query: WorkflowId STARTS_WITH 'task/')"
        if s.get("web_ui") else "Web UI: not running",
        "stop the embedded server and worker with `make stop`",
    ]
    return "\n".join(lines)
