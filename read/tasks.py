"""The tasks as the database sees them: the rows of `task list` and the counts of `task show`.

Each takes a `Connection` (the caller owns the transaction), `task_summary` an `Engine` too.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict

from db.engine import Connection, Engine
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
    ({target stage: count}), overdue (the USCCs of targets flagged overdue) and next_deadline
    (the earliest publication deadline among unpublished targets)."""
    with views.reading(engine_or_connection) as connection:
        stages = views.target_stage_counts(connection, task_id=task_id)
        overdue = views.overdue_targets(connection, task_id)
        due = views.next_publication_due(connection, task_id)
        document = views.task_document(connection, task_id)
    return {"task_code": json.loads(document)["task_code"] if document else None,
            "targets": {r.stage: r.n for r in sorted(stages, key=lambda r: r.stage)}, "overdue": overdue,
            "next_deadline": due.isoformat() if due else None}
