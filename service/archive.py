"""The operator's commands on the history archive: archive closed histories now (`archive run`), and the
Schedule "history-archive" that keeps the archive current (`archive schedule`).

The Schedule is created by the operator or, when missing, by the workers at start (so the audit trail
never depends on someone remembering it): `spotcheck archive schedule` creates it or updates it in place
(hourly by default; a paused schedule stays paused). `archive run` archives now, in the command-line
process, with the same code the scheduled workflow runs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError

from activities.archive import archive_pass
from domain.access import Actor
from domain.messages.archiver import ArchiveBatch, ArchiveSummary
from runtime.context import Context
from service.plan_schedule import check_time_zone, refused_cron
from workflows.archiver import HistoryArchiverWorkflow
from workflows.common import TASK_QUEUE

SCHEDULE_ID = "history-archive"
ARCHIVER_ID = "history-archive"  # the Schedule appends the scheduled time to each run's id
DEFAULT_CRON = "17 * * * *"  # hourly, off the top of the hour
DEFAULT_TIME_ZONE = "Asia/Shanghai"
# A run still going when the next is due: skip it (the next pass lists whatever is left). Missed runs
# (server down, schedule paused) are not caught up one by one: the first run after catches everything up.
OVERLAP = ScheduleOverlapPolicy.SKIP
CATCHUP_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class ArchiveScheduleResult:
    schedule_id: str
    created: bool
    cron: str
    time_zone: str
    paused: bool
    next_action_times: list[datetime]

    def as_json(self) -> dict:
        return {"schedule_id": self.schedule_id, "created": self.created, "cron": self.cron,
                "time_zone": self.time_zone, "overlap": OVERLAP.name.lower(), "paused": self.paused,
                "next_action_times": [t.isoformat() for t in self.next_action_times]}


def archive_schedule(cron: str, time_zone: str, task_queue: str = TASK_QUEUE,
                     state: ScheduleState | None = None) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            HistoryArchiverWorkflow.run, ArchiveBatch(), id=ARCHIVER_ID, task_queue=task_queue,
            static_summary="archive closed workflows' histories (hash-chained)"),
        spec=ScheduleSpec(cron_expressions=[cron], time_zone_name=time_zone),
        policy=SchedulePolicy(overlap=OVERLAP, catchup_window=CATCHUP_WINDOW),
        state=state or ScheduleState(note=f"history archive: cron {cron!r} {time_zone}"),
    )


async def upsert_archive_schedule(client: Client, *, cron: str | None = None, time_zone: str | None = None,
                                  task_queue: str = TASK_QUEUE,
                                  schedule_id: str = SCHEDULE_ID) -> ArchiveScheduleResult:
    """Create the schedule, or update its spec and action in place (its paused state is kept)."""
    cron, time_zone = cron or DEFAULT_CRON, time_zone or DEFAULT_TIME_ZONE
    check_time_zone(time_zone)
    handle = client.get_schedule_handle(schedule_id)
    created = False
    try:
        await client.create_schedule(schedule_id, archive_schedule(cron, time_zone, task_queue))
        created = True
    except ScheduleAlreadyRunningError:
        def updater(update: ScheduleUpdateInput) -> ScheduleUpdate:
            state = dataclasses.replace(update.description.schedule.state,
                                        note=f"history archive: cron {cron!r} {time_zone}")
            return ScheduleUpdate(schedule=archive_schedule(cron, time_zone, task_queue, state))

        try:
            await handle.update(updater)
        except RPCError as error:
            raise refused_cron(error, cron) from None
    except RPCError as error:
        raise refused_cron(error, cron) from None
    description = await handle.describe()
    return ArchiveScheduleResult(schedule_id=schedule_id, created=created, cron=cron, time_zone=time_zone,
                                 paused=description.schedule.state.paused,
                                 next_action_times=list(description.info.next_action_times))


async def ensure_archive_schedule(client: Client, task_queue: str = TASK_QUEUE) -> bool:
    """Create the hourly archive schedule unless one exists (an operator's changes to it are kept).
    True when this call created it. The workers call it at start, so the audit trail never depends on
    someone remembering `spotcheck archive schedule`."""
    try:
        await client.create_schedule(SCHEDULE_ID, archive_schedule(DEFAULT_CRON, DEFAULT_TIME_ZONE, task_queue))
        return True
    except ScheduleAlreadyRunningError:
        return False


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
