"""The tasks as the database sees them: the rows of `task list` and the counts of `task show`.

Each takes a `Connection` (the caller owns the transaction), `task_summary` an `Engine` too.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, datetime

from db.engine import Connection, Engine
from domain.workdays import END_OF_DAY, SHANGHAI
from store import views


def task_rows(connection: Connection, plan: str | None = None) -> list[dict]:
    """The database's view of the tasks, of one plan or all (`task list` filters them by the search
    attributes and adds the live stage: runtime.listing).

    One row per task: task_id, task_code, plan_code, year, unit, partner_units, origin,
    cancelled_at, targets ({target stage: count}) and overdue (targets flagged overdue).
    """
    tasks = views.task_lines(connection, plan_code=plan)
    by_stage: dict[str, Counter] = defaultdict(Counter)
    late: Counter = Counter()
    for r in views.target_stage_counts(connection, plan_code=plan):
        by_stage[r.task_id][r.stage] = r.n
        late[r.task_id] += int(r.overdue or 0)
    rows = []
    for task in tasks:
        line = json.loads(task.document)
        partners = list(line.get("partner_units") or [])
        rows.append({
            "task_id": task.task_id, "task_code": line.get("task_code"), "plan_code": task.plan_code,
            "year": task.year, "unit": line.get("unit"), "partner_units": partners, "origin": task.origin,
            "cancelled_at": views.instant(task.cancelled_at) if task.cancelled_at else line.get("cancelled_at"),
            "targets": dict(sorted(by_stage[task.task_id].items())), "overdue": late[task.task_id],
        })
    return rows


def task_summary(engine_or_connection: Engine | Connection, task_id: str) -> dict:
    """What `task show` adds from the database to the workflow's status: task_code, targets
    ({target stage: count}), overdue (the USCCs of targets flagged overdue) and next_deadline: the
    earliest open deadline of the task, among the window's end while a target awaits its check, the
    publication deadlines of unpublished targets and the due dates of open orders (follow-ups)."""
    with views.reading(engine_or_connection) as connection:
        stages = views.target_stage_counts(connection, task_id=task_id)
        overdue = views.overdue_targets(connection, task_id)
        document = views.task_document(connection, task_id)
        line = json.loads(document) if document else None
        window = window_end(line["ends"]) if line and views.awaiting_check(connection, task_id) else None
        dues = [views.instant(due) for due in (
            window, views.next_publication_due(connection, task_id), views.next_order_due(connection, task_id))]
    earliest = min((datetime.fromisoformat(due) for due in dues if due is not None), default=None)
    return {"task_code": line["task_code"] if line else None,
            "targets": {r.stage: r.n for r in sorted(stages, key=lambda r: r.stage)}, "overdue": overdue,
            "next_deadline": earliest.isoformat() if earliest else None}


def window_end(ends: str) -> datetime:
    """The end of a task window's last day, Beijing time: the field work is due then (R31)."""
    return datetime.combine(date.fromisoformat(ends), END_OF_DAY, SHANGHAI)
