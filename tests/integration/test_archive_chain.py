"""The history archive's hash chain on both databases, without a Temporal server: appends link up from 64
zeros, a run is archived once, concurrent appenders never fork the chain, and verification names the first
entry that was altered, removed or relinked; archived continue-as-new chains are read back in order; the
human steps the archived histories record are counted by how their actors authenticated."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, select, update
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent, WorkflowExecutionStartedEventAttributes
from temporalio.client import WorkflowHistory

from db import schema
from domain.archive import GENESIS, ClosedRun, entry_digest, history_digest
from read.archive import ArchiveAltered, HistoryArchive, human_steps, verify_chain
from runtime.codec import AesGcmCodec, new_key
from store.archive import append_entry

ENGINES = ["sqlite_engine", pytest.param("fresh_pg_engine", marks=pytest.mark.postgres)]
T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)


def history_json(run_id: str, continued_from: str = "") -> str:
    started = HistoryEvent(
        event_id=1, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        workflow_execution_started_event_attributes=WorkflowExecutionStartedEventAttributes(
            original_execution_run_id=run_id, continued_execution_run_id=continued_from))
    started.event_time.FromDatetime(T0)
    return WorkflowHistory("unused", [started]).to_json()


def run(workflow_id: str, n: int, minutes: int = 0) -> ClosedRun:
    return ClosedRun(workflow_id, f"run-{n}", "TargetInspectionWorkflow", T0 + timedelta(minutes=minutes or n))


def fill(engine, n: int) -> list[int]:
    return [append_entry(engine, run(f"target/T/{i:03d}", i), history_json(f"run-{i}")) for i in range(n)]


def rows(engine):
    t = schema.history_archive
    with engine.connect() as c:
        return c.execute(select(t).order_by(t.c.seq)).all()


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_entries_link_up_from_zeros_and_a_run_is_archived_once(engine_fixture, request):
    engine = request.getfixturevalue(engine_fixture)
    seqs = fill(engine, 4)
    assert all(seqs) and seqs == sorted(seqs)
    assert append_entry(engine, run("target/T/001", 1), history_json("run-1")) is None  # already there
    entries = rows(engine)
    assert len(entries) == 4 and entries[0].prev_hash == GENESIS
    for before, entry in zip([None, *entries], entries):
        assert entry.history_sha256 == history_digest(entry.history)
        assert entry.prev_hash == (before.entry_hash if before else GENESIS)
        assert entry.entry_hash == entry_digest(entry.prev_hash, entry.workflow_id, entry.run_id, entry.history_sha256)
    check = verify_chain(engine)
    assert check.ok and check.entries == 4 and check.head_hash == entries[-1].entry_hash


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_verification_names_the_first_broken_entry(engine_fixture, request):
    engine = request.getfixturevalue(engine_fixture)
    fill(engine, 5)
    t = schema.history_archive
    entries = rows(engine)
    second, third = entries[1], entries[2]

    def set_row(entry, **values):
        with engine.begin() as c:
            c.execute(update(t).where(t.c.seq == entry.seq).values(**values))

    def broken():
        check = verify_chain(engine)
        assert not check.ok
        return check.broken

    set_row(third, history=third.history + " ")  # one character of the text
    b = broken()
    assert (b.seq, b.workflow_id, b.run_id) == (third.seq, third.workflow_id, third.run_id)
    assert b.reason.startswith("history altered")
    assert verify_chain(engine).entries == 2 and verify_chain(engine).head_seq == second.seq

    # The forger recomputes the history's sha256: the entry hash gives it away.
    set_row(third, history_sha256=history_digest(third.history + " "))
    assert broken().reason.startswith("entry hash altered") and broken().seq == third.seq

    # ...and the entry hash too: the next entry no longer links to it.
    set_row(third, entry_hash=entry_digest(third.prev_hash, third.workflow_id, third.run_id,
                                           history_digest(third.history + " ")))
    b = broken()
    assert b.seq == entries[3].seq and b.reason.startswith("broken link")

    set_row(third, history=third.history, history_sha256=third.history_sha256, entry_hash=third.entry_hash)
    assert verify_chain(engine).ok
    with engine.begin() as c:  # an entry removed from the middle
        c.execute(delete(t).where(t.c.seq == second.seq))
    b = broken()
    assert b.seq == third.seq and b.reason.startswith("broken link")


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_concurrent_appenders_never_fork_the_chain(engine_fixture, request):
    engine = request.getfixturevalue(engine_fixture)
    start = threading.Barrier(6)
    errors = []

    def appender(k: int) -> None:
        try:
            start.wait()
            for i in range(10):
                # every appender also tries the runs of the one before it: each run lands once
                for owner in (k, (k + 1) % 6):
                    append_entry(engine, run(f"target/T/{owner}", owner * 100 + i), history_json(f"r{owner}-{i}"))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=appender, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = verify_chain(engine)
    assert check.ok and check.entries == 60


@pytest.mark.parametrize("engine_fixture", ENGINES)
async def test_an_archived_chain_is_read_back_oldest_run_first(engine_fixture, request):
    engine = request.getfixturevalue(engine_fixture)
    workflow_id = f"task/{uuid.uuid4().hex[:6]}"
    # Archived out of order (the latest first): the chain follows the runs' links, not the archive order.
    for n, previous, minutes in [(3, "run-2", 30), (1, "", 10), (2, "run-1", 20)]:
        append_entry(engine, run(workflow_id, n, minutes), history_json(f"run-{n}", previous))
    append_entry(engine, run("task/other", 9), history_json("run-9"))
    archive = HistoryArchive(lambda: engine)  # a factory: opened on first use
    chain = await archive.chain(workflow_id)
    assert [events[0].workflow_execution_started_event_attributes.original_execution_run_id for events in chain] \
        == ["run-1", "run-2", "run-3"]
    assert (await archive.run(workflow_id, "run-2"))[0].event_id == 1
    assert await archive.run(workflow_id, "run-7") is None
    assert await archive.chain("task/none") == []
    assert archive.used == {workflow_id}

    t = schema.history_archive
    with engine.begin() as c:
        c.execute(update(t).where(t.c.workflow_id == workflow_id, t.c.run_id == "run-2")
                  .values(history=t.c.history + " "))
    with pytest.raises(ArchiveAltered, match="run-2"):
        await HistoryArchive(engine).chain(workflow_id)


def _json(value) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


def steps_history(commands: list[tuple[str, str, object]], codec: AesGcmCodec | None = None) -> str:
    """A run whose history holds these (kind: update | signal, name, command) events after its start."""
    events = [HistoryEvent(event_id=1, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)]
    for n, (kind, name, command) in enumerate(commands, start=2):
        payload = codec.encode_sync([_json(command)])[0] if codec else _json(command)
        if kind == "update":
            event = HistoryEvent(event_id=n, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            request.input.name = name
            request.input.args.payloads.append(payload)
        else:
            event = HistoryEvent(event_id=n, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
            event.workflow_execution_signaled_event_attributes.signal_name = name
            event.workflow_execution_signaled_event_attributes.input.payloads.append(payload)
        events.append(event)
    return WorkflowHistory("unused", events).to_json()


@pytest.mark.parametrize("engine_fixture", ENGINES)
def test_human_steps_are_counted_by_how_their_actors_authenticated(engine_fixture, request):
    engine = request.getfixturevalue(engine_fixture)
    append_entry(engine, run("target/T/001", 1), steps_history([
        ("signal", "field_signal", {"kind": "accept", "inspector": "I1", "actor": "I1", "auth_method": "password"}),
        ("update", "record_check", {"inspectors": ["I1", "I2"], "actor": "I1", "auth_method": "password"}),
        ("update", "enter_result", {"inspector": "I2", "actor": "I2", "auth_method": "password"}),
        ("update", "review_result", {"reviewer": "R1", "actor": "R1", "auth_method": "cli-local"}),
        ("update", "enter_result", {"inspector": "I9", "actor": None, "auth_method": None}),  # from before: no actor
        ("signal", "target_finished", "91360202MA0000000X"),  # not a human step
    ]))
    codec = AesGcmCodec.from_spec(f"k1:{new_key()}")
    append_entry(engine, run("target/T/002", 2), steps_history([
        ("update", "record_recheck", {"inspector": "I2", "actor": "I2", "auth_method": "password"})], codec))

    counted = human_steps(engine, codec)
    assert counted.as_json() == {"cli-local": {"steps": 1, "people": 1}, "password": {"steps": 4, "people": 2}}
    assert counted.people["password"] == {"I1", "I2"}
    with pytest.raises(ValueError, match="SPOTCHECK_CODEC_KEYS"):
        human_steps(engine)  # an encrypted step is not silently left out
