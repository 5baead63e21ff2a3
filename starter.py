"""`spotcheck`: the operator command line (contract.md). `python starter.py …` is the same.

Every verb that prints data accepts --json and then prints one JSON document on stdout and
nothing else. Errors go to stderr with a non-zero exit code and name the bad input.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import gc
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine

from db.engine import make_engine, migrate
from runtime import config

EXIT_REFUSED = 2  # bad input or a refused command: nothing changed
EXIT_FAILED = 1


class UsageError(Exception):
    """A command the operator must correct; printed without a traceback."""


def database(settings: config.Settings) -> Engine:
    engine = make_engine(settings.database_url)
    migrate(engine)  # every command that touches the database first brings its schema up to date
    return engine


def _year(text: str) -> int:
    """--year: a plan year (2000-2999, as in the plan file)."""
    try:
        year = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a year (YYYY)") from None
    if not 2000 <= year <= 2999:
        raise argparse.ArgumentTypeError(f"{text[:40]} is not a year from 2000 to 2999")
    return year


def _draw_seq(text: str) -> int:
    """--draw-seq: a draw's number (1, 2, …)."""
    try:
        seq = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a draw number (1, 2, …)") from None
    if not 1 <= seq <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text[:40]} is not a draw number (1, 2, …)")
    return seq


def _output(option: str, value: str) -> Path:
    """A file a command writes: checked before anything is read or written."""
    path = Path(value).resolve()
    if path.is_dir():
        raise UsageError(f"{option} {value}: is a directory; name the file to write")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {value}: directory {path.parent} does not exist")
    return path


def emit(args, data, text: str | None = None) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, default=str, indent=1))
    elif text is not None:
        print(text)
    else:
        print(json.dumps(data, ensure_ascii=False, default=str, indent=2))


# --- server and worker ---------------------------------------------------------------------------
def cmd_server(args, settings):
    from runtime.server import run_server

    return asyncio.run(run_server(Path(args.data_dir or settings.data_dir), port=args.port, ui_port=args.ui_port))


def cmd_worker(args, settings):
    import worker

    return worker.main(["--queue", args.queue] if args.queue else [])


def cmd_codec_server(args, settings):
    from runtime import logs
    from runtime.codec import codec_for
    from runtime.codec_server import DEFAULT_CORS_ORIGIN, CodecServer

    codec = codec_for(settings)
    if codec is None:
        raise UsageError("SPOTCHECK_CODEC_KEYS is not set: no key to encode or decode with (docs/codec.md)")
    logs.configure()
    try:
        server = CodecServer(codec, host=args.host, port=args.port, cors_origins=args.cors_origin or [DEFAULT_CORS_ORIGIN])
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error}") from error
    server.serve()


# --- directories and the plan --------------------------------------------------------------------
def cmd_import(args, settings):
    from registry.importer import import_directory
    from runtime.progress import progress

    engine = database(settings)
    with progress(f"import {Path(args.file).name}", json_output=args.json) as bar:  # a terminal only
        summary = import_directory(engine, args.kind, Path(args.file), now=datetime.now(timezone.utc),
                                   progress=bar.update)
    data = {"kind": summary.kind, "file": summary.file_name, "rows_read": summary.rows_read, "added": summary.added,
            "changed": summary.changed, "unchanged": summary.unchanged, "batch_id": summary.batch_id}
    emit(args, data, f"{args.kind}: {summary.rows_read} rows read, {summary.added} added, {summary.changed} changed, "
                     f"{summary.unchanged} unchanged")


async def cmd_plan_start(args, settings):
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from domain.records import PlanRun
    from runtime.client import connect
    from store.plans import load_plan
    from workflows.common import TASK_QUEUE, plan_workflow_id
    from workflows.plan import AnnualPlanWorkflow

    plan, _ = load_plan(database(settings), Path(args.file).read_bytes(), args.file)
    client = await connect(settings)
    try:
        await client.start_workflow(AnnualPlanWorkflow.run, PlanRun(plan_code=plan.plan_code),
                                    id=plan_workflow_id(plan.plan_code), task_queue=TASK_QUEUE,
                                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        started = True
    except WorkflowAlreadyStartedError:
        started = False
    emit(args, {"plan_code": plan.plan_code, "started": started, "tasks": len(plan.tasks)},
         f"plan {plan.plan_code}: " + (f"started with {len(plan.tasks)} tasks" if started
                                       else "already started; not started twice"))


async def cmd_plan_adjust(args, settings):
    from domain.records import Adjustment
    from domain.plan import canonical_json
    from runtime.client import connect
    from store.plans import validate_added_task
    from workflows.common import plan_workflow_id
    from workflows.plan import AnnualPlanWorkflow

    if args.add_task:
        task = validate_added_task(database(settings), args.plan, Path(args.add_task).read_bytes(), args.add_task)
        adjustment = Adjustment(kind="add", task_id=task.task_id, reason=args.reason, approver=args.approver,
                                task_document=canonical_json(task))
    else:
        adjustment = Adjustment(kind="cancel", task_id=args.cancel_task, reason=args.reason, approver=args.approver)
    client = await connect(settings)
    handle = client.get_workflow_handle_for(AnnualPlanWorkflow.run, plan_workflow_id(args.plan))
    if await handle.query(AnnualPlanWorkflow.last_adjustment) == adjustment:
        emit(args, {"plan_code": args.plan, "adjustment": adjustment.kind, "task_id": adjustment.task_id,
                    "already_recorded": True}, f"already recorded: {adjustment.kind} {adjustment.task_id}")
        return
    # One id across this client's retries: a retry of an accepted adjustment is answered, not repeated.
    update_id = "adjust-" + hashlib.sha256(adjustment.model_dump_json().encode()).hexdigest()[:16]
    message = await _update(handle, AnnualPlanWorkflow.adjust, adjustment, update_id)
    emit(args, {"plan_code": args.plan, "adjustment": adjustment.kind, "task_id": adjustment.task_id,
                "message": message}, message)


async def cmd_plan_schedule(args, settings):
    from zoneinfo import ZoneInfo

    from runtime.client import connect
    from runtime.schedule import check_template, read_template, store_template, template_problems, upsert_schedule

    engine = database(settings)  # templates are stored in the project database
    name, raw = args.template, None
    if args.file:
        name, raw = Path(args.file).stem, Path(args.file).read_bytes()
        check_template(name, raw, args.file)  # refused before anything changes
    elif name:
        raw = read_template(engine, name)
    result = await upsert_schedule(await connect(settings), template=name, cron=args.cron, time_zone=args.tz)
    if args.file:
        store_template(engine, name, raw, args.file)
    zone = ZoneInfo(result.time_zone)
    warnings = []
    if result.next_action_times:  # the next year's plan, checked against today's directories
        raw = raw or read_template(engine, result.template)
        year = result.next_action_times[0].astimezone(zone).year
        warnings = template_problems(engine, raw, year)
    data = {**result.as_json(), "warnings": warnings}
    times = ", ".join(t.astimezone(zone).strftime("%Y-%m-%d %H:%M") for t in result.next_action_times[:3])
    text = (f"schedule {result.schedule_id} {'created' if result.created else 'updated'}: template {result.template}, "
            f"cron {result.cron!r} {result.time_zone}, overlap {result.overlap}"
            + (" (paused)" if result.paused else "")
            + f"\nnext runs ({result.time_zone}): {times or 'none'}"
            + "".join(f"\nwarning: {w}" for w in warnings))
    emit(args, data, text)


async def _update(handle, update, command, update_id: str | None = None):
    from temporalio.client import WorkflowUpdateFailedError

    from runtime.commands import reasons

    try:
        return await handle.execute_update(update, command, id=update_id)
    except WorkflowUpdateFailedError as error:
        raise UsageError(f"refused: {reasons(error.cause)}") from error


# --- tasks ---------------------------------------------------------------------------------------
async def cmd_task_list(args, settings):
    from runtime.client import connect
    from runtime.listing import BadFilter, TaskFilters, list_tasks
    from runtime.queries import task_rows

    try:
        filters = TaskFilters(stage=args.stage, unit=args.unit, region=args.region, year=args.year,
                              overdue=args.overdue)
    except BadFilter as error:
        raise UsageError(str(error)) from None
    with database(settings).connect() as connection:
        rows = task_rows(connection, plan=args.plan)
    rows = await list_tasks(await connect(settings), rows, filters)
    lines = [f"{r['task_id']:<24} {r['unit']:<12} {r['stage'] or 'not started':<16} "
             + " ".join(f"{s}={n}" for s, n in sorted(r["targets"].items()))
             + (f"  overdue={r['overdue']}" if r["overdue"] else "") for r in rows]
    emit(args, rows, "\n".join(lines) if lines else "no tasks")


async def cmd_task_show(args, settings):
    from sqlalchemy import func, select

    from db import schema
    from runtime.client import connect
    from workflows.common import task_workflow_id
    from workflows.task import InspectionTaskWorkflow

    client = await connect(settings)
    status = await client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(args.task_id)).query(
        InspectionTaskWorkflow.status)
    t = schema.targets
    with database(settings).connect() as connection:
        counts = dict(connection.execute(select(t.c.stage, func.count()).where(t.c.task_id == args.task_id)
                                         .group_by(t.c.stage)).all())
        overdue = [r.uscc for r in connection.execute(select(t.c.uscc).where(t.c.task_id == args.task_id, t.c.overdue)
                                                      .order_by(t.c.uscc))]
        due = connection.execute(select(func.min(t.c.publication_due)).where(
            t.c.task_id == args.task_id, t.c.published_at.is_(None))).scalar()
        code = connection.execute(select(schema.plan_tasks.c.document).where(
            schema.plan_tasks.c.task_id == args.task_id)).scalar()
    data = {"task_id": args.task_id, "task_code": json.loads(code)["task_code"] if code else None,
            "stage": status.stage.value, "targets": counts, "overdue": overdue,
            "next_deadline": due.isoformat() if due else None, "started": status.started,
            "finished": status.finished, "targets_total": status.targets_total}
    emit(args, data)


async def cmd_task_history(args, settings):
    from runtime.archive import ArchiveAltered, HistoryArchive, verify_chain
    from runtime.client import connect
    from runtime.timeline import timeline

    check = None
    if args.verify_archive:  # the whole chain first: a timeline read from a broken archive would mislead
        check = verify_chain(database(settings))
        if not check.ok:
            emit(args, {"archive": check.as_json(), "events": None}, check.text())
            print(f"spotcheck {args.verb}: {check.text()}", file=sys.stderr)
            return EXIT_FAILED
    client = await connect(settings)
    archive = HistoryArchive(lambda: database(settings))  # opened only for a history Temporal no longer has
    try:
        events = await timeline(client, args.task_id, args.target, archive=archive)
    except ArchiveAltered as error:
        print(f"spotcheck {args.verb}: {error}", file=sys.stderr)
        return EXIT_FAILED
    text = "\n".join(f"{e['at']}  {e['event']:<22} {e['actor'] or '':<12} {e['target'] or '':<20} "
                     f"{e['details']}" for e in events)
    if archive.used and not args.json:
        print(f"({len(archive.used)} of these workflows no longer in Temporal: read from the history archive)",
              file=sys.stderr)
    if check is None:
        emit(args, events, text)
    else:  # --verify-archive: one document with both
        emit(args, {"archive": check.as_json(), "events": events}, f"{text}\n{check.text()}".lstrip("\n"))


# --- the history archive -------------------------------------------------------------------------
async def cmd_archive_run(args, settings):
    from activities.archive import ArchiveBatch, archive_pass
    from runtime.client import connect

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise UsageError(f"--since {args.since!r}: not an ISO 8601 instant "
                             "(e.g. 2025-03-01T00:00:00+08:00)") from None
        if since.tzinfo is None:
            raise UsageError(f"--since {args.since!r}: give the time zone (e.g. +08:00 or Z)")
    engine = database(settings)
    client = await connect(settings)
    batch = ArchiveBatch(after_close_time=since, full=args.full)
    total = await archive_pass(client, engine, batch)  # the scheduled workflow's activity runs the same
    while total.more:
        total = total.plus(await archive_pass(client, engine, batch))
    data = total.model_dump(mode="json")
    emit(args, data, f"archived {total.archived} histories ({total.already} already archived, {total.gone} gone "
                     f"from the server first); chain head: "
                     + (f"entry {total.head_seq} {total.head_hash}" if total.head_seq is not None else "empty"))


async def cmd_archive_schedule(args, settings):
    from zoneinfo import ZoneInfo

    from runtime.archive import upsert_archive_schedule
    from runtime.client import connect

    result = await upsert_archive_schedule(await connect(settings), cron=args.cron, time_zone=args.tz)
    zone = ZoneInfo(result.time_zone)
    times = ", ".join(t.astimezone(zone).strftime("%Y-%m-%d %H:%M") for t in result.next_action_times[:3])
    emit(args, result.as_json(),
         f"schedule {result.schedule_id} {'created' if result.created else 'updated'}: cron {result.cron!r} "
         f"{result.time_zone}" + (" (paused)" if result.paused else "")
         + f"\nnext runs ({result.time_zone}): {times or 'none'}")


async def cmd_task_signal(args, settings):
    from domain.records import FieldSignal
    from runtime.client import connect
    from workflows.common import target_workflow_id
    from workflows.target import TargetInspectionWorkflow

    client = await connect(settings)
    handle = client.get_workflow_handle_for(TargetInspectionWorkflow.run, target_workflow_id(args.task_id, args.uscc))
    await handle.signal(TargetInspectionWorkflow.field_signal, FieldSignal(kind=args.verb, inspector=args.inspector))
    emit(args, {"task_id": args.task_id, "uscc": args.uscc, "signal": args.verb}, f"{args.verb} logged")


# --- human steps on a target ---------------------------------------------------------------------
async def _target_command(args, settings, verb, command):
    from runtime.client import connect
    from runtime.commands import CommandRefused, send

    client = await connect(settings)
    try:
        outcome = await send(client, args.task_id, args.uscc, verb, command)
    except CommandRefused as refused:
        raise UsageError(f"refused: {refused}") from refused
    emit(args, {"task_id": args.task_id, "uscc": args.uscc, "accepted": outcome.accepted,
                "already_recorded": outcome.already_recorded, "message": outcome.message}, outcome.message)


def _command(model, **fields):
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise UsageError(f"invalid input: {problems}") from error


async def cmd_check_record(args, settings):
    from domain.records import CheckRecord

    await _target_command(args, settings, "check", _command(
        CheckRecord, inspectors=args.inspector, method=args.method, certificates_shown=args.certificates_shown,
        evidence=args.evidence or []))


async def cmd_result_enter(args, settings):
    from domain.records import ResultEntry

    findings = {}
    for finding in args.finding or []:
        point, _, outcome = finding.rpartition(":")
        if not point:
            raise UsageError(f"--finding {finding!r}: expected CHECKPOINT:pass|fail")
        findings[point] = outcome
    await _target_command(args, settings, "result", _command(
        ResultEntry, inspector=args.inspector, category=args.category, note=args.note or "", findings=findings))


async def cmd_result_review(args, settings):
    from domain.records import Review

    await _target_command(args, settings, "review", _command(
        Review, reviewer=args.reviewer, approve=args.approve, note=args.return_note or ""))


async def cmd_dispatch_assign(args, settings):
    from domain.records import ManualAssignment

    await _target_command(args, settings, "assign", _command(
        ManualAssignment, unit=args.unit, inspectors=args.inspector, by=args.by, reason=args.reason))


async def cmd_case_recheck(args, settings):
    from domain.records import Recheck

    await _target_command(args, settings, "recheck", _command(
        Recheck, inspector=args.inspector, passed=args.passed, note=args.note or ""))


async def cmd_draw_target(args, settings):
    from activities.directory import entity_name
    from domain.records import TargetedEntity
    from domain.uscc import uscc_problem
    from runtime.client import connect
    from workflows.common import task_workflow_id
    from workflows.task import InspectionTaskWorkflow

    problem = uscc_problem(args.uscc)
    if problem:
        raise UsageError(f"USCC {args.uscc!r}: {problem}")
    with database(settings).connect() as connection:
        if not entity_name(connection, args.uscc):
            raise UsageError(f"USCC {args.uscc} is not in the entity directory")
    client = await connect(settings)
    handle = client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(args.task_id))
    message = await _update(handle, InspectionTaskWorkflow.add_target,
                            _command(TargetedEntity, uscc=args.uscc, reason=args.reason))
    emit(args, {"task_id": args.task_id, "uscc": args.uscc, "message": message}, message)


async def cmd_draw_redraw(args, settings):
    from domain.records import Redraw
    from runtime.client import connect
    from workflows.common import task_workflow_id
    from workflows.task import InspectionTaskWorkflow

    client = await connect(settings)
    handle = client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(args.task_id))
    message = await _update(handle, InspectionTaskWorkflow.redraw,
                            _command(Redraw, reason=args.reason, approver=args.approver))
    emit(args, {"task_id": args.task_id, "message": message}, message)


async def cmd_draw_entropy(args, settings):
    from domain.records import EntropyEntry
    from runtime.client import connect
    from workflows.common import task_workflow_id
    from workflows.task import InspectionTaskWorkflow

    client = await connect(settings)
    handle = client.get_workflow_handle_for(InspectionTaskWorkflow.run, task_workflow_id(args.task_id))
    message = await _update(handle, InspectionTaskWorkflow.enter_entropy, _command(EntropyEntry, value=args.value))
    emit(args, {"task_id": args.task_id, "message": message}, message)


# --- audit packages (draw-protocol.md; runtime/audit_package.py) ---------------------------------
def cmd_draw_export(args, settings):
    from runtime.audit_package import export_draw
    from runtime.progress import progress

    _output("--record", args.record)
    _output("--population", args.population)
    engine = database(settings)
    with progress(f"export {args.task_id}", json_output=args.json) as bar:  # a terminal only
        data = export_draw(engine, args.task_id, args.draw_seq, record_path=args.record,
                           population_path=args.population, progress=bar.update)
    emit(args, data, f"draw {data['task_id']} #{data['draw_seq']} ({data['state']}): record → {data['record']}, "
                     f"{data['rows']} population rows → {data['population']} (auditors only: salt and risk classes)")


def cmd_draw_verify(args, settings):
    from runtime.audit_package import report_json, verify_against_database, verify_from_files
    from runtime.progress import progress

    if bool(args.record) != bool(args.population):
        raise UsageError("--record and --population go together (the audit package's two files)")
    if args.record and args.draw_seq is not None:
        raise UsageError("--draw-seq selects a draw in the database; the record file names its own draw_seq")
    if not args.record and not args.task_id:
        raise UsageError("name a TASK_ID (verify against the database) or --record R.json --population P.csv")
    engine = None if args.record else database(settings)  # the files alone need no database
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


def cmd_dispatch_export(args, settings):
    from runtime.audit_package import export_dispatch

    _output("--record", args.record)
    record = export_dispatch(database(settings), args.task_id, args.record)
    manual = sum(len(v) for v in record["manual"].values())
    emit(args, {"task_id": args.task_id, "record": args.record, "as_of": record["as_of"], "units": len(record["units"]),
                "teams": len(record["teams"]), "unstaffed": len(record["unstaffed"]), "manual": manual},
         f"dispatch {args.task_id} as of {record['as_of']}: {len(record['teams'])} teams, "
         f"{len(record['unstaffed'])} unstaffed, {manual} manual assignments → {args.record}")


# --- register, cases, metrics --------------------------------------------------------------------
async def cmd_publication_export(args, settings):
    from runtime.queries import publication_register

    with database(settings).connect() as connection:
        rows = publication_register(connection, args.year)
    print(json.dumps(rows, ensure_ascii=False, default=str, indent=1))


async def cmd_case_list(args, settings):
    from runtime.queries import case_list

    with database(settings).connect() as connection:
        rows = case_list(connection, task_id=args.task, state=args.state)
    emit(args, rows, "\n".join(f"{r['lead_id']:<48} {r['kind']:<17} {r['state']:<7} {r['entity_name']}"
                               for r in rows) or "no cases")


async def cmd_case_link(args, settings):
    from runtime.queries import link_case

    with database(settings).begin() as connection:
        case = link_case(connection, args.lead_id, args.decision_no)
    emit(args, case, ("already recorded: " if case["already_recorded"] else "linked: ")
         + f"{args.lead_id} → {args.decision_no}")


async def cmd_metrics(args, settings):
    from runtime.queries import metrics

    with database(settings).connect() as connection:
        data = metrics(connection, args.year).as_json()
    emit(args, data, "\n".join(f"{k:<26} {v['value']}  ({v['numerator']}/{v['denominator']})"
                               for k, v in data.items() if isinstance(v, dict)))


async def cmd_report(args, settings):
    import os
    import tempfile

    from runtime.report import render_report

    out = _output("--out", args.out)
    with database(settings).connect() as connection:
        document = render_report(connection, args.year)
    # Atomic: a reader sees the old file or the whole new one, never half of it.
    fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(document)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, out)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    emit(args, {"year": args.year, "path": str(out), "bytes": len(document.encode("utf-8"))}, str(out))


def cmd_demo(args, settings):
    from runtime.demo import WorkerDied, run_demo

    try:
        return asyncio.run(run_demo(settings, json_output=args.json))
    except WorkerDied as error:
        print(f"spotcheck demo: {error}", file=sys.stderr)
        return EXIT_FAILED


# --- the parser ----------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="spotcheck", description="双随机、一公开 inspections on Temporal.")
    verbs = root.add_subparsers(dest="verb", required=True)

    def verb(parent, name, handler, help_text, json_flag=True):
        p = parent.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON document")
        return p

    def group(name, help_text):
        return verbs.add_parser(name, help=help_text).add_subparsers(dest="sub", required=True)

    p = verb(verbs, "server", cmd_server, "start the embedded Temporal server", json_flag=False)
    p.add_argument("--port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=8233)
    p.add_argument("--data-dir")
    p = verb(verbs, "worker", cmd_worker, "run the workers", json_flag=False)
    p.add_argument("--queue")
    p = verb(verbs, "codec-server", cmd_codec_server, "decode/encode payloads for the Web UI and CLI "
             "(--codec-endpoint; docs/codec.md)", json_flag=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--cors-origin", action="append", metavar="URL",
                   help="a Web UI origin allowed to call it (repeatable; default http://127.0.0.1:8233)")
    p = verb(verbs, "import", cmd_import, "load or update a directory")
    p.add_argument("kind", choices=["units", "items", "entities", "inspectors"])
    p.add_argument("file")

    plan = group("plan", "the annual plan")
    p = verb(plan, "start", cmd_plan_start, "start the annual plan in the file")
    p.add_argument("file")
    p = verb(plan, "adjust", cmd_plan_adjust, "a published adjustment (R5)")
    p.add_argument("plan")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--add-task", metavar="FILE.json")
    action.add_argument("--cancel-task", metavar="TASK_ID")
    p.add_argument("--reason", required=True)
    p.add_argument("--approver", required=True)
    p = verb(plan, "schedule", cmd_plan_schedule, "create or update the yearly Schedule annual-plan")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--template", metavar="NAME", help="a template stored before (with --file NAME.json); "
                        "default: the schedule's current one")
    source.add_argument("--file", metavar="FILE", help="a plan file to store as template (named after the file)")
    p.add_argument("--cron", help='when it runs (default "0 6 1 3 *": 1 March 06:00)')
    p.add_argument("--tz", help="the cron's time zone (default Asia/Shanghai)")

    task = group("task", "inspection tasks")
    p = verb(task, "list", cmd_task_list, "tasks with their stage; a filter keeps a task when its workflow or one of "
             "its targets' matches all of them (search attributes)")
    p.add_argument("--plan", help="a plan code")
    p.add_argument("--stage", help="the task's stage or one of its targets'")
    p.add_argument("--unit", help="the task's unit or the unit of one of its targets")
    p.add_argument("--region", help="the region code of one of its targets")
    p.add_argument("--year", type=_year, help="the plan year")
    p.add_argument("--overdue", action="store_true", help="a target past a deadline")
    p = verb(task, "show", cmd_task_show, "one task's live state")
    p.add_argument("task_id")
    p = verb(task, "history", cmd_task_history, "the timeline, read from the event history (from the history "
             "archive once Temporal no longer has it)")
    p.add_argument("task_id")
    p.add_argument("--target", metavar="USCC")
    p.add_argument("--verify-archive", action="store_true", help="first recompute the whole archive's hash chain; "
                   "exit 1 naming the first broken entry")
    for name in ("accept", "arrive"):
        p = verb(task, name, cmd_task_signal, f"field signal: {name} (logged, gates nothing)")
        p.set_defaults(verb=name)
        p.add_argument("task_id")
        p.add_argument("uscc")
        p.add_argument("--inspector", required=True)

    draw = group("draw", "the verifiable draw")
    p = verb(draw, "target", cmd_draw_target, "add a targeted entity (before the freeze)")
    p.add_argument("task_id")
    p.add_argument("uscc")
    p.add_argument("--reason", required=True)
    p = verb(draw, "redraw", cmd_draw_redraw, "a redraw, only before dispatch")
    p.add_argument("task_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--approver", required=True)
    p = verb(draw, "entropy", cmd_draw_entropy, "enter the announced entropy value")
    p.add_argument("task_id")
    p.add_argument("value")
    p = verb(draw, "export", cmd_draw_export, "write the audit package (record and population: auditors only)")
    p.add_argument("task_id")
    p.add_argument("--record", required=True, metavar="R.json")
    p.add_argument("--population", required=True, metavar="P.csv")
    p.add_argument("--draw-seq", type=_draw_seq, metavar="N", help="default: the latest drawn")
    p = verb(draw, "verify", cmd_draw_verify, "recompute a draw: against the database (TASK_ID) or from an audit "
             "package's files; exit 0 only when every check passes, 1 on a mismatch, 2 on bad input")
    p.add_argument("task_id", nargs="?", help="optional with --record/--population: then the record must be its")
    p.add_argument("--record", metavar="R.json")
    p.add_argument("--population", metavar="P.csv")
    p.add_argument("--draw-seq", type=_draw_seq, metavar="N", help="against the database: default the latest drawn")

    dispatch = group("dispatch", "inspector dispatch")
    p = verb(dispatch, "assign", cmd_dispatch_assign, "a recorded manual assignment or substitution")
    p.add_argument("task_id")
    p.add_argument("uscc")
    p.add_argument("--unit", required=True)
    p.add_argument("--inspector", action="append", required=True)
    p.add_argument("--by", required=True)
    p.add_argument("--reason", required=True)
    p = verb(dispatch, "export", cmd_dispatch_export, "write the dispatch record (sc-dispatch-v1)")
    p.add_argument("task_id")
    p.add_argument("--record", required=True, metavar="D.json")

    check = group("check", "the on-site check")
    p = verb(check, "record", cmd_check_record, "the check was done")
    p.add_argument("task_id")
    p.add_argument("uscc")
    p.add_argument("--inspector", action="append", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--certificates-shown", action="store_true")
    p.add_argument("--evidence", action="append", metavar="URI#sha256")

    result = group("result", "results")
    p = verb(result, "enter", cmd_result_enter, "enter the result")
    p.add_argument("task_id")
    p.add_argument("uscc")
    p.add_argument("--inspector", required=True)
    p.add_argument("--category", required=True)
    p.add_argument("--note")
    p.add_argument("--finding", action="append", metavar="CHECKPOINT:pass|fail")
    p = verb(result, "review", cmd_result_review, "approve or return a result")
    p.add_argument("task_id")
    p.add_argument("uscc")
    p.add_argument("--reviewer", required=True)
    decision = p.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", action="store_true")
    decision.add_argument("--return", dest="return_note", metavar="NOTE")

    publication = group("publication", "the public register")
    p = verb(publication, "export", cmd_publication_export, "the public register (公示)", json_flag=False)
    p.add_argument("--year", type=_year)

    case = group("case", "follow-ups")
    p = verb(case, "list", cmd_case_list, "follow-ups")
    p.add_argument("--task")
    p.add_argument("--state")
    p = verb(case, "link", cmd_case_link, "record the penalty decision a case lead led to")
    p.add_argument("lead_id")
    p.add_argument("decision_no")
    p = verb(case, "recheck", cmd_case_recheck, "the re-check of an order (correction or publication)")
    p.add_argument("task_id")
    p.add_argument("uscc")
    p.add_argument("--inspector", required=True)
    outcome = p.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--passed", action="store_true")
    outcome.add_argument("--failed", dest="passed", action="store_false")
    p.add_argument("--note")

    archive = group("archive", "the hash-chained history archive in the project database")
    p = verb(archive, "run", cmd_archive_run, "archive the histories of closed workflows now (what the "
             "Schedule history-archive runs)")
    p.add_argument("--since", metavar="INSTANT", help="only workflows closed after this ISO 8601 instant "
                   "(default: since the archive's newest entry, less a day; everything when it is empty)")
    p.add_argument("--full", action="store_true", help="list every closed workflow the server still has")
    p = verb(archive, "schedule", cmd_archive_schedule, "create or update the Schedule history-archive "
             "(hourly by default; a paused schedule stays paused)")
    p.add_argument("--cron", help='when it runs (default "17 * * * *": hourly)')
    p.add_argument("--tz", help="the cron's time zone (default Asia/Shanghai)")

    p = verb(verbs, "metrics", cmd_metrics, "the four evaluation metrics")
    p.add_argument("--year", type=_year, required=True)
    p = verb(verbs, "report", cmd_report, "a self-contained HTML report of the year")
    p.add_argument("--year", type=_year, required=True)
    p.add_argument("--out", required=True, metavar="report.html")
    verb(verbs, "demo", cmd_demo, "the main job on embedded defaults")
    return root


def main(argv: list[str] | None = None) -> int:
    from domain.plan import PlanInvalid
    from registry.importer import ImportRejected
    from store.plans import PlanConflict
    from runtime.server import ServerError

    args = parser().parse_args(argv)
    settings = config.load()
    try:
        outcome = args.handler(args, settings)
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
        return outcome or 0
    except UnicodeEncodeError as error:  # an argument typed in another encoding (Python surrogate-escapes it)
        bad = [_raw(a) for a in (sys.argv[1:] if argv is None else argv) if not _utf8(a)]
        problem = f"argument {', '.join(bad)} is not UTF-8 text; set the terminal to UTF-8" if bad else error
        print(f"spotcheck {args.verb}: {problem}", file=sys.stderr)
        return EXIT_REFUSED
    except (UsageError, PlanInvalid, ImportRejected, PlanConflict, ServerError, LookupError, ValueError) as error:
        print(f"spotcheck {args.verb}: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as error:  # a file named on the command line: missing, a directory, not readable
        if error.filename is None and not isinstance(error, FileNotFoundError):
            raise
        where = "" if error.filename is None else f"{error.filename}: "
        print(f"spotcheck {args.verb}: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_REFUSED
    except RuntimeError as error:
        if "connect" in str(error).lower():
            print(f"spotcheck {args.verb}: cannot reach Temporal at {settings.temporal_address}: {error}"
                  " (start it with `spotcheck server` or set TEMPORAL_ADDRESS)", file=sys.stderr)
            return EXIT_FAILED
        raise
    finally:
        # A refused command's exception and traceback form a reference cycle that keeps the Temporal
        # client alive; freed only at interpreter shutdown, its Rust core then aborts the process
        # (SIGABRT, exit -6, temporalio/sdk-python#300). Free it while the interpreter is whole.
        gc.collect()


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raw(text: str) -> str:
    """An argument as the bytes typed, e.g. b'\\xd5\\xc5' for GBK."""
    try:
        return repr(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return ascii(text)


if __name__ == "__main__":
    sys.exit(main())
