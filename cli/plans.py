"""Directories and the annual plan: `import`, `plan start|adjust|schedule`."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from cli.common import UsageError, Verbs, emit, operator, person
from domain.plan import PlanInvalid
from runtime.progress import progress
from service import approvals, plans
from service.imports import import_directory


def cmd_import(args, ctx):
    engine = ctx.engine()
    with progress(f"import {Path(args.file).name}", json_output=args.json) as bar:  # a terminal only
        summary = import_directory(engine, args.kind, Path(args.file), now=datetime.now(timezone.utc),
                                   progress=bar.update)
    data = {"kind": summary.kind, "file": summary.file_name, "rows_read": summary.rows_read, "added": summary.added,
            "changed": summary.changed, "unchanged": summary.unchanged, "batch_id": summary.batch_id}
    emit(args, data, f"{args.kind}: {summary.rows_read} rows read, {summary.added} added, {summary.changed} changed, "
                     f"{summary.unchanged} unchanged")


async def cmd_plan_start(args, ctx):
    try:
        started = await plans.start_plan(ctx, operator(), Path(args.file).read_bytes(), args.file,
                                         allow_past=args.allow_past)
    except PlanInvalid as invalid:  # name the flag that allows a past window: the domain's rule knows no door
        if args.allow_past or not any("wholly in the past" in p.reason for p in invalid.problems):
            raise
        raise UsageError(f"{invalid}; to enter a past window for the record, add --allow-past") from invalid
    emit(args, {"plan_code": started.plan_code, "started": started.started, "tasks": started.tasks},
         f"plan {started.plan_code}: " + (f"started with {started.tasks} tasks" if started.started
                                          else "already started; not started twice"))


def cmd_plan_adjust(args, ctx):
    add_task = (Path(args.add_task).read_bytes(), args.add_task) if args.add_task else None
    requested = approvals.request_adjustment(ctx, person(ctx), args.plan, reason=args.reason, add_task=add_task,
                                             cancel_task=args.cancel_task)
    emit(args, asdict(requested), requested.message)


async def cmd_plan_schedule(args, ctx):
    file = (Path(args.file).read_bytes(), args.file) if args.file else None
    scheduled = await plans.schedule_plan(ctx, operator(), template=args.template,
                                          file=file, cron=args.cron, time_zone=args.tz)
    result, warnings = scheduled.result, scheduled.warnings
    zone = ZoneInfo(result.time_zone)
    times = ", ".join(t.astimezone(zone).strftime("%Y-%m-%d %H:%M") for t in result.next_action_times[:3])
    text = (f"schedule {result.schedule_id} {'created' if result.created else 'updated'}: template {result.template}, "
            f"cron {result.cron!r} {result.time_zone}, overlap {result.overlap}"
            + (" (paused)" if result.paused else "")
            + f"\nnext runs ({result.time_zone}): {times or 'none'}"
            + "".join(f"\nwarning: {w}" for w in warnings))
    emit(args, {**result.as_json(), "warnings": warnings}, text)


def register(verbs: Verbs) -> None:
    p = verbs.add(None, "import", cmd_import, "load or update a directory")
    p.add_argument("kind", choices=["units", "items", "entities", "inspectors"])
    p.add_argument("file")

    p = verbs.add("plan", "start", cmd_plan_start, "start the annual plan in the file")
    p.add_argument("file")
    p.add_argument("--allow-past", action="store_true",
                   help="accept tasks whose window has already ended (a past year entered for the record)")
    p = verbs.add("plan", "adjust", cmd_plan_adjust, "ask for a published adjustment (R5; a planner of the plan's "
                  "unit, logged in); a supervisor carries it out with `spotcheck approve`")
    p.add_argument("plan")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--add-task", metavar="FILE.json")
    action.add_argument("--cancel-task", metavar="TASK_ID")
    p.add_argument("--reason", required=True)
    p = verbs.add("plan", "schedule", cmd_plan_schedule, "create or update the yearly Schedule annual-plan")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--template", metavar="NAME", help="a template stored before (with --file NAME.json); "
                        "default: the schedule's current one")
    source.add_argument("--file", metavar="FILE", help="a plan file to store as template (named after the file)")
    p.add_argument("--cron", help='when it runs (default "0 6 1 3 *": 1 March 06:00)')
    p.add_argument("--tz", help="the cron's time zone (default Asia/Shanghai)")
