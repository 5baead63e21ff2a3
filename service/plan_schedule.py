"""The yearly Schedule "annual-plan" and the plan templates it launches (`spotcheck plan schedule`).

One schedule, created or updated in place: running the command again changes the spec or the
template, never adds a second schedule. Overlap is ALLOW_ALL: last year's plan is still running
(its tasks end in the next year) when this year's launch is due, and the launcher itself is short;
with SKIP or BUFFER a still-running launcher would silently drop a year. Duplicates are prevented
by the plan's workflow id (`plan/{plan_code}`, REJECT_DUPLICATE), not by the overlap policy.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from temporalio.service import RPCError, RPCStatusCode

from db.engine import Engine
from domain.launch import plan_bytes_for_year, valid_template_name
from domain.messages.launcher import LaunchInput
from domain.plan import PlanInvalid, check_plan
from domain.plan_file import parse_plan
from store.plans import plan_directory, put_template, stored_template
from workflows.common import TASK_QUEUE
from workflows.launcher import PlanLauncherWorkflow

SCHEDULE_ID = "annual-plan"
LAUNCHER_ID = "annual-plan"  # the Schedule appends the scheduled time to each run's id
DEFAULT_CRON = "0 6 1 3 *"  # 1 March, 06:00: the plan is due by 31 March (R3)
DEFAULT_TIME_ZONE = "Asia/Shanghai"
OVERLAP = ScheduleOverlapPolicy.ALLOW_ALL


class ScheduleRefused(ValueError):
    """Bad input to `plan schedule`; nothing was changed."""


@dataclass(frozen=True)
class ScheduleResult:
    schedule_id: str
    created: bool
    template: str
    cron: str
    time_zone: str
    overlap: str
    paused: bool
    next_action_times: list[datetime]

    def as_json(self) -> dict:
        return {"schedule_id": self.schedule_id, "created": self.created, "template": self.template,
                "cron": self.cron, "time_zone": self.time_zone, "overlap": self.overlap, "paused": self.paused,
                "next_action_times": [t.isoformat() for t in self.next_action_times]}


# --- templates -----------------------------------------------------------------------------------
def check_template(name: str, raw: bytes, source: str) -> None:
    """Refuse a template the store would refuse (bad name, not a plan file), before anything changes.

    Only its shape is checked here (`parse_plan`); the directories are checked against each year's
    plan made from it (`template_problems`, and again when the launcher stores the plan).
    """
    check_template_name(name, option=f"{source}:")
    parse_plan(raw, source)


def check_template_name(name: str, option: str = "--template") -> None:
    if not valid_template_name(name):
        raise ScheduleRefused(f"{option} template name {name!r}: use 1-64 of A-Z a-z 0-9 . _ - "
                              "(not starting with a dot)")


def store_template(engine: Engine, name: str, raw: bytes, source: str) -> bool:
    """Validate the plan file and store it as template NAME, replacing an older one of that name
    (store.plans.put_template); True when the row was inserted or replaced."""
    check_template(name, raw, source)
    document = raw.decode("utf-8")  # parse_plan refused anything else
    return put_template(engine, name, document, hashlib.sha256(raw).hexdigest())


def read_template(engine: Engine, name: str) -> bytes:
    """The template stored as NAME (`--template NAME`), refused when there is none."""
    check_template_name(name)
    raw = stored_template(engine, name)
    if raw is None:
        raise ScheduleRefused(f"--template {name}: no stored template {name} "
                              "(store one with --file FILE, named after the file)")
    parse_plan(raw, f"template {name}")
    return raw


def template_problems(engine: Engine, raw: bytes, year: int) -> list[str]:
    """What the directories say against the template's plan for `year` (it is launched only if none)."""
    plan = parse_plan(plan_bytes_for_year(raw, year), f"plan for {year}")
    try:
        check_plan(plan, plan_directory(engine))
    except PlanInvalid as error:
        return [f"{plan.plan_code}: {problem}" for problem in error.problems]
    return []


# --- the schedule --------------------------------------------------------------------------------
def check_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleRefused(f"--tz {name!r}: not a known IANA time zone (e.g. Asia/Shanghai)") from None


def annual_plan_schedule(template: str, cron: str, time_zone: str, task_queue: str = TASK_QUEUE,
                         state: ScheduleState | None = None) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PlanLauncherWorkflow.run, LaunchInput(template=template), id=LAUNCHER_ID, task_queue=task_queue,
            static_summary=f"annual plan from template {template}"),
        spec=ScheduleSpec(cron_expressions=[cron], time_zone_name=time_zone),
        policy=SchedulePolicy(overlap=OVERLAP),
        state=state or ScheduleState(note=note(template, cron, time_zone)),
    )


def note(template: str, cron: str, time_zone: str) -> str:
    return f"annual inspection plan: template {template}, cron {cron!r} {time_zone}"


async def current_template(client: Client, description) -> str | None:
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.args:
        return None
    try:
        [launch] = await client.data_converter.decode(list(action.args), [LaunchInput])
    except Exception:  # noqa: BLE001 - another workflow's schedule of that id: the caller must name a template
        return None
    return launch.template


async def upsert_schedule(client: Client, *, template: str | None, cron: str | None = None,
                          time_zone: str | None = None, task_queue: str = TASK_QUEUE,
                          schedule_id: str = SCHEDULE_ID) -> ScheduleResult:
    """Create the schedule, or update it in place when it exists.

    The spec is what this call says (`cron` and `time_zone` default to 1 March 06:00 Asia/Shanghai);
    without `template` the schedule keeps the template it has. A paused schedule stays paused.
    """
    cron = cron or DEFAULT_CRON
    time_zone = time_zone or DEFAULT_TIME_ZONE
    check_time_zone(time_zone)
    handle = client.get_schedule_handle(schedule_id)
    created = False
    chosen = template
    if template is not None:
        try:
            await client.create_schedule(schedule_id, annual_plan_schedule(template, cron, time_zone, task_queue))
            created = True
        except ScheduleAlreadyRunningError:
            pass  # it exists: update it in place
        except RPCError as error:
            raise refused_cron(error, cron) from None
    if not created:
        kept: dict[str, str] = {}

        async def updater(update: ScheduleUpdateInput) -> ScheduleUpdate:
            name = template or await current_template(client, update.description)
            if name is None:
                raise ScheduleRefused(f"schedule {schedule_id} has no plan template; name one with --template "
                                      "or --file")
            kept["template"] = name
            state = dataclasses.replace(update.description.schedule.state, note=note(name, cron, time_zone))
            return ScheduleUpdate(schedule=annual_plan_schedule(name, cron, time_zone, task_queue, state))

        try:
            await handle.update(updater)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise ScheduleRefused(f"no schedule {schedule_id} yet: name a template with --template or --file") \
                    from None
            raise refused_cron(error, cron) from None
        chosen = kept["template"]
    description = await handle.describe()
    return ScheduleResult(
        schedule_id=schedule_id, created=created, template=chosen, cron=cron, time_zone=time_zone,
        overlap=description.schedule.policy.overlap.name.lower(), paused=description.schedule.state.paused,
        next_action_times=list(description.info.next_action_times))


def refused_cron(error: RPCError, cron: str) -> Exception:
    """A server's refusal of a schedule's cron as the operator's error; any other RPC error as it is."""
    if error.status == RPCStatusCode.INVALID_ARGUMENT:
        return ScheduleRefused(f"--cron {cron!r}: refused by the server: {error.message}")
    return error
