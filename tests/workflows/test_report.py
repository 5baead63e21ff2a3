"""The operators' report (`spotcheck report`), rendered from a finished year and read back in a browser.

The year is built the way test_chain.py builds one (its own plan code prefix `RPT-`): a plan of two
tasks, the second cancelled by a published adjustment before it starts, the first run through draw,
dispatch, checks, results, reviews, publication and follow-ups on the time-skipping server. The
report is then rendered, opened in headless Chromium (no network: the file must stand alone), its
screenshot checked to be a real PNG, and the four metrics read from the rendered DOM compared with
read.metrics.metrics.

Chromium is the Debian package (`apt-get install chromium`); without it the test skips, unless
SPOTCHECK_REQUIRE_CHROMIUM=1 (CI), then it fails.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError

from db import schema
from domain.messages.plan import Adjustment, PlanRun
from domain.messages.target import CheckRecord, ResultEntry, Review
from domain.workdays import SHANGHAI
from service.targets import send, status as target_status
from runtime.examples import shifted_plan
from store.plans import load_plan
from read.metrics import metrics
from read.report import render_report
from store import views
from tests.browser.conftest import find_chromium
from tests.workflows.support import make_workers, people, wait_for, waiting_targets
from workflows.common import plan_workflow_id, target_workflow_id, task_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
METRIC_NAMES = ("inspected_share", "joint_rate", "on_time_publication_rate", "problem_disposal_rate")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A population of this test's own: within a plan year an entity drawn by one task is excluded from the
# next (frequency cap), so each workflow test draws from its own industry (tests/workflows/support.py).
INDUSTRY = "C30"  # 178 enterprises of 360202 in five strata
WINDOW = (1280, 2000)


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, timeout=180)
    assert done.returncode == 0, f"chromium exit {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}"
    return done


class Attributes(HTMLParser):
    """Every element's attributes, in document order, and whether it lies inside #escalations."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict] = []
        self.text_outside_escalations: list[str] = []
        self._stack: list[bool] = []  # per open element: is it (or an ancestor) #escalations

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        inside = (self._stack[-1] if self._stack else False) or attributes.get("id") == "escalations"
        self.elements.append({"tag": tag, **attributes})
        if tag not in self.VOID:
            self._stack.append(inside)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, **dict(attrs)})

    def handle_endtag(self, tag):
        if tag not in self.VOID and self._stack:
            self._stack.pop()

    def handle_data(self, data):
        if not (self._stack and self._stack[-1]):
            self.text_outside_escalations.append(data)


def two_task_plan(today: date, plan_code: str) -> bytes:
    """Task 1 of the demo template (one industry) starting today; task 3 renamed T2, starting tomorrow (to be
    cancelled)."""
    plan = json.loads(shifted_plan(today, window_days=60))
    plan["plan_code"] = plan_code
    first, third = plan["tasks"][0], plan["tasks"][2]
    first["task_id"], third["task_id"] = f"{plan_code}-T1", f"{plan_code}-T2"
    first["filter"] = {**first["filter"], "industry": [INDUSTRY]}
    third["starts"] = min(today + timedelta(days=1), date(today.year, 12, 31)).isoformat()
    plan["tasks"] = [first, third]
    return json.dumps(plan, ensure_ascii=False).encode()


async def _run_year(env, engine, queue, main, heavy, code, task_id, cancelled_id) -> list[str]:
    """Start the plan, cancel T2 by a published adjustment, run T1 to closed results; the targets."""
    async with main, heavy:
        handle = await env.client.start_workflow(
            AnnualPlanWorkflow.run, PlanRun(plan_code=code), id=plan_workflow_id(code), task_queue=queue,
            execution_timeout=timedelta(days=400))
        cancel = Adjustment(kind="cancel", task_id=cancelled_id, reason="人员调整 staff reassigned",
                            approver="JDZ-LEAD-01")

        async def adjusted():
            try:
                return await handle.execute_update(AnnualPlanWorkflow.adjust, cancel)
            except WorkflowUpdateFailedError as error:  # refused while the plan is being published
                assert "still being published" in str(getattr(error.cause, "message", error.cause))
                return None

        assert "cancelled" in await wait_for(adjusted)

        # Past the announcement and redraw windows (a working day each) to the dispatched targets.
        usccs = await wait_for(lambda: waiting_targets(env.client, engine, task_id), env=env)
        categories = ["no_issue", "pending_investigation", "unreachable", "no_activity"]
        reviewer = people(engine, "reviewer")[0]
        for n, uscc in enumerate(usccs):
            team = (await target_status(env.client, task_id, uscc)).teams[0].inspectors
            assert (await send(env.client, task_id, uscc, "check",
                               CheckRecord(inspectors=team, method="document"))).accepted
            await send(env.client, task_id, uscc, "result", ResultEntry(
                inspector=team[0], category=categories[n % len(categories)],
                findings={p: "pass" for p in ("GS-001-1", "GS-001-2", "GS-001-3")}))
            await send(env.client, task_id, uscc, "review", Review(reviewer=reviewer, approve=True))
        outcome = await handle.result()
        assert (outcome.tasks_closed, outcome.tasks_cancelled) == (1, 1)
    return usccs


async def _terminate(client, engine, code: str, task_id: str) -> None:
    """Terminate what is still running of this test's plan (plan, task, targets); nothing when it finished."""
    with engine.connect() as c:
        usccs = c.execute(select(schema.targets.c.uscc).where(schema.targets.c.task_id == task_id)).scalars().all()
    for workflow_id in [plan_workflow_id(code), task_workflow_id(task_id), *(target_workflow_id(task_id, u) for u in usccs)]:
        handle = client.get_workflow_handle(workflow_id)
        try:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test finished")
        except RPCError:
            pass  # never started


async def test_report_of_a_finished_year_reads_back_in_a_browser(ts_env, directories, tmp_path):
    browser = find_chromium()  # before building the year: a missing browser skips without the work
    engine = directories
    code = f"RPT-{uuid.uuid4().hex[:6]}"
    # The server's clock, not the wall clock: the session's time-skipping server runs ahead once a test skips.
    today = (await ts_env.get_current_time()).astimezone(SHANGHAI).date()
    plan, created = load_plan(engine, two_task_plan(today, code), "plan.json")
    assert created
    task_id, cancelled_id = plan.tasks[0].task_id, plan.tasks[1].task_id
    year = plan.year

    queue, main, heavy = make_workers(ts_env, engine, tmp_path)
    try:
        usccs = await _run_year(ts_env, engine, queue, main, heavy, code, task_id, cancelled_id)
    finally:  # a failure must not leave workflows that hold up the next tests' time skipping
        await _terminate(ts_env.client, engine, code, task_id)

    # Render at a fixed instant (the server's "now"), so the metrics compared are the ones of that instant.
    as_of = await ts_env.get_current_time()
    with engine.connect() as c:
        document = render_report(c, year, as_of=as_of)
        expected = metrics(c, year, as_of).as_json()
        population = {uscc for uscc, _ in views.draw_population(c, task_id, 1)}
        escalated = set(c.execute(select(schema.alerts.c.uscc).where(
            schema.alerts.c.task_id == task_id, schema.alerts.c.kind == "escalation")).scalars())
    assert population and len(usccs) < len(population)
    report = tmp_path / "report.html"
    report.write_text(document, encoding="utf-8")

    # Self-contained: nothing to fetch, nothing to run.
    lowered = document.lower()
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "http://", "https://"):
        if forbidden == "http://":  # the SVG namespace is an identifier, not a fetch
            assert lowered.replace('xmlns="http://www.w3.org/2000/svg"', "").count("http://") == 0
            continue
        assert forbidden not in lowered, f"{forbidden!r} in the report: it must open with no network"

    # The screenshot: a real PNG of the window's size.
    shot = tmp_path / "report.png"
    headless(browser, tmp_path / "profile-shot", f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
             report.as_uri())
    data = shot.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", "not a PNG"
    assert struct.unpack(">II", data[16:24]) == WINDOW
    assert len(data) > 20_000, f"suspiciously small screenshot ({len(data)} bytes): blank page?"
    if os.environ.get("SPOTCHECK_REPORT_ARTIFACTS"):  # keep the files to look at
        artifacts = Path(os.environ["SPOTCHECK_REPORT_ARTIFACTS"])
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(report, artifacts / "report.html")
        shutil.copy(shot, artifacts / "report.png")

    # The rendered DOM: the metrics as the browser sees them equal the query's.
    dom = headless(browser, tmp_path / "profile-dom", "--dump-dom", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                   report.as_uri()).stdout.decode("utf-8")
    parsed = Attributes()
    parsed.feed(dom)
    found: dict[str, dict] = {}
    for element in parsed.elements:
        if "data-metric" in element and "data-field" in element:
            found.setdefault(element["data-metric"], {})[element["data-field"]] = json.loads(element["data-value"])
    assert found == {name: expected[name] for name in METRIC_NAMES}
    by_id = {e["id"]: e for e in parsed.elements if "id" in e}
    for name in METRIC_NAMES:
        for field in ("value", "numerator", "denominator"):
            assert json.loads(by_id[f"metric-{name}-{field}"]["data-value"]) == expected[name][field]
    assert by_id["metrics"]["data-year"] == str(year)

    # The draw recomputes from its stored audit package; the cancelled task was never drawn.
    verdicts = {(e["data-task"], e["data-draw-seq"]): e["data-verify"] for e in parsed.elements if "data-verify" in e}
    assert verdicts[(task_id, "1")] == "PASS"
    assert not any(task == cancelled_id for task, _ in verdicts)
    assert f'id="task-{cancelled_id}"' in dom
    adjustments = [e for e in parsed.elements if e.get("data-adjustment")]
    assert any(e["data-adjustment"] == "cancel" for e in adjustments)
    assert cancelled_id in dom and "人员调整 staff reassigned" in dom
    # The sections are there, with their charts.
    for section in ("metrics", "plans", "adjustments", "draws", "results", "results-chart", "deadlines",
                    "deadline-chart", "escalations", "follow-ups", "follow-up-chart"):
        assert section in by_id, f"#{section} missing"
    results = {e["data-category"]: int(e["data-count"]) for e in parsed.elements if "data-category" in e}
    assert results["pending_investigation"] >= sum(1 for n in range(len(usccs)) if n % 4 == 1)

    # R29: no entity's credit-risk class. Strata only in aggregate; no drawn or frozen entity is listed
    # (escalated ones may be, by USCC alone, in the escalation list).
    assert "risk_class" not in dom
    text = "".join(parsed.text_outside_escalations)
    listed = sorted(u for u in population if u in dom and (u not in escalated or u in text))
    assert not listed, f"entities listed in the report: {listed[:5]}"


def test_cli_writes_the_report_atomically(pg_engine, postgres_url, tmp_path):
    """`spotcheck report --year YYYY --out F`: prints the path, leaves the whole file and no partial one."""
    out = tmp_path / "report.html"
    out.write_text("old", encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": postgres_url, "SPOTCHECK_DATA_DIR": str(tmp_path / "data")}
    year = datetime.now(SHANGHAI).year
    done = subprocess.run([sys.executable, "starter.py", "report", "--year", str(year), "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out.resolve())
    document = out.read_text(encoding="utf-8")
    assert document.startswith("<!DOCTYPE html>") and document.rstrip().endswith("</html>")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "data") == ["report.html"]

    done = subprocess.run([sys.executable, "starter.py", "report", "--year", str(year), "--out",
                           str(tmp_path / "missing" / "r.html")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "missing" in done.stderr
