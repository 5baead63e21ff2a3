"""The planner's commands on the annual plan: start it, adjust it (R5), schedule next year's."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.access import Actor
from domain.messages.plan import Adjustment, PlanRun
from domain.plan import canonical_json
from domain.workdays import SHANGHAI
from runtime.context import Context
from service import gateway
from service.plan_schedule import (
    ScheduleResult,
    check_template,
    read_template,
    store_template,
    template_problems,
    upsert_schedule,
)
from store.plans import load_plan, validate_added_task
from workflows.common import TASK_QUEUE, plan_workflow_id
from workflows.plan import AnnualPlanWorkflow


@dataclass(frozen=True)
class PlanStarted:
    plan_code: str
    started: bool  # False: it was already running; never started twice
    tasks: int


def _today() -> date:
    """The bureau's date: a task window in the past is judged against it."""
    return datetime.now(SHANGHAI).date()


async def start_plan(ctx: Context, actor: Actor, document: bytes, source: str, *,
                     allow_past: bool = False) -> PlanStarted:
    """Load and start the plan; a task whose window has ended is refused unless `allow_past` (a past year
    entered for the record)."""
    plan, _ = load_plan(ctx.engine(), document, source, today=_today(), allow_past=allow_past)
    try:
        await (await ctx.client()).start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=plan.plan_code),
                                    id=plan_workflow_id(plan.plan_code), task_queue=TASK_QUEUE,
                                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        started = True
    except WorkflowAlreadyStartedError:
        started = False
    return PlanStarted(plan.plan_code, started, len(plan.tasks))


def adjustment(ctx: Context, plan_code: str, *, reason: str, approver: str, add_task: tuple[bytes, str] | None = None,
               cancel_task: str | None = None, **by: str | None) -> Adjustment:
    """Add a task (its file, checked against the directories first) or cancel one."""
    if add_task is not None:
        task = validate_added_task(ctx.engine(), plan_code, *add_task, today=_today())
        return gateway.build(Adjustment, kind="add", task_id=task.task_id, reason=reason, approver=approver,
                             task_document=canonical_json(task), **by)
    return gateway.build(Adjustment, kind="cancel", task_id=cancel_task, reason=reason, approver=approver, **by)


async def adjust_plan(ctx: Context, plan_code: str, adjustment: Adjustment, *, update_id: str) -> str:
    """Carry out an approved adjustment (service.approvals: the supervisor's act, under the request's update id)."""
    handle = (await ctx.client()).get_workflow_handle_for(AnnualPlanWorkflow.run, plan_workflow_id(plan_code))
    return await gateway.update(handle, AnnualPlanWorkflow.adjust, adjustment, what=f"plan {plan_code}",
                                update_id=update_id)


@dataclass(frozen=True)
class Scheduled:
    result: ScheduleResult
    warnings: list[str]


async def schedule_plan(ctx: Context, actor: Actor, *, template: str | None = None,
                        file: tuple[bytes, str] | None = None, cron: str | None = None,
                        time_zone: str | None = None) -> Scheduled:
    """Create or update the yearly Schedule; a new template file is checked before anything changes."""
    engine = ctx.engine()  # templates are stored in the project database
    name, raw = template, None
    if file is not None:
        raw, source = file
        name = Path(source).stem
        check_template(name, raw, source)
    elif name:
        raw = read_template(engine, name)
    result = await upsert_schedule(await ctx.client(), template=name, cron=cron, time_zone=time_zone)
    if file is not None:
        store_template(engine, name, raw, file[1])
    warnings: list[str] = []
    if result.next_action_times:  # the next year's plan, checked against today's directories
        raw = raw or read_template(engine, result.template)
        year = result.next_action_times[0].astimezone(ZoneInfo(result.time_zone)).year
        warnings = template_problems(engine, raw, year)
    return Scheduled(result, warnings)
