"""The history archive (architecture.md, Retention): each closed workflow's event history, kept as JSON in
the project database in one hash chain, so the audit trail outlives the namespace retention.

The chain's hashes are domain/archive.py; its table, the append under the chain lock and the reads are
store/archive.py. `read/archive.py` reads the archive back and verifies the chain.

Histories are stored as Temporal returns them: with SPOTCHECK_CODEC_KEYS set (runtime/codec.py)
their payloads are encrypted, exactly as in the live history, so an archived history replays and
decodes with the same keys — and needs them: keep every key id as long as the archive holds
histories encrypted with it, i.e. for good (docs/codec.md). (The replay corpus in tests/histories
is kept decrypted; the archive is evidence and keeps what the server had.)

What is archived: every closed run (completed, failed, cancelled, terminated, timed out,
continued-as-new) the namespace's visibility lists, except the archiver's own runs (bookkeeping,
not part of any inspection). Listing uses `client.list_workflows` (visibility), which the dev
server and a cluster have and the time-skipping test server has not. Runs are archived oldest
close first, so after an outage the ones nearest to retention go first. By default only runs
closed after the archive's newest entry minus CATCH_UP_MARGIN are listed (cheap every hour, and
robust to any outage of the archiver); `full=True` lists every closed run the server still has.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from google.protobuf import json_format
from temporalio import activity
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from db.engine import Engine
from domain.archive import ClosedRun
from domain.messages.archiver import ArchiveBatch, ArchiveSummary
from store.archive import append_entry, archived_keys, chain_head, newest_closed_at

CATCH_UP_MARGIN = timedelta(days=1)  # visibility lags by seconds; a day of overlap costs one listing of a day
ARCHIVER_WORKFLOW_TYPE = "HistoryArchiverWorkflow"  # workflows/archiver.py: its own runs are not archived


def history_text(history: WorkflowHistory) -> str:
    """The history as archived: `WorkflowHistory.to_json()` (what `WorkflowHistory.from_json` and the replayer
    read) with its keys sorted. Plain `to_json()` writes protobuf map entries (search attributes, payload
    metadata) in no fixed order, so two fetches of one history give two texts; sorted, the archived text
    and its sha256 can be recomputed from the server for as long as it keeps the history."""
    return json_format.MessageToJson(History(events=history.events), sort_keys=True)


# --- one pass --------------------------------------------------------------------------------------
def closed_query(after: datetime | None) -> str:
    query = f"ExecutionStatus != 'Running' AND WorkflowType != '{ARCHIVER_WORKFLOW_TYPE}'"
    if after is not None:
        query += f" AND CloseTime > '{after.astimezone(timezone.utc).isoformat().replace('+00:00', 'Z')}'"
    return query


async def list_closed(client: Client, after: datetime | None,
                      progress: Callable[..., None] | None = None) -> list[ClosedRun]:
    runs = []
    async for execution in client.list_workflows(closed_query(after), page_size=1000):
        if execution.close_time is None:  # not closed after all (the query says it is): next pass
            continue
        runs.append(ClosedRun(execution.id, execution.run_id, execution.workflow_type, execution.close_time))
        if progress is not None and len(runs) % 1000 == 0:
            progress(f"listed {len(runs)}")
    return runs


def _store(engine: Engine, run: ClosedRun, history: WorkflowHistory) -> int | None:
    return append_entry(engine, run, history_text(history))  # in the thread too: a long history is CPU work


async def archive_pass(client: Client, engine: Engine, batch: ArchiveBatch,
                       progress: Callable[..., None] | None = None) -> ArchiveSummary:
    """Archive the closed runs the archive lacks, oldest close first, at most `batch.limit` of them.

    The same code runs in the activity (progress: heartbeats) and in `spotcheck archive run`. Safe to run
    concurrently with itself: each append takes the chain lock and skips a run archived meanwhile.
    """
    after = batch.after_close_time
    if after is None and not batch.full:
        newest = await asyncio.to_thread(newest_closed_at, engine)
        after = newest - CATCH_UP_MARGIN if newest is not None else None
    listed = await list_closed(client, after, progress)
    done = await asyncio.to_thread(archived_keys, engine, listed)
    pending = sorted((r for r in listed if (r.workflow_id, r.run_id) not in done),
                     key=lambda r: (r.closed_at, r.workflow_id, r.run_id))
    archived = gone = 0
    raced = 0
    for run in pending[:batch.limit]:
        try:
            history = await client.get_workflow_handle(run.workflow_id, run_id=run.run_id).fetch_history()
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            gone += 1  # deleted, or past retention between the listing and now: nothing left to archive
            _warn("history gone before it was archived", run)
            continue
        seq = await asyncio.to_thread(_store, engine, run, history)
        if seq is None:
            raced += 1  # a concurrent pass archived it first
        else:
            archived += 1
        if progress is not None:
            progress(f"archived {archived}")
    head = await asyncio.to_thread(chain_head, engine)
    return ArchiveSummary(listed=len(listed), archived=archived, already=len(done) + raced, gone=gone,
                          more=len(pending) > batch.limit, head_seq=head[0] if head else None,
                          head_hash=head[1] if head else None)


def _warn(message: str, run: ClosedRun) -> None:
    if activity.in_activity():
        activity.logger.warning("%s: %s run %s", message, run.workflow_id, run.run_id)
    else:
        import structlog

        structlog.get_logger().warning(message, workflow_id=run.workflow_id, run_id=run.run_id)


class ArchiveActivities:
    """The activity, with the worker's Temporal client injected (it lists and fetches histories)."""

    def __init__(self, engine: Engine, client: Client) -> None:
        self._engine = engine
        self._client = client

    @activity.defn
    async def archive_closed(self, batch: ArchiveBatch) -> ArchiveSummary:
        """One pass (archive_pass); a retry starts over and skips what is archived already."""
        return await archive_pass(self._client, self._engine, batch, progress=activity.heartbeat)
