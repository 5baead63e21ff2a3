"""The history archive, read side: histories back from the archive (the timeline's fallback once
Temporal no longer has a workflow) and the chain's verification (`task history --verify-archive`).

Writing is activities/archive.py; the chain's hashes are domain/archive.py, its table store/archive.py;
the Schedule "history-archive" that keeps it current is service/archive.py.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from db.engine import Engine
from domain.archive import GENESIS, entry_digest, history_digest
from runtime.codec import AesGcmCodec, is_encrypted
from store.archive import chain_entries, runs_of


class ArchiveAltered(Exception):
    """An archived history does not match its recorded sha256: it was changed after it was archived."""


# --- reading ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArchivedRun:
    seq: int
    run_id: str
    closed_at: datetime
    events: Sequence[HistoryEvent]

    @property
    def continued_from(self) -> str:
        """The run this one continued (continue-as-new, retry, cron); '' for the first of its chain."""
        return self.events[0].workflow_execution_started_event_attributes.continued_execution_run_id \
            if self.events else ""


def read_runs(engine: Engine, workflow_id: str) -> list[ArchivedRun]:
    """Every archived run of a workflow id, in archive order. An entry whose history no longer matches its
    sha256 is refused (ArchiveAltered): a timeline from altered evidence would mislead."""
    runs = []
    for row in runs_of(engine, workflow_id):
        if history_digest(row.history) != row.history_sha256:
            raise ArchiveAltered(f"the archived history of {workflow_id} run {row.run_id} (entry {row.seq}) does not "
                                 "match its sha256: the archive was altered (spotcheck task history TASK_ID "
                                 "--verify-archive)")
        runs.append(ArchivedRun(row.seq, row.run_id, row.closed_at,
                                WorkflowHistory.from_json(workflow_id, row.history).events))
    return runs


@dataclass
class HistoryArchive:
    """Archived histories for runtime/timeline.py. `engine` may be a factory: the database is opened only
    when Temporal lacks a history. `used` names the workflow ids read from the archive."""

    engine: Engine | Callable[[], Engine]
    used: set[str] = field(default_factory=set)
    _runs: dict[str, list[ArchivedRun]] = field(default_factory=dict, repr=False)
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def runs(self, workflow_id: str) -> list[ArchivedRun]:
        if workflow_id not in self._runs:
            async with self._opening:  # the targets are read concurrently: one engine
                if not isinstance(self.engine, Engine):
                    self.engine = await asyncio.to_thread(self.engine)
            self._runs[workflow_id] = await asyncio.to_thread(read_runs, self.engine, workflow_id)
        return self._runs[workflow_id]

    async def chain(self, workflow_id: str) -> list[Sequence[HistoryEvent]]:
        """The latest execution chain of a workflow id, oldest run first, as archived ([] if none).

        As Temporal does for a live id: the latest run is the one closed last; each run's started
        event names the run it continued, back to the first (or to a run missing from the archive)."""
        runs = await self.runs(workflow_id)
        if not runs:
            return []
        by_run = {r.run_id: r for r in runs}
        run: ArchivedRun | None = max(runs, key=lambda r: (r.closed_at, r.seq))
        chain: list[ArchivedRun] = []
        while run is not None and all(run.run_id != r.run_id for r in chain):
            chain.append(run)
            run = by_run.get(run.continued_from)
        self.used.add(workflow_id)
        return [r.events for r in reversed(chain)]

    async def run(self, workflow_id: str, run_id: str) -> Sequence[HistoryEvent] | None:
        for archived in await self.runs(workflow_id):
            if archived.run_id == run_id:
                self.used.add(workflow_id)
                return archived.events
        return None


# --- verification ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BrokenLink:
    seq: int
    workflow_id: str
    run_id: str
    reason: str

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ChainCheck:
    entries: int
    head_seq: int | None
    head_hash: str | None  # record it elsewhere: the chain alone cannot show a cut or rewritten tail
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_json(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "head_seq": self.head_seq, "head_hash": self.head_hash,
                "broken": self.broken.as_json() if self.broken else None}

    def text(self) -> str:
        if self.broken is None:
            return (f"archive chain verified: {self.entries} entries"
                    + (f", head {self.head_seq} {self.head_hash}" if self.head_seq is not None else ""))
        b = self.broken
        return f"archive chain broken at entry {b.seq} ({b.workflow_id} run {b.run_id}): {b.reason}"


def verify_chain(engine: Engine, batch: int = 100) -> ChainCheck:
    """Recompute the whole chain in seq order, each history's sha256 included; stop at the first break.

    Gaps in seq are fine (a rolled-back insert uses a number up); what counts is that each entry links to
    the one before it. A deleted or reordered entry shows as a broken link at the entry after it.
    """
    expected_prev, entries, last = GENESIS, 0, None
    with chain_entries(engine, batch) as rows:
        for row in rows:
            reason = None
            actual = history_digest(row.history)
            if actual != row.history_sha256:
                reason = f"history altered: its sha256 is {actual}, the entry records {row.history_sha256}"
            elif row.prev_hash != expected_prev:
                before = f"entry {last[0]}'s hash" if last else "the genesis value (64 zeros)"
                reason = (f"broken link: prev_hash {row.prev_hash} is not {before} {expected_prev} "
                          "(an entry before it was removed, reordered or altered)")
            elif entry_digest(row.prev_hash, row.workflow_id, row.run_id, row.history_sha256) != row.entry_hash:
                reason = "entry hash altered: it does not match prev_hash, workflow_id, run_id and history_sha256"
            if reason is not None:
                return ChainCheck(entries, last[0] if last else None, last[1] if last else None,
                                  BrokenLink(row.seq, row.workflow_id, row.run_id, reason))
            entries += 1
            expected_prev, last = row.entry_hash, (row.seq, row.entry_hash)
    return ChainCheck(entries, last[0] if last else None, last[1] if last else None, None)


# --- who acted -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HumanSteps:
    """The human steps the archived histories record, by how their actor authenticated: step count and actors."""

    steps: dict[str, int]
    people: dict[str, frozenset[str]]

    def as_json(self) -> dict:
        return {method: {"steps": n, "people": len(self.people[method])} for method, n in sorted(self.steps.items())}


def _human_step(event: HistoryEvent, codec: AesGcmCodec | None) -> dict | None:
    """The command of an accepted update or a signal, when it records an authenticated actor."""
    if event.HasField("workflow_execution_update_accepted_event_attributes"):
        payloads = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.args.payloads
    elif event.HasField("workflow_execution_signaled_event_attributes"):
        payloads = event.workflow_execution_signaled_event_attributes.input.payloads
    else:
        return None
    if not payloads:
        return None
    payload: Payload = codec.decode_sync(payloads[:1])[0] if codec else payloads[0]
    if is_encrypted(payload):
        raise ValueError("the archived histories are encrypted and no codec key is set: set SPOTCHECK_CODEC_KEYS")
    if payload.metadata.get("encoding") != b"json/plain":
        return None
    command = json.loads(payload.data)
    return command if isinstance(command, dict) and command.get("actor") and command.get("auth_method") else None


def human_steps(engine: Engine, codec: AesGcmCodec | None = None, batch: int = 100) -> HumanSteps:
    """Every human step in the archive (each update or signal whose command names its actor and how they
    authenticated), counted per method with the distinct actors: the history's own account of who acted."""
    steps: dict[str, int] = {}
    people: dict[str, set[str]] = {}
    with chain_entries(engine, batch) as rows:
        for row in rows:
            for event in WorkflowHistory.from_json(row.workflow_id, row.history).events:
                if (command := _human_step(event, codec)) is not None:
                    method = command["auth_method"]
                    steps[method] = steps.get(method, 0) + 1
                    people.setdefault(method, set()).add(command["actor"])
    return HumanSteps(steps, {m: frozenset(p) for m, p in people.items()})
