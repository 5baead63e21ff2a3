"""The verifiable draw: `draw target|redraw|entropy|export|verify` and `dispatch export`."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from cli.common import EXIT_FAILED, UsageError, Verbs, draw_seq, emit, operator, output_path, person
from read.audit_package import export_dispatch, export_draw, report_json, verify_against_database, verify_from_files
from runtime.progress import progress
from service import approvals, draws


async def cmd_draw_target(args, ctx):
    message = await draws.add_targeted_entity(ctx, operator(), args.task_id,
                                              args.uscc, args.reason, args.legal_basis)
    emit(args, {"task_id": args.task_id, "uscc": args.uscc, "legal_basis": args.legal_basis, "message": message},
         message)


async def cmd_draw_redraw(args, ctx):
    requested = await approvals.request_redraw(ctx, person(ctx), args.task_id, reason=args.reason)
    emit(args, asdict(requested), requested.message)


async def cmd_draw_entropy(args, ctx):
    message = await draws.enter_entropy(ctx, operator(), args.task_id, args.value)
    emit(args, {"task_id": args.task_id, "message": message}, message)


def cmd_draw_export(args, ctx):
    output_path("--record", args.record)
    output_path("--population", args.population)
    engine = ctx.engine()
    with progress(f"export {args.task_id}", json_output=args.json) as bar:  # a terminal only
        data = export_draw(engine, args.task_id, args.draw_seq, record_path=args.record,
                           population_path=args.population, progress=bar.update)
    emit(args, data, f"draw {data['task_id']} #{data['draw_seq']} ({data['state']}): record → {data['record']}, "
                     f"{data['rows']} population rows → {data['population']} (auditors only: salt and risk classes)")


def cmd_draw_verify(args, ctx):
    if bool(args.record) != bool(args.population):
        raise UsageError("--record and --population go together (the audit package's two files)")
    if args.record and args.draw_seq is not None:
        raise UsageError("--draw-seq selects a draw in the database; the record file names its own draw_seq")
    if not args.record and not args.task_id:
        raise UsageError("name a TASK_ID (verify against the database) or --record R.json --population P.csv")
    engine = None if args.record else ctx.engine()  # the files alone need no database
    with progress(f"verify {args.task_id or Path(args.record).name}", json_output=args.json) as bar:  # a terminal only
        if args.record:
            report = verify_from_files(args.record, args.population, task_id=args.task_id, progress=bar.update)
            source = {"source": "files", "record": args.record, "population": args.population}
        else:
            report = verify_against_database(engine, args.task_id, args.draw_seq, progress=bar.update)
            source = {"source": "database"}
    data = report_json(report, task_id=args.task_id, draw_seq=args.draw_seq, **source)
    failed = sum(not c.ok for c in report.checks)
    emit(args, data, "\n".join(f"{'PASS' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in report.checks)
         + ("\nverified: every check passes" if report.ok else f"\nMISMATCH: {failed} of {len(report.checks)} checks fail"))
    return 0 if report.ok else EXIT_FAILED


def cmd_dispatch_export(args, ctx):
    output_path("--record", args.record)
    record = export_dispatch(ctx.engine(), args.task_id, args.record)
    manual = sum(len(v) for v in record["manual"].values())
    emit(args, {"task_id": args.task_id, "record": args.record, "as_of": record["as_of"], "units": len(record["units"]),
                "teams": len(record["teams"]), "unstaffed": len(record["unstaffed"]), "manual": manual},
         f"dispatch {args.task_id} as of {record['as_of']}: {len(record['teams'])} teams, "
         f"{len(record['unstaffed'])} unstaffed, {manual} manual assignments → {args.record}")


def register(verbs: Verbs) -> None:
    p = verbs.add("draw", "target", cmd_draw_target, "add a targeted entity (before the freeze)")
    p.add_argument("task_id")
    p.add_argument("uscc")
    p.add_argument("--reason", required=True)
    p.add_argument("--legal-basis", metavar="TEXT", help="the law, regulation or rule requiring the inspection: "
                   "needed for an entity the frequency cap excludes (R12: an A-class entity already drawn this "
                   "year; R14); recorded for auditors, never published")
    p = verbs.add("draw", "redraw", cmd_draw_redraw, "ask for a redraw, only before dispatch (a planner of the plan's "
                  "unit, logged in); a supervisor carries it out with `spotcheck approve`")
    p.add_argument("task_id")
    p.add_argument("--reason", required=True)
    p = verbs.add("draw", "entropy", cmd_draw_entropy, "enter the announced entropy value")
    p.add_argument("task_id")
    p.add_argument("value")
    p = verbs.add("draw", "export", cmd_draw_export, "write the audit package (record and population: auditors only)")
    p.add_argument("task_id")
    p.add_argument("--record", required=True, metavar="R.json")
    p.add_argument("--population", required=True, metavar="P.csv")
    p.add_argument("--draw-seq", type=draw_seq, metavar="N", help="default: the latest drawn")
    p = verbs.add("draw", "verify", cmd_draw_verify, "recompute a draw: against the database (TASK_ID) or from an "
                  "audit package's files; exit 0 only when every check passes, 1 on a mismatch, 2 on bad input")
    p.add_argument("task_id", nargs="?", help="optional with --record/--population: then the record must be its")
    p.add_argument("--record", metavar="R.json")
    p.add_argument("--population", metavar="P.csv")
    p.add_argument("--draw-seq", type=draw_seq, metavar="N", help="against the database: default the latest drawn")


def register_dispatch_export(verbs: Verbs) -> None:
    p = verbs.add("dispatch", "export", cmd_dispatch_export, "write the dispatch record (sc-dispatch-v1)")
    p.add_argument("task_id")
    p.add_argument("--record", required=True, metavar="D.json")
