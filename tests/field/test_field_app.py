"""The field app in a phone's browser (390×844), on the live API, the dev server and PostgreSQL: the chain from
an inspector's check with a photo to the public register; a check and a result made offline reaching the
workflow once each, across a reload and two open tabs; a supervisor staffing a target the draw left unstaffed,
after a rule's refusal in words.
Screenshots of each page go to test-artifacts/screenshots/field/."""
from __future__ import annotations

import contextlib
import json
import re
import struct
import zlib
from collections import Counter
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest
from sqlalchemy import select

from db import schema
from domain import alert_texts
from domain.access import Actor
from read.timeline import execution_chain
from service.targets import enter_result, record_check, status
from tests.field.conftest import LOAD_CAP, ON_LEAVE, PASSWORD, PHONE, REVIEWER, SUPERVISOR, UNIT, stage_of
from tests.workflows.support import target_row, wait_for
from workflows.common import target_workflow_id, task_workflow_id

pytestmark = pytest.mark.postgres


def _png(width: int = 48, height: int = 48, rgb: bytes = b"\x1d\x4f\x91") -> bytes:
    """A real one-colour PNG: a photo the browser can show as a thumbnail."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + rgb * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = _png()
SENT = 60_000  # ms: a step reaches the workflow, a page shows it


async def phone(browser, world):
    context = await browser.new_context(viewport=PHONE, base_url=world.base, locale="zh-CN")
    return context, await context.new_page()


async def log_in(page, user: str):
    await page.goto("/app/")
    await page.fill("#login input[name=username]", user)
    await page.fill("#login input[name=password]", PASSWORD)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#nav a")


async def open_target(page, world, uscc: str):
    await page.goto(f"/app/#/target/{world.task_id}/{uscc}")
    await page.wait_for_selector("#facts")


async def press(page, button: str, said: str):
    """Press a button that puts a step in the outbox, and return once it is there (the page says so): `sent` called
    before then could find the outbox still empty, and a page closed then would take the step with it."""
    await page.click(button)
    await page.wait_for_selector(f'#notice:has-text("{said}")')


async def sent(page):
    """Until the outbox is empty: everything pressed has been answered."""
    await page.wait_for_selector('#outbox[data-pending="0"][data-refused="0"]', state="attached", timeout=SENT)


async def accepted_updates(world, uscc: str) -> list[tuple[str, str]]:
    """(update name, actor) of each update the target's workflow accepted, over every run of its chain."""
    return [(name, actor) for name, actor, _ in await _accepted(world, uscc)]


async def _accepted(world, uscc: str) -> list[tuple[str, str, str]]:
    """(update name, actor, update id) of each accepted update, over every run of the target's chain."""
    found = []
    for run in await execution_chain(world.client, target_workflow_id(world.task_id, uscc)):
        for event in run:
            if event.HasField("workflow_execution_update_accepted_event_attributes"):
                request = event.workflow_execution_update_accepted_event_attributes.accepted_request
                found.append((request.input.name, json.loads(request.input.args.payloads[0].data)["actor"],
                              request.meta.update_id))
    return found


async def scheduled_activities(world, uscc: str) -> Counter:
    """How many times each activity was scheduled, over every run of the target's chain: its effects."""
    return Counter(event.activity_task_scheduled_event_attributes.activity_type.name
                   for run in await execution_chain(world.client, target_workflow_id(world.task_id, uscc))
                   for event in run if event.HasField("activity_task_scheduled_event_attributes"))


async def shot(page, screenshots, name: str, full_page: bool = True):
    await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=full_page)


async def record_check_and_result(page, photo_name: str):
    await page.set_input_files("#gallery", files=[{"name": photo_name, "mimeType": "image/png", "buffer": PNG}])
    await page.wait_for_selector(f'#photos figcaption:text("{photo_name}")')
    await page.check("#check-form input[name=certificates_shown]")
    await page.click("#record-check")
    await page.wait_for_selector("#category option", state="attached")
    await page.select_option("#category", "no_issue")
    await page.fill("#result-form textarea[name=note]", "现场检查未发现问题")
    await page.click("#enter-result")


async def test_an_inspector_checks_with_a_photo_a_reviewer_approves_and_the_register_shows_it(browser, world,
                                                                                             screenshots):
    uscc = world.own[0]
    context, page = await phone(browser, world)
    await page.goto("/app/")
    await page.wait_for_selector("#login")
    await shot(page, screenshots, "01-login")
    await log_in(page, world.inspector)
    await page.wait_for_selector(f'.target[data-uscc="{uscc}"]')
    await shot(page, screenshots, "02-my-targets")

    await page.click(f'.target[data-uscc="{uscc}"] a')
    await page.wait_for_selector("#check-form")
    assert world.inspector in await page.locator("#teams").inner_text()
    await shot(page, screenshots, "03-target")
    await press(page, "#accept", "接收任务：已记录，等待发送")
    await press(page, "#arrive", "到达现场：已记录，等待发送")
    await sent(page)
    await record_check_and_result(page, "门头照片.png")
    await page.wait_for_selector('#stage[data-stage="entered"]', timeout=SENT)
    await sent(page)
    await shot(page, screenshots, "04-result-entered")
    await page.click("#nav a[href='#/alerts']")
    await page.wait_for_selector("h1:text('我的预警')")
    assert any(alert_texts.TEAM_TOLD in text for text in await page.locator(".alert").all_inner_texts())
    await shot(page, screenshots, "05-alerts")
    await context.close()

    context, page = await phone(browser, world)
    await log_in(page, REVIEWER)
    await page.wait_for_selector(f'.target[data-uscc="{uscc}"]')
    await shot(page, screenshots, "06-review-queue")
    await page.click(f'.target[data-uscc="{uscc}"] a')
    await page.wait_for_selector("#review-form")
    assert "现场检查未发现问题" in await page.locator("#result-record").inner_text()
    await shot(page, screenshots, "07-review")
    await press(page, "#approve", "审核通过，等待发送")
    await sent(page)
    await context.close()

    async def published():
        async with httpx.AsyncClient(base_url=world.base) as http:
            rows = (await http.get("/api/v1/public/register", params={"task_id": world.task_id, "uscc": uscc})).json()
        return rows
    # Approval, then the publication activity on a worker shared with the other tests: slow on a loaded machine.
    rows = await wait_for(published, timeout=180, what="the publication in the public register")
    assert rows[0]["uscc"] == uscc and rows[0]["category"] == "no_issue"
    updates = dict(await accepted_updates(world, uscc))
    assert updates["record_check"] == world.inspector and updates["review_result"] == REVIEWER


async def test_a_check_and_a_result_made_offline_reach_the_workflow_once_after_a_reload(browser, world,
                                                                                        screenshots):
    uscc = world.own[1]
    context, page = await phone(browser, world)
    await log_in(page, world.inspector)
    await open_target(page, world, uscc)
    await page.wait_for_function("navigator.serviceWorker.controller !== null")  # the shell is kept

    await context.set_offline(True)
    await page.wait_for_selector('#net[data-online="false"]')
    await record_check_and_result(page, "地下室.png")
    await page.wait_for_selector('#outbox[data-pending="2"]', state="attached")
    await page.fill("#result-form textarea[name=note]", "还没提交的草稿")
    await shot(page, screenshots, "08-offline-outbox")
    keys = await page.locator("#outbox li").evaluate_all("items => items.map(i => i.dataset.key)")

    await page.reload()  # offline: the service worker serves the shell, IndexedDB the outbox
    await page.wait_for_selector('#outbox[data-pending="2"]', state="attached")
    await page.wait_for_selector("[data-stale]")
    assert await page.locator("#outbox li").evaluate_all("items => items.map(i => i.dataset.key)") == keys
    assert await page.input_value("#result-form textarea[name=note]") == "还没提交的草稿"
    second = await context.new_page()  # a second tab sends the same outbox: the keys make it one effect
    await second.goto(f"/app/#/target/{world.task_id}/{uscc}")
    await second.wait_for_selector('#outbox[data-pending="2"]', state="attached")
    assert stage_of(world, uscc) == "dispatched"

    await context.set_offline(False)
    await sent(page)
    await sent(second)
    await page.wait_for_selector('#stage[data-stage="entered"]', timeout=SENT)
    await context.close()
    # One command each (one update id); a tab's copy that reached the target after it continued as new is
    # accepted there and answered with the first one's answer, so each took effect once.
    commands = {(name, update_id) for name, _, update_id in await _accepted(world, uscc)}
    assert Counter(name for name, _ in commands) == Counter({"record_check": 1, "enter_result": 1}), commands
    effects = await scheduled_activities(world, uscc)
    assert effects["record_check"] == 1 and effects["record_result"] == 1, effects


async def test_a_supervisor_staffs_an_unstaffed_target_after_a_refusal_in_words(browser, world, screenshots):
    uscc = world.unstaffed[0]
    full = sorted(i for i, n in Counter(i for team in world.teams.values() for i in team).items() if n >= LOAD_CAP)
    context, page = await phone(browser, world)
    await log_in(page, SUPERVISOR)
    await page.wait_for_selector(f'#unstaffed .target[data-uscc="{uscc}"]')
    await shot(page, screenshots, "09-supervise")
    await page.click(f'#unstaffed .target[data-uscc="{uscc}"] a')
    await page.wait_for_selector('#assign-form')
    assert await page.get_attribute("#stage", "data-stage") == "unstaffed"

    # One of the four the draw filled up to the load cap, with one back from leave: the cap refuses, in words.
    await page.fill("#assign-inspectors", f"{full[0]}, {ON_LEAVE[0]}")
    await page.fill("#assign-reason", "抽取时无可派人员，休假人员返岗后指派")
    await page.click("#assign")
    refusal = page.locator('#outbox li[data-state="refused"] .detail')
    await refusal.wait_for(timeout=SENT)
    words = await refusal.inner_text()
    assert f"{full[0]} already has {LOAD_CAP} targets, the load cap is {LOAD_CAP} [load-cap]" in words, words
    assert "Traceback" not in await page.content()
    await shot(page, screenshots, "10-assign-refused")
    await page.click('#outbox li[data-state="refused"] button.danger')  # resolved: dropped

    await page.fill("#assign-inspectors", ", ".join(ON_LEAVE))
    await page.fill("#assign-reason", "抽取时无可派人员，休假人员返岗后指派")
    await page.click("#assign")
    await sent(page)
    await page.wait_for_selector('#stage[data-stage="dispatched"]', timeout=SENT)
    team = await page.locator("#teams").inner_text()
    assert all(i in team for i in ON_LEAVE), team
    await shot(page, screenshots, "11-assigned")
    await context.close()

    staffed = await status(world.client, world.task_id, uscc)
    assert staffed.stage == "dispatched" and [t.inspectors for t in staffed.teams] == [list(ON_LEAVE)]
    await wait_for(lambda: stage_of(world, uscc) == "dispatched", what="the projection staffed")
    assignments = [update for update in await accepted_updates(world, uscc) if update[0] == "assign_team"]
    assert assignments == [("assign_team", SUPERVISOR)]  # once: the refused one never reached the workflow


# --- the operators' view: the Temporal Web UI that `spotcheck server` serves ----------------------------------
README = Path(__file__).resolve().parents[2] / "README.md"
CURRENT_RUN = "ExecutionStatus != 'ContinuedAsNew'"  # not the closed copies a continue-as-new leaves behind
README_YEAR = 2026  # the plan year README's example names; the plan here is of the current year


def this_year(world, query: str) -> str:
    return query.replace(f"SpotcheckPlanYear = {README_YEAR}", f"SpotcheckPlanYear = {world.plan_year}")


def readme_queries() -> list[str]:
    """The search-attribute queries README.md gives operators, as it writes them."""
    return re.findall(r"^- `(Spotcheck[^`]+)` — ", README.read_text(encoding="utf-8"), re.MULTILINE)


def expected_listings(world) -> dict[str, set[str]]:
    """Each README query, as README.md writes it → the workflow ids it must list, from the projection (this
    server runs the one task)."""
    with world.engine.connect() as c:
        rows = c.execute(select(schema.targets).where(schema.targets.c.task_id == world.task_id)).all()

    def targets(keep) -> set[str]:
        return {r.workflow_id for r in rows if keep(r)}
    return {
        f"SpotcheckOverdue = true AND {CURRENT_RUN}": targets(lambda r: r.overdue),
        f"SpotcheckStage = 'entered' AND SpotcheckUnit = '{UNIT}' AND {CURRENT_RUN}":
            targets(lambda r: r.stage == "entered"),
        "SpotcheckStage = 'unstaffed'": targets(lambda r: r.stage == "unstaffed"),
        f"SpotcheckPlanYear = {README_YEAR} AND WorkflowType = 'InspectionTaskWorkflow'":
            {task_workflow_id(world.task_id)},
        f"SpotcheckRegion = '{UNIT.split('-')[0]}' AND ExecutionStatus = 'Running'":
            targets(lambda r: r.stage not in ("closed", "cancelled")),
    }


async def ui_listing(world, query: str) -> set[str]:
    """The workflow ids the Web UI's own HTTP API lists for a query: the call its Workflows page makes."""
    found, token = set(), ""
    async with httpx.AsyncClient(base_url=world.ui) as http:
        while True:
            answer = await http.get(f"/api/v1/namespaces/{world.client.namespace}/workflows",
                                    params={"query": query, "pageSize": 100, "nextPageToken": token})
            assert answer.status_code == 200, (query, answer.text)
            found |= {e["execution"]["workflowId"] for e in answer.json().get("executions", [])}
            token = answer.json().get("nextPageToken")
            if not token:
                return found


async def run_with_update(world, workflow_id: str, name: str) -> str:
    """The run of a workflow whose history accepted the update `name`."""
    async for execution in world.client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        events = (await world.client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()).events
        if any(e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name == name
               for e in events if e.HasField("workflow_execution_update_accepted_event_attributes")):
            return execution.run_id
    raise AssertionError(f"no run of {workflow_id} accepted {name}")


async def listed_on_page(page) -> set[str]:
    hrefs = await page.locator('[data-testid="workflows-summary-configurable-table-row"] a[href*="/workflows/"]'
                               ).evaluate_all("links => links.map(a => a.getAttribute('href'))")
    return {unquote(href.split("/workflows/")[1].split("/")[0]) for href in hrefs}


async def test_operators_find_a_tasks_targets_and_a_check_in_the_web_ui_and_the_readme_queries_work(
        browser, world, screenshots):
    # A result waiting for review, entered by its team: the check update for the history, a row for 'entered'.
    uscc = next(u for u in world.teams if u not in world.own)
    team = world.teams[uscc]
    member = Actor(id=team[0], roles=frozenset({"inspector"}), unit=UNIT, method="password")
    checklist = (await status(world.client, world.task_id, uscc)).checklist
    await record_check(world.ctx, member, world.task_id, uscc, members=team, method="document",
                       certificates_shown=True, evidence=[])
    await enter_result(world.ctx, member, world.task_id, uscc, category="no_issue",
                       findings={point: "pass" for point in checklist}, note="")
    # The staffing deadlines of the targets the draw left unstaffed pass in seconds (a working day is 1 s).
    await wait_for(lambda: any(target_row(world.engine, world.task_id, u)["overdue"] for u in world.unstaffed),
                   timeout=120, what="an unstaffed target overdue")

    context = await browser.new_context(viewport={"width": 1280, "height": 900}, base_url=world.ui)
    await context.route(lambda url: not url.startswith(world.ui), lambda route: route.abort())  # no news feed
    page = await context.new_page()
    await page.goto(f"/namespaces/{world.client.namespace}/workflows")
    await page.click('[data-testid="toggle-manual-query"]')
    await page.fill('[data-testid="workflow-manual-search-input"]', f"SpotcheckTaskId = '{world.task_id}'")
    await page.press('[data-testid="workflow-manual-search-input"]', "Enter")
    with world.engine.connect() as c:
        task_targets = set(c.scalars(select(schema.targets.c.workflow_id)
                                     .where(schema.targets.c.task_id == world.task_id)))
    everything = task_targets | {task_workflow_id(world.task_id)}  # the task and its targets, not the plan

    async def all_listed() -> bool:
        return await listed_on_page(page) == everything
    await wait_for(all_listed, timeout=SENT / 1000, what="the task and its targets listed in the Web UI")
    await shot(page, screenshots, "ui-01-task-targets")

    target = target_workflow_id(world.task_id, uscc)
    run_id = await run_with_update(world, target, "record_check")
    await page.click(f'[data-testid="workflows-summary-configurable-table-row"] a[href*="/{run_id}/"]')
    await page.click("text=Event History")
    accepted = page.locator('[data-testid="event-summary-row"]', has_text="Update Accepted").filter(
        has_text="record_check")
    await accepted.first.wait_for(timeout=SENT)
    await accepted.first.scroll_into_view_if_needed()  # the Web UI scrolls inside its own frame: the view, not the page
    await shot(page, screenshots, "ui-02-target-history", full_page=False)

    # The README's queries, as the Workflows page sends them, list what the projection says they should.
    assert readme_queries() == list(expected_listings(world))
    seen: dict[str, dict[str, set[str]]] = {}

    async def agree() -> bool:
        seen["expected"] = expected_listings(world)
        seen["listed"] = {query: await ui_listing(world, this_year(world, query)) for query in seen["expected"]}
        return seen["listed"] == seen["expected"]
    with contextlib.suppress(AssertionError):  # visibility lags a little; the assertion below shows any difference
        await wait_for(agree, timeout=90, what="the README's queries agreeing with the projection")
    assert seen["listed"] == seen["expected"]
    assert all(seen["expected"].values()), seen["expected"]  # each query finds something here

    # One of them on the page itself, as a link an operator is sent: the unstaffed targets.
    unstaffed = next(query for query in readme_queries() if "'unstaffed'" in query)
    await page.goto(f"/namespaces/{world.client.namespace}/workflows?query={quote(unstaffed)}")

    async def unstaffed_listed() -> bool:
        return await listed_on_page(page) == expected_listings(world)[unstaffed]
    await wait_for(unstaffed_listed, timeout=SENT / 1000, what="the unstaffed targets listed in the Web UI")
    await shot(page, screenshots, "ui-03-unstaffed-query")
    await context.close()
