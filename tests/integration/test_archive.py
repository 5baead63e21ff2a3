"""The history archive on the real dev server (visibility lists closed workflows; the time-skipping server
cannot): a finished task is archived by the scheduled workflow, deleted from Temporal ("past retention"),
and its timeline read back from the archive equals the live one; a second pass appends nothing; the chain
verifies, and one altered history makes `task history --verify-archive` fail naming the entry."""
from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer, Worker

from activities.archive import archive_pass, closed_query, history_text

from domain.messages.archiver import ArchiveBatch
from db import schema
from domain.archive import GENESIS, entry_digest, history_digest
from domain.messages.plan import PlanRun
from domain.workdays import SHANGHAI
from read.archive import HistoryArchive
from service.archive import SCHEDULE_ID, upsert_archive_schedule
from runtime.client import WORKFLOWS
from runtime.codec import AesGcmCodec, converter_with, new_key
from service.imports import import_examples
from store.plans import load_plan
from read.timeline import execution_chain, timeline
from tests.conftest import own_schema
from tests.integration.devserver import Cli, workers
from tests.workflows.support import approve_every_target, plan_file, wait_for, waiting_targets
from tests.workflows.test_timeline import CATEGORIES, CHECKPOINTS
from workflows.archiver import HistoryArchiverWorkflow
from workflows.common import TASK_QUEUE, plan_workflow_id, target_workflow_id, task_workflow_id
from workflows.plan import AnnualPlanWorkflow

pytestmark = pytest.mark.postgres
INDUSTRY = "C14"  # a population of this test's own (the frequency cap spans the plan year)


@pytest.fixture(scope="module")
def db(postgres_url):
    """A schema of its own (one chain for this module), with the example directories; and its URL for the CLI."""
    with own_schema(postgres_url) as schema:
        import_examples(schema.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        yield schema.engine, schema.url


async def closed_runs(client: Client) -> set[tuple[str, str]]:
    return {(w.id, w.run_id) async for w in client.list_workflows(closed_query(None))}


async def delete(client: Client, workflow_id: str, run_id: str = "") -> None:
    await client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
        namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id)))


async def gone(client: Client, workflow_id: str, run_id: str | None = None) -> bool:
    try:
        await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return False


def archived(engine) -> list:
    t = schema.history_archive
    with engine.connect() as c:
        return c.execute(select(t).order_by(t.c.seq)).all()


async def test_a_task_read_back_from_the_archive_has_the_live_timeline(env, db, tmp_path):
    engine, url = db
    client = env.client
    cli = Cli(env, url, tmp_path)
    code = f"ARC-{uuid.uuid4().hex[:6]}"
    plan, _ = load_plan(engine, plan_file(datetime.now(SHANGHAI).date(), code, industry=INDUSTRY), "plan.json")
    task_id = plan.tasks[0].task_id
    async with workers(env, engine, tmp_path, workday_seconds=1):
        handle = await client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=code),
                                             id=plan_workflow_id(code), task_queue=TASK_QUEUE)
        usccs = await wait_for(lambda: waiting_targets(client, engine, task_id), timeout=120, what="dispatched targets")
        await approve_every_target(client, engine, task_id, usccs, CATEGORIES, CHECKPOINTS)
        assert (await asyncio.wait_for(handle.result(), timeout=120)).tasks_closed == 1

        live = await timeline(client, task_id, engine=engine)
        live_targets = {u: await timeline(client, task_id, u) for u in usccs}
        ids = {plan_workflow_id(code), task_workflow_id(task_id), *(target_workflow_id(task_id, u) for u in usccs)}

        # Every run of each: a target continues as new at its waits.
        runs = set()
        for workflow_id in ids:
            for events in await execution_chain(client, workflow_id):
                runs.add((workflow_id, events[0].workflow_execution_started_event_attributes.original_execution_run_id))
        assert len(runs) > len(ids)

        async def listed():
            return await closed_runs(client) >= runs
        await wait_for(listed, what="closed runs in visibility")

        # The schedule's workflow archives them, with the worker's client; limit 2: several passes.
        summary = await client.execute_workflow(HistoryArchiverWorkflow.run, ArchiveBatch(limit=2),
                                                id=f"history-archive-{uuid.uuid4().hex[:6]}", task_queue=TASK_QUEUE)
        assert summary.archived == len(runs) and not summary.more and summary.gone == 0

    entries = archived(engine)
    assert {(e.workflow_id, e.run_id) for e in entries} == runs  # the archiver's own run is not archived
    assert entries[0].prev_hash == GENESIS
    assert [e.closed_at for e in entries] == sorted(e.closed_at for e in entries)  # oldest close first
    assert summary.head_seq == entries[-1].seq and summary.head_hash == entries[-1].entry_hash
    for before, entry in zip([None, *entries], entries):
        assert entry.prev_hash == (before.entry_hash if before else GENESIS)
        assert entry.history_sha256 == history_digest(entry.history)
        assert entry.entry_hash == entry_digest(entry.prev_hash, entry.workflow_id, entry.run_id,
                                                entry.history_sha256)
    task_entry = next(e for e in entries if e.workflow_id == task_workflow_id(task_id))
    assert task_entry.workflow_type == "InspectionTaskWorkflow"
    fetched = await client.get_workflow_handle(task_entry.workflow_id, run_id=task_entry.run_id).fetch_history()
    assert task_entry.history == history_text(fetched)  # as fetched, to the byte: recomputable while Temporal has it
    assert json.loads(task_entry.history) == json.loads(fetched.to_json())

    # Archived histories replay on the current code (no keys set here: plain payloads).
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    for entry in entries:
        await replayer.replay_workflow(WorkflowHistory.from_json(entry.workflow_id, entry.history))

    # "Past retention": the task and its targets are deleted from Temporal (asynchronously, ~30 s).
    for workflow_id in ids - {plan_workflow_id(code)}:
        await delete(client, workflow_id)

    # Archiving again appends nothing: the CLI (same code) and the scheduled workflow.
    again = await cli.json("archive", "run")
    assert again["archived"] == 0 and again["already"] >= len(runs) and again["head_seq"] == entries[-1].seq
    assert (await archive_pass(client, engine, ArchiveBatch(full=True))).archived == 0
    assert len(archived(engine)) == len(entries)

    async def all_gone():
        return all([await gone(client, w) for w in ids - {plan_workflow_id(code)}])
    await wait_for(all_gone, timeout=180, what="deleted from Temporal")
    with pytest.raises(LookupError):
        await timeline(client, task_id)  # without the archive: no such task any more

    archive = HistoryArchive(engine)
    assert await timeline(client, task_id, archive=archive, engine=engine) == live
    assert archive.used == ids - {plan_workflow_id(code)}
    for uscc, events in live_targets.items():
        assert await timeline(client, task_id, uscc, archive=HistoryArchive(engine)) == events

    # The command line falls back the same way, and verifies the chain on request.
    assert await cli.json("task", "history", task_id) == json.loads(json.dumps(live))
    verified = await cli.json("task", "history", task_id, "--target", usccs[0], "--verify-archive")
    assert verified["archive"]["ok"] and verified["archive"]["entries"] == len(entries)
    assert verified["events"] == json.loads(json.dumps(live_targets[usccs[0]]))

    # One archived history altered (the text UPDATEd): verification names that entry, exit 1.
    t = schema.history_archive
    victim = next(e for e in entries if e.workflow_id == target_workflow_id(task_id, usccs[-1]))
    with engine.begin() as c:
        c.execute(update(t).where(t.c.seq == victim.seq).values(history=victim.history.replace('"eventId": "1"',
                                                                                              '"eventId": "1" ', 1)))
    try:
        run = await cli("task", "history", task_id, "--verify-archive", "--json")
        assert run.returncode == 1, run.stderr
        broken = json.loads(run.stdout)["archive"]["broken"]
        assert (broken["seq"], broken["workflow_id"], broken["run_id"]) == (victim.seq, victim.workflow_id,
                                                                             victim.run_id)
        assert f"entry {victim.seq} ({victim.workflow_id}" in run.stderr and "history altered" in run.stderr
        run = await cli("task", "history", task_id)  # nor is a timeline read from the altered entry
        assert run.returncode == 1 and "altered" in run.stderr and victim.run_id in run.stderr
    finally:
        with engine.begin() as c:
            c.execute(update(t).where(t.c.seq == victim.seq).values(history=victim.history))
    run = await cli("task", "history", task_id, "--verify-archive")
    assert run.returncode == 0 and f"archive chain verified: {len(entries)} entries" in run.stdout


@workflow.defn(sandboxed=False)
class Hop:
    """A stand-in that continues-as-new once: a chain of two runs under a task's workflow id."""

    @workflow.run
    async def run(self, hops: int) -> int:
        if hops:
            workflow.continue_as_new(hops - 1)
        return 0


async def test_runs_missing_from_the_front_of_a_chain_come_from_the_archive(env, db):
    engine, _ = db
    client = env.client
    workflow_id = task_workflow_id(f"HOP-{uuid.uuid4().hex[:6]}")
    queue = f"hop-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[Hop]):
        await client.execute_workflow(Hop.run, 1, id=workflow_id, task_queue=queue)
    live = await execution_chain(client, workflow_id)
    assert len(live) == 2
    first_run = live[0][0].workflow_execution_started_event_attributes.original_execution_run_id

    async def both_listed():
        return len([w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")
                    if w.close_time is not None]) == 2
    await wait_for(both_listed, what="both runs in visibility")
    summary = await archive_pass(client, engine, ArchiveBatch())
    assert summary.archived == 2

    await delete(client, workflow_id, first_run)  # the older run is past retention, the latest is not
    await wait_for(lambda: gone(client, workflow_id, first_run), timeout=180, what="first run deleted")
    assert len(await execution_chain(client, workflow_id)) == 1  # without the archive: missing from the front
    archive = HistoryArchive(engine)
    assert await execution_chain(client, workflow_id, archive) == live
    assert archive.used == {workflow_id}


async def test_the_schedule_is_created_once_and_updated_in_place(env):
    created = await upsert_archive_schedule(env.client)
    assert created.created and created.cron == "17 * * * *" and len(created.next_action_times) > 0
    await env.client.get_schedule_handle(SCHEDULE_ID).pause(note="maintenance")
    updated = await upsert_archive_schedule(env.client, cron="*/30 * * * *", time_zone="UTC")
    assert not updated.created and updated.paused and updated.cron == "*/30 * * * *"
    description = await env.client.get_schedule_handle(SCHEDULE_ID).describe()
    assert description.schedule.action.workflow == "HistoryArchiverWorkflow"
    assert description.schedule.state.note == "history archive: cron '*/30 * * * *' UTC"
    assert description.schedule.policy.overlap.name == "SKIP"


async def test_encrypted_histories_are_archived_as_fetched_and_replay_with_the_keys(env, db):
    """With SPOTCHECK_CODEC_KEYS set the archive keeps the payloads encrypted, as Temporal has them."""
    engine, _ = db
    converter = converter_with(AesGcmCodec.from_spec(f"k1:{new_key()}"))
    client = await Client.connect(env.client.service_client.config.target_host, namespace=env.client.namespace,
                                  data_converter=converter)
    workflow_id = task_workflow_id(f"ENC-{uuid.uuid4().hex[:6]}")
    queue = f"enc-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[Hop]):
        await client.execute_workflow(Hop.run, 1, id=workflow_id, task_queue=queue)

    async def both_listed():
        return len([w async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")
                    if w.close_time is not None]) == 2
    await wait_for(both_listed, what="both runs in visibility")
    assert (await archive_pass(client, engine, ArchiveBatch())).archived == 2

    chain = await HistoryArchive(engine).chain(workflow_id)
    first_input = chain[0][0].workflow_execution_started_event_attributes.input.payloads
    assert first_input[0].metadata["encoding"] == b"binary/encrypted"  # stored encrypted
    assert await converter.decode(first_input, [int]) == [1]  # and readable with the keys
    t = schema.history_archive
    with engine.connect() as c:
        texts = c.execute(select(t.c.workflow_id, t.c.history).where(t.c.workflow_id == workflow_id)).all()
    replayer = Replayer(workflows=[Hop], data_converter=converter)
    for row in texts:
        await replayer.replay_workflow(WorkflowHistory.from_json(row.workflow_id, row.history))
