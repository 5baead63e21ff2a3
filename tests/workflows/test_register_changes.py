"""Corrections (更正) and stop-publication (R27) on the time-skipping server, and what the built site shows.

Each test publishes a result as the target's `publish_result` does (domain.public.result through
store.register.publish) in a schema of this module's own, then runs the register's workflows on the
project's worker (runtime.client.build_worker).
"""
from __future__ import annotations

import dataclasses
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.handoff import JsonlReceiver
from db import schema
from domain import public
from domain.categories import category
from domain.access import Actor
from domain.messages.public import CorrectionRun, StopDecision, StopPublicationRun
from domain.uscc import make_uscc
from domain.workdays import SHANGHAI, Deadlines, calendar_from_env
from read.public_site import site
from runtime import config
from runtime.client import build_worker
from runtime.context import Context
from service import corrections as correction_service, stop_publication as stop_service
from service import identity
from service.errors import Refused
from service.imports import import_examples
from store.register import publish, result_publication
from tests.conftest import own_schema
from tests.workflows.support import UNIT, people, release_leaked_time_lock, rows_of, server_now, wait_for
from workflows.common import TASK_QUEUE
from workflows.correction import CorrectionWorkflow, correction_workflow_id
from workflows.stop_publication import NO_PERIOD, StopPublicationWorkflow, stop_publication_workflow_id

pytestmark = pytest.mark.postgres
MIN_DAYS = 180


@pytest.fixture(scope="module")
def engine(postgres_url):
    with own_schema(postgres_url) as own:
        import_examples(own.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        yield own.engine


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def worker(ts_env, engine, tmp_path_factory):
    """The main queue's worker (the command service's queue: this module's server is its own); these
    workflows use no heavy activity."""
    queue = TASK_QUEUE
    tmp = tmp_path_factory.mktemp("register")
    main = build_worker(ts_env.client, queue, engine, Deadlines(calendar_from_env()),
                        JsonlReceiver(tmp / "outbox.jsonl"), ThreadPoolExecutor(max_workers=4))
    async with main:
        yield queue


def published(engine, at: datetime, code: str = "no_issue") -> tuple[str, str]:
    """A result of a task of its own, published at `at`; (task_id, uscc)."""
    task_id, uscc = f"REG-{uuid.uuid4().hex[:8]}", make_uscc(f"91360202MA{uuid.uuid4().int % 10**7:07d}")
    line = {"task_code": f"景市监抽查〔2025〕{task_id}号", "unit": UNIT}
    with engine.begin() as c:
        publish(c, workflow_id=f"target/{task_id}/{uscc}", step="publish-result", kind="result", at=at, year=at.year,
                task_id=task_id, uscc=uscc, category=code, unit=UNIT,
                payload=public.result(task_id, line, uscc, "景德镇市瓷都陶瓷有限公司",
                                      {"category": code, "check_date": at.astimezone(SHANGHAI).date()}))
    return task_id, uscc


async def recorded(handle) -> None:
    """Until the application is recorded: a decision sent before is refused (and says so)."""
    await wait_for(lambda: _eligible(handle), what="the application recorded")


async def _eligible(handle):
    return (await handle.query(StopPublicationWorkflow.status)).eligible_from


def decisions_of(engine, workflow_id: str) -> list[dict]:
    return rows_of(engine, schema.register_decisions, workflow_id)


def publications_of(engine, task_id: str, kind: str) -> list[dict]:
    p = schema.publications
    with engine.connect() as c:
        return [dict(r) for r in c.execute(select(p).where(p.c.task_id == task_id, p.c.kind == kind)).mappings()]


def pages(engine, task_id: str, uscc: str) -> tuple[str, str | None]:
    """The built site's page of the task and of the entity ("" and None: no such page)."""
    with engine.connect() as c:
        files = site(c)
    return files.get(f"tasks/t-{task_id}.html", ""), files.get(f"entities/{uscc}.html")


async def test_a_correction_is_published_beside_the_result_once_and_shows_on_the_site(ts_env, engine, worker):
    now = await server_now(ts_env)
    task_id, uscc = published(engine, now)
    supervisor = people(engine, "supervisor")[0]
    run = CorrectionRun(task_id=task_id, uscc=uscc, n=1, category="ordered_to_correct", note="复查时发现漏记",
                        reason="录入时类别选择有误", approver=supervisor, actor="clerk-1", auth_method="cli-local")
    workflow_id = correction_workflow_id(task_id, uscc, 1)
    start = dict(id=workflow_id, task_queue=worker, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    assert await ts_env.client.execute_workflow(CorrectionWorkflow.run, run, **start) == "corrected"
    with pytest.raises(WorkflowAlreadyStartedError):  # the first correction happens once
        await ts_env.client.start_workflow(CorrectionWorkflow.run, run, **start)

    # The register keeps both versions; the correction says what changed, why and when, never who approved.
    [original] = publications_of(engine, task_id, "result")
    [correction] = publications_of(engine, task_id, "correction")
    payload = json.loads(correction["payload"])
    assert payload["corrects"] == original["publication_id"] and payload["previous_category"] == "no_issue"
    assert payload["category"] == correction["category"] == "ordered_to_correct"
    assert payload["reason"] == "录入时类别选择有误" and supervisor not in correction["payload"]
    [record] = decisions_of(engine, workflow_id)
    assert (record["kind"], record["decision"], record["decided_by"], record["requested_by"]) == \
           ("correction", "approved", supervisor, "clerk-1")

    task_page, entity_page = pages(engine, task_id, uscc)
    corrected_on = now.astimezone(SHANGHAI).date().isoformat()
    for page in (task_page, entity_page):
        assert f"更正（{corrected_on}）" in page and "录入时类别选择有误" in page and "复查时发现漏记" in page
        assert category("ordered_to_correct").name_zh in page and category("no_issue").name_zh in page


async def test_a_correction_approved_by_someone_not_a_supervisor_is_refused_and_publishes_nothing(
        ts_env, engine, worker):
    task_id, uscc = published(engine, await server_now(ts_env))
    inspector = next(i for i in people(engine, "inspector") if i not in people(engine, "supervisor"))
    run = CorrectionRun(task_id=task_id, uscc=uscc, n=1, category="other", reason="r", approver=inspector)
    outcome = await ts_env.client.execute_workflow(CorrectionWorkflow.run, run,
                                                   id=correction_workflow_id(task_id, uscc, 1), task_queue=worker)
    assert outcome == f"refused: {inspector} is not a supervisor of the result's unit and cannot approve its correction"
    assert publications_of(engine, task_id, "correction") == []


async def test_the_command_service_corrects_and_refuses_a_different_correction_under_way(ts_env, engine, worker):
    task_id, uscc = published(engine, await server_now(ts_env))
    ctx = Context(config.load(), engine=engine, client=ts_env.client)
    supervisor = people(engine, "supervisor")[0]
    # The supervisor who gives the correction approves it: who acted is who authenticated.
    as_supervisor = Actor(id=supervisor, roles=frozenset({"supervisor"}), unit=UNIT, method="password")
    inspector = next(i for i in people(engine, "inspector") if i not in people(engine, "supervisor"))
    with pytest.raises(identity.Forbidden, match="is not a supervisor"):
        await correction_service.correct(ctx, Actor(id=inspector, roles=frozenset({"inspector"}), unit=UNIT,
                                                    method="password"), task_id, uscc, category="other", note=None,
                                         reason="录入有误")
    done = await correction_service.correct(ctx, as_supervisor, task_id, uscc, category="other", note="补充说明",
                                            reason="录入有误", request_key="k1")
    assert (done.workflow_id, done.n, done.already_started) == (correction_workflow_id(task_id, uscc, 1), 1, False)
    # Its retry under the same key (the door lost the answer) is that correction, not a second one.
    again = await correction_service.correct(ctx, as_supervisor, task_id, uscc, category="other", note="补充说明",
                                             reason="录入有误", request_key="k1")
    assert (again.workflow_id, again.n, again.already_started) == (done.workflow_id, 1, True)
    [run] = decisions_of(engine, done.workflow_id)
    assert (run["decided_by"], run["requested_by"]) == (supervisor, supervisor)
    # A second correction was started meanwhile under the next number (here: one refused, having published
    # nothing; not one left on a queue no worker serves, whose undelivered task would hold the server's time
    # skipping past this test) when another one arrives.
    other = CorrectionRun(task_id=task_id, uscc=uscc, n=2, note="另一更正", reason="r", approver=inspector)
    assert (await ts_env.client.execute_workflow(CorrectionWorkflow.run, other, task_queue=worker,
                                                 id=correction_workflow_id(task_id, uscc, 2))).startswith("refused")
    with pytest.raises(Refused, match="correction 2 of .* was started meanwhile with other fields"):
        await correction_service.correct(ctx, as_supervisor, task_id, uscc, category=None, note="第三次",
                                         reason="录入有误")
    assert len(publications_of(engine, task_id, "correction")) == 1


async def test_without_a_minimum_period_every_application_is_refused_with_that_reason(ts_env, engine, worker):
    task_id, uscc = published(engine, await server_now(ts_env))
    run = StopPublicationRun(task_id=task_id, uscc=uscc, applicant="张三（法定代表人）", grounds="已整改完毕", min_days=None)
    workflow_id = stop_publication_workflow_id(task_id, uscc)
    outcome = await ts_env.client.execute_workflow(StopPublicationWorkflow.run, run, id=workflow_id, task_queue=worker)
    assert outcome == f"refused: {NO_PERIOD}"
    [record] = decisions_of(engine, workflow_id)
    assert (record["decision"], record["decision_reason"], record["eligible_from"]) == ("refused", NO_PERIOD, None)
    assert publications_of(engine, task_id, "withdrawal") == []

    # The command service refuses it before any workflow starts, with the same sentence.
    settings = dataclasses.replace(config.load(), stop_publication_period=None)
    with pytest.raises(Refused, match="SPOTCHECK_STOP_PUBLICATION_MIN_DAYS"):
        await stop_service.apply(Context(settings, engine=engine, client=ts_env.client),
                                 Actor(id=people(engine, "reviewer")[0], roles=frozenset({"reviewer"}), unit=UNIT,
                                       method="password"), task_id, uscc, applicant="张三", grounds="已整改完毕")


async def test_an_approved_application_withdraws_the_result_after_the_minimum_period(ts_env, engine, worker):
    await release_leaked_time_lock(ts_env)  # the minimum period passes by time skipping (support.py says why)
    published_at = await server_now(ts_env)
    task_id, uscc = published(engine, published_at)
    assert uscc in (pages(engine, task_id, uscc)[0])
    run = StopPublicationRun(task_id=task_id, uscc=uscc, applicant="张三（法定代表人）", grounds="已整改完毕",
                             min_days=MIN_DAYS)
    workflow_id = stop_publication_workflow_id(task_id, uscc)
    handle = await ts_env.client.start_workflow(StopPublicationWorkflow.run, run, id=workflow_id, task_queue=worker)
    await recorded(handle)
    inspector = next(i for i in people(engine, "inspector") if i not in people(engine, "supervisor"))
    with pytest.raises(WorkflowUpdateFailedError) as refused:  # the unit decides: a supervisor of it
        await handle.execute_update(StopPublicationWorkflow.decide, StopDecision(decided_by=inspector, approve=True))
    assert "is not a supervisor of the result's unit" in refused.value.cause.message
    supervisor = people(engine, "supervisor")[0]
    message = await handle.execute_update(StopPublicationWorkflow.decide,
                                          StopDecision(decided_by=supervisor, approve=True, reason="符合条件"))
    eligible_from = published_at + timedelta(days=MIN_DAYS)
    assert message.startswith("approved") and eligible_from.isoformat()[:10] in message
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(StopPublicationWorkflow.decide, StopDecision(decided_by=supervisor, approve=False))
    assert refused.value.cause.message == f"already decided by {supervisor}"
    assert publications_of(engine, task_id, "withdrawal") == []  # not before the period has passed

    assert await handle.result() == "withdrawn"
    [withdrawal] = publications_of(engine, task_id, "withdrawal")
    assert withdrawal["published_at"] >= eligible_from
    [original] = publications_of(engine, task_id, "result")
    assert json.loads(withdrawal["payload"])["withdraws"] == original["publication_id"]  # the register keeps it
    [record] = decisions_of(engine, workflow_id)
    assert (record["decision"], record["decided_by"], record["decision_reason"]) == ("approved", supervisor, "符合条件")
    assert record["decided_at"] >= published_at and record["eligible_from"] == eligible_from
    assert record["effective_at"] == withdrawal["published_at"]
    status = await handle.query(StopPublicationWorkflow.status)
    assert (status.state, status.eligible_from, status.decided_by) == ("withdrawn", eligible_from, supervisor)

    with engine.connect() as c:
        assert result_publication(c, task_id, uscc) is None
    task_page, entity_page = pages(engine, task_id, uscc)
    assert uscc not in task_page and entity_page is None


async def test_a_rejected_application_leaves_the_result_published(ts_env, engine, worker):
    task_id, uscc = published(engine, await server_now(ts_env))
    run = StopPublicationRun(task_id=task_id, uscc=uscc, applicant="李四", grounds="申请停止公示", min_days=MIN_DAYS)
    workflow_id = stop_publication_workflow_id(task_id, uscc)
    handle = await ts_env.client.start_workflow(StopPublicationWorkflow.run, run, id=workflow_id, task_queue=worker)
    await recorded(handle)
    supervisor = people(engine, "supervisor")[0]
    await handle.execute_update(StopPublicationWorkflow.decide,
                                StopDecision(decided_by=supervisor, approve=False, reason="未满足条件"))
    assert await handle.result() == "rejected"
    [record] = decisions_of(engine, workflow_id)
    assert (record["decision"], record["decision_reason"], record["effective_at"]) == ("rejected", "未满足条件", None)
    assert publications_of(engine, task_id, "withdrawal") == []
    assert pages(engine, task_id, uscc)[1] is not None
