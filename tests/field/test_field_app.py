"""The field app in a phone's browser (390×844), on the live API, the dev server and PostgreSQL: the chain from
an inspector's check with a photo to the public register; a check and a result made offline reaching the
workflow once each, across a reload and two open tabs; a supervisor's substitution, a rule's refusal in words.
Screenshots of each page go to test-artifacts/screenshots/field/."""
from __future__ import annotations

import json
import struct
import zlib

import httpx
import pytest

from read.timeline import execution_chain
from tests.field.conftest import PASSWORD, PHONE, REVIEWER, SUPERVISOR, stage_of
from tests.workflows.support import wait_for
from workflows.common import target_workflow_id

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


async def sent(page):
    """Until the outbox is empty: everything pressed has been answered."""
    await page.wait_for_selector('#outbox[data-pending="0"][data-refused="0"]', state="attached", timeout=SENT)


async def accepted_updates(world, uscc: str) -> list[tuple[str, str]]:
    """(update name, actor) of each update the target's workflow accepted, over every run of its chain."""
    found = []
    for run in await execution_chain(world.env.client, target_workflow_id(world.task_id, uscc)):
        for event in run:
            if event.HasField("workflow_execution_update_accepted_event_attributes"):
                request = event.workflow_execution_update_accepted_event_attributes.accepted_request
                found.append((request.input.name, json.loads(request.input.args.payloads[0].data)["actor"]))
    return found


async def shot(page, screenshots, name: str):
    await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


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
    await page.click("#accept")
    await page.click("#arrive")
    await sent(page)
    await record_check_and_result(page, "门头照片.png")
    await page.wait_for_selector('#stage[data-stage="entered"]', timeout=SENT)
    await sent(page)
    await shot(page, screenshots, "04-result-entered")
    await page.click("#nav a[href='#/alerts']")
    await page.wait_for_selector("h1:text('我的预警')")
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
    await page.click("#approve")
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
    names = [name for name, _ in await accepted_updates(world, uscc)]
    assert names.count("record_check") == 1 and names.count("enter_result") == 1, names


async def test_a_supervisor_substitutes_a_team_and_sees_a_refusal_in_words(browser, world, screenshots):
    uscc = next(u for u in world.teams if u not in world.own)
    two = sorted({i for team in world.teams.values() for i in team} - set(world.teams[uscc]))[:2]
    context, page = await phone(browser, world)
    await log_in(page, SUPERVISOR)
    await page.wait_for_selector("#unstaffed")
    await shot(page, screenshots, "09-supervise")
    await open_target(page, world, uscc)
    await page.wait_for_selector("#assign-form")

    await page.fill("#assign-inspectors", two[0])  # a team of one
    await page.fill("#assign-reason", "原检查组成员回避，临时调整")
    await page.click("#assign")
    refusal = page.locator('#outbox li[data-state="refused"] .detail')
    await refusal.wait_for(timeout=SENT)
    assert "a team needs at least 2 different inspectors [team-size]" in await refusal.inner_text()  # the draw's rule, named
    assert "Traceback" not in await page.content()
    await shot(page, screenshots, "10-assign-refused")
    await page.click('#outbox li[data-state="refused"] button.danger')  # resolved: dropped

    await page.fill("#assign-inspectors", ", ".join(two))
    await page.fill("#assign-reason", "原检查组成员回避，临时调整")
    await page.click("#assign")
    await sent(page)
    await page.wait_for_function(
        f"document.querySelector('#teams').innerText.includes({json.dumps(two[1])})", timeout=SENT)
    await shot(page, screenshots, "11-assigned")
    await context.close()
    assert ("assign_team", SUPERVISOR) in await accepted_updates(world, uscc)
