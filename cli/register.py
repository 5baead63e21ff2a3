"""The public register, follow-ups and the year's figures: `publication export`, `case list|link`, `metrics`, `report`."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cli.common import Verbs, emit, output_path, shown, year
from read.metrics import metrics, metrics_by_unit, unit_line
from read.register import case_list, publication_register
from read.report import render_report
from service.cases import link_case


async def cmd_publication_export(args, ctx):
    with ctx.engine().connect() as connection:
        rows = publication_register(connection, args.year)
    emit(args, rows, "\n".join(f"{r['published_at']}  {r['kind']:<10} {r['task_id'] or r['plan_code'] or '':<24} "
                               f"{r['uscc'] or '':<18} {r['category'] or ''}".rstrip() for r in rows)
         or "no publications")


async def cmd_case_list(args, ctx):
    with ctx.engine().connect() as connection:
        rows = case_list(connection, task_id=args.task, state=args.state)
    emit(args, rows, "\n".join(f"{shown(r['lead_id']):<48} {r['kind']:<17} {r['state']:<7} {shown(r['entity_name'])}"
                               for r in rows) or "no cases")


async def cmd_case_link(args, ctx):
    with ctx.engine().begin() as connection:
        case = link_case(connection, args.lead_id, args.decision_no)
    emit(args, case, ("already recorded: " if case["already_recorded"] else "linked: ")
         + f"{shown(args.lead_id)} → {shown(case['decision_no'])}")


async def cmd_metrics(args, ctx):
    with ctx.engine().connect() as connection:
        data = metrics(connection, args.year).as_json()
        if args.by_unit:
            data["by_unit"] = metrics_by_unit(connection, args.year)
    lines = [f"{k:<26} {v['value']}  ({v['numerator']}/{v['denominator']})"
             for k, v in data.items() if k != "by_unit" and isinstance(v, dict)]
    for unit, figures in data.get("by_unit", {}).items():
        lines.append(f"{unit}: " + unit_line(figures))
    emit(args, data, "\n".join(lines))



async def cmd_report(args, ctx):
    out = output_path("--out", args.out)
    with ctx.engine().connect() as connection:
        document = render_report(connection, args.year)
    write_atomically(out, document)
    emit(args, {"year": args.year, "path": str(out), "bytes": len(document.encode("utf-8"))}, str(out))


def write_atomically(out: Path, document: str | bytes) -> None:
    """A reader sees the old file or the whole new one, never half of it."""
    fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(document.encode("utf-8") if isinstance(document, str) else document)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, out)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def register_publication(verbs: Verbs) -> None:
    p = verbs.add("publication", "export", cmd_publication_export, "the public register (公示)")
    p.add_argument("--year", type=year)


def register_cases(verbs: Verbs) -> None:
    p = verbs.add("case", "list", cmd_case_list, "follow-ups")
    p.add_argument("--task")
    p.add_argument("--state")
    p = verbs.add("case", "link", cmd_case_link, "record the penalty decision a case lead led to")
    p.add_argument("lead_id")
    p.add_argument("decision_no")


def register_figures(verbs: Verbs) -> None:
    p = verbs.add(None, "metrics", cmd_metrics, "the four evaluation metrics")
    p.add_argument("--year", type=year, required=True)
    p.add_argument("--by-unit", action="store_true", help="and per unit (a task counts for its lead unit)")
    p = verbs.add(None, "report", cmd_report, "a self-contained HTML report of the year")
    p.add_argument("--year", type=year, required=True)
    p.add_argument("--out", required=True, metavar="report.html")
