"""Reading tasks: `task list|show|history`."""
from __future__ import annotations

import sys

from cli.common import EXIT_FAILED, UsageError, Verbs, emit, fail, shown, year
from domain.uscc import uscc_problem
from read.archive import ArchiveAltered, HistoryArchive, verify_chain
from read.listing import BadFilter, TaskFilters, list_tasks
from read.tasks import task_rows, task_summary
from read.timeline import timeline
from service import gateway
from workflows.common import task_workflow_id
from workflows.task import InspectionTaskWorkflow


async def cmd_task_list(args, ctx):
    try:
        filters = TaskFilters(stage=args.stage, unit=args.unit, region=args.region, year=args.year,
                              overdue=args.overdue)
    except BadFilter as error:
        raise UsageError(str(error)) from None
    with ctx.engine().connect() as connection:
        rows = task_rows(connection, plan=args.plan)
    rows = await list_tasks(await ctx.client(), rows, filters)
    lines = [f"{shown(r['task_id']):<24} {shown(r['unit']):<12} {r['stage'] or 'not started':<16} "
             + " ".join(f"{s}={n}" for s, n in sorted(r["targets"].items()))
             + (f"  overdue={r['overdue']}" if r["overdue"] else "") for r in rows]
    emit(args, rows, "\n".join(lines) if lines else "no tasks")


async def cmd_task_show(args, ctx):
    client = await ctx.client()
    status = await gateway.query(
        client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(args.task_id)),
        InspectionTaskWorkflow.status, what=f"task {args.task_id}")
    summary = task_summary(ctx.engine(), args.task_id)
    data = {"task_id": args.task_id, "task_code": summary["task_code"], "stage": status.stage.value,
            "targets": summary["targets"], "overdue": summary["overdue"], "next_deadline": summary["next_deadline"],
            "started": status.started, "finished": status.finished, "targets_total": status.targets_total}
    emit(args, data)


async def cmd_task_history(args, ctx):
    problem = uscc_problem(args.target) if args.target is not None else None
    if problem:  # refused here: read as a workflow id, a huge one fails the gRPC call instead of naming nothing
        raise UsageError(f"--target {shown(args.target[:40])}: {problem}")
    check = None
    if args.verify_archive:  # the whole chain first: a timeline read from a broken archive would mislead
        check = verify_chain(ctx.engine())
        if not check.ok:
            emit(args, {"archive": check.as_json(), "events": None}, check.text())
            fail(args, check.text())
            return EXIT_FAILED
    client = await ctx.client()
    archive = HistoryArchive(lambda: ctx.engine())  # opened only for a history Temporal no longer has
    try:
        events = await timeline(client, args.task_id, args.target, archive=archive, engine=ctx.engine())
    except ArchiveAltered as error:
        fail(args, str(error))
        return EXIT_FAILED
    text = "\n".join(f"{e['at']}  {shown(e['event']):<22} {shown(e['actor']):<12} {shown(e['target']):<20} "
                     f"{shown(e['details'])}" for e in events)
    if archive.used and not args.json:
        print(f"({len(archive.used)} of these workflows no longer in Temporal: read from the history archive)",
              file=sys.stderr)
    if check is None:
        emit(args, events, text)
    else:  # --verify-archive: one document with both
        emit(args, {"archive": check.as_json(), "events": events}, f"{text}\n{check.text()}".lstrip("\n"))


def register(verbs: Verbs) -> None:
    p = verbs.add("task", "list", cmd_task_list, "tasks with their stage; a filter keeps a task when its workflow or "
                  "one of its targets' matches all of them (search attributes)")
    p.add_argument("--plan", help="a plan code")
    p.add_argument("--stage", help="the task's stage or one of its targets'")
    p.add_argument("--unit", help="the task's unit or the unit of one of its targets")
    p.add_argument("--region", help="the region code of one of its targets")
    p.add_argument("--year", type=year, help="the plan year")
    p.add_argument("--overdue", action="store_true", help="a target past a deadline")
    p = verbs.add("task", "show", cmd_task_show, "one task's live state")
    p.add_argument("task_id")
    p = verbs.add("task", "history", cmd_task_history, "the timeline, read from the event history (from the history "
                  "archive once Temporal no longer has it)")
    p.add_argument("task_id")
    p.add_argument("--target", metavar="USCC")
    p.add_argument("--verify-archive", action="store_true", help="first recompute the whole archive's hash chain; "
                   "exit 1 naming the first broken entry")
