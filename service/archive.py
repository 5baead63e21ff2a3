"""The operator's commands on the history archive: archive closed histories now, schedule the hourly pass."""
from __future__ import annotations

from datetime import datetime

from activities.archive import archive_pass

from domain.messages.archiver import ArchiveBatch, ArchiveSummary
from domain.access import Actor
from runtime.archive import ArchiveScheduleResult, upsert_archive_schedule
from runtime.context import Context


async def run_archive(ctx: Context, actor: Actor, *, since: datetime | None,
                      full: bool) -> ArchiveSummary:
    """Pass after pass until nothing is left: the scheduled workflow's activity runs the same pass."""
    batch = ArchiveBatch(after_close_time=since, full=full)
    client, engine = await ctx.client(), ctx.engine()
    total = await archive_pass(client, engine, batch)
    while total.more:
        total = total.plus(await archive_pass(client, engine, batch))
    return total


async def schedule_archive(ctx: Context, actor: Actor, *, cron: str | None,
                           time_zone: str | None) -> ArchiveScheduleResult:
    return await upsert_archive_schedule(await ctx.client(), cron=cron, time_zone=time_zone)
