"""The human steps on a target: field signals, dispatch assign, check, result, review, re-check, each by the
logged-in user (`spotcheck login`)."""
from __future__ import annotations

from cli.common import UsageError, Verbs, emit, person
from service import targets


def _emit_outcome(args, outcome: targets.Outcome) -> None:
    emit(args, {"task_id": args.task_id, "uscc": args.uscc, "accepted": outcome.accepted,
                "already_recorded": outcome.already_recorded, "message": outcome.message}, outcome.message)


async def cmd_task_signal(args, ctx):
    message = await targets.field_signal(ctx, person(ctx), args.task_id, args.uscc, args.verb)
    emit(args, {"task_id": args.task_id, "uscc": args.uscc, "signal": args.verb}, message)


async def cmd_check_record(args, ctx):
    _emit_outcome(args, await targets.record_check(
        ctx, person(ctx), args.task_id, args.uscc, members=args.inspector,
        method=args.method, certificates_shown=args.certificates_shown, evidence=args.evidence or []))


def findings_of(values: list[str] | None) -> dict[str, str]:
    findings = {}
    for finding in values or []:
        point, _, outcome = finding.rpartition(":")
        if not point:
            raise UsageError(f"--finding {finding!r}: expected CHECKPOINT:pass|fail")
        findings[point] = outcome
    return findings


async def cmd_result_enter(args, ctx):
    findings = findings_of(args.finding)
    _emit_outcome(args, await targets.enter_result(
        ctx, person(ctx), args.task_id, args.uscc, category=args.category,
        findings=findings, note=args.note or ""))


async def cmd_result_review(args, ctx):
    _emit_outcome(args, await targets.review_result(
        ctx, person(ctx), args.task_id, args.uscc, approve=args.approve,
        note=args.return_note or ""))


async def cmd_dispatch_assign(args, ctx):
    _emit_outcome(args, await targets.assign_team(
        ctx, person(ctx), args.task_id, args.uscc, unit=args.unit,
        inspectors=args.inspector, reason=args.reason, load_cap_override=args.over_load_cap or ""))


async def cmd_case_recheck(args, ctx):
    _emit_outcome(args, await targets.record_recheck(
        ctx, person(ctx), args.task_id, args.uscc, passed=args.passed,
        note=args.note or ""))


def _target(p) -> None:
    p.add_argument("task_id")
    p.add_argument("uscc")


def register_signals(verbs: Verbs) -> None:
    for name in ("accept", "arrive"):
        p = verbs.add("task", name, cmd_task_signal, f"field signal: {name} (logged, gates nothing)")
        p.set_defaults(verb=name)
        _target(p)


def register_assign(verbs: Verbs) -> None:
    p = verbs.add("dispatch", "assign", cmd_dispatch_assign, "a recorded manual assignment or substitution")
    _target(p)
    p.add_argument("--unit", required=True)
    p.add_argument("--inspector", action="append", required=True, help="each member of the team")
    p.add_argument("--reason", required=True)
    p.add_argument("--over-load-cap", metavar="REASON", help="past the task's load cap, for this recorded reason")


def register(verbs: Verbs) -> None:
    p = verbs.add("check", "record", cmd_check_record, "the check was done")
    _target(p)
    p.add_argument("--inspector", action="append", required=True, help="each team member present")
    p.add_argument("--method", required=True)
    p.add_argument("--certificates-shown", action="store_true")
    p.add_argument("--evidence", action="append", metavar="URI#sha256")

    p = verbs.add("result", "enter", cmd_result_enter, "enter the result")
    _target(p)
    p.add_argument("--category", required=True)
    p.add_argument("--note")
    p.add_argument("--finding", action="append", metavar="CHECKPOINT:pass|fail")
    p = verbs.add("result", "review", cmd_result_review, "approve or return a result")
    _target(p)
    decision = p.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", action="store_true")
    decision.add_argument("--return", dest="return_note", metavar="NOTE")


def register_recheck(verbs: Verbs) -> None:
    p = verbs.add("case", "recheck", cmd_case_recheck, "the re-check of an order (correction or publication)")
    _target(p)
    outcome = p.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--passed", action="store_true")
    outcome.add_argument("--failed", dest="passed", action="store_false")
    p.add_argument("--note")
