"""The history archiver (Schedule "history-archive", service/archive.py): passes of `archive_closed` until
nothing is left, or MAX_PASSES of them (the next scheduled run goes on from there).

Short and stateless: every pass lists what the archive lacks, so a failed or skipped run loses
nothing. Its own runs are not archived (activities/archive.py).
"""
from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.archive import ArchiveActivities
    from domain.messages.archiver import ArchiveBatch, ArchiveSummary
    from workflows.common import RETRY

MAX_PASSES = 20  # of ArchiveBatch.limit entries each


@workflow.defn
class HistoryArchiverWorkflow:
    @workflow.run
    async def run(self, batch: ArchiveBatch) -> ArchiveSummary:
        total = await self._pass(batch)
        passes = 1
        while total.more and passes < MAX_PASSES:
            total = total.plus(await self._pass(batch))
            passes += 1
        return total

    async def _pass(self, batch: ArchiveBatch) -> ArchiveSummary:
        return await workflow.execute_activity_method(
            ArchiveActivities.archive_closed, batch,
            start_to_close_timeout=timedelta(hours=1), heartbeat_timeout=timedelta(minutes=2), retry_policy=RETRY)
