"""The public register, follow-ups and the year's figures: `publication export`, `case list|link`, `metrics`, `report`."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from cli.common import Verbs, emit, output_path, shown, year
from read.metrics import metrics
from read.register import case_list, publication_register
from read.report import render_report
from service.cases import link_case


async def cmd_publication_export(args, ctx):
    with ctx.engine().connect() as connection:
        rows = publication_register(connection, args.year)
    print(json.dumps(rows, ensure_ascii=False, default=str, indent=1))


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
    emit(args, data, "\n".join(f"{k:<26} {v['value']}  ({v['numerator']}/{v['denominator']})"
                               for k, v in data.items() if isinstance(v, dict)))


async def cmd_report(args, ctx):
    out = output_path("--out", args.out)
    with ctx.engine().connect() as connection:
        document = render_report(connection, args.year)
    write_atomically(out, document)
    emit(args, {"year": args.year, "path": str(out), "bytes": len(document.encode("utf-8"))}, str(out))


def write_atomically(out: Path, document: str) -> None:
    """A reader sees the old file or the whole new one, never half of it."""
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


def register_publication(verbs: Verbs) -> None:
    p = verbs.add("publication", "export", cmd_publication_export, "the public register (公示)", json_flag=False)
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
    p = verbs.add(None, "report", cmd_report, "a self-contained HTML report of the year")
    p.add_argument("--year", type=year, required=True)
    p.add_argument("--out", required=True, metavar="report.html")
