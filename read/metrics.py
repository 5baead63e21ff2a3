"""The four metrics of a year, overall and per unit (R32), and the demo's summary of a plan.

Each takes a `Connection` (the caller owns the transaction). Instants passed in must be aware
(they are compared as UTC); instants returned are ISO 8601 strings in UTC.
"""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone

from db.engine import Connection
from domain.metrics import Metrics, Ratio, year_end
from read.tasks import task_rows
from store import views


def metrics(connection: Connection, year: int, as_of: datetime | None = None) -> Metrics:
    """The year's four metrics (domain.metrics.Metrics has the definitions).

    `as_of` is "now" for the on-time rate's overdue results (a deadline passed before `as_of`
    with no publication); default the current instant. Pass it for reproducible figures.
    """
    as_of = views.utc(as_of or datetime.now(timezone.utc))
    return Metrics(
        year=year,
        inspected_share=inspected_share(connection, year),
        joint_rate=joint_rate(connection, year),
        on_time_publication_rate=on_time_publication_rate(connection, year, as_of),
        problem_disposal_rate=problem_disposal_rate(connection, year),
    )


def inspected_share(connection: Connection, year: int) -> Ratio:
    return Ratio(views.inspected_targets(connection, year), views.active_entities(connection, year_end(year)))


def joint_rate(connection: Connection, year: int) -> Ratio:
    lines = [(task.cancelled_at, json.loads(task.document)) for task in views.task_lines(connection, year=year)]
    # A task is cancelled when its row says so (the column; the task line may carry it too).
    live = [line for cancelled_at, line in lines if cancelled_at is None and not line.get("cancelled_at")]
    return Ratio(sum(1 for line in live if line.get("partner_units")), len(live))


def on_time_publication_rate(connection: Connection, year: int, as_of: datetime) -> Ratio:
    published, on_time = views.result_publications(connection, year)
    return Ratio(on_time, published + views.overdue_unpublished(connection, year, as_of))


def problem_disposal_rate(connection: Connection, year: int) -> Ratio:
    return Ratio(*views.problem_results(connection, year))


def metrics_by_unit(connection: Connection, year: int, as_of: datetime | None = None) -> dict[str, dict]:
    """{unit: figures}: the year's metrics per unit (R32: per period and org unit), by unit code.

    A task belongs to its lead unit (the task line's `unit`), with everything it drew, published and
    followed up. Per unit there is no inspected *share*: the directory is not divided by unit, so the
    unit's count of inspected targets (户次) stands in its place; the three ratios are as for the year.
    """
    as_of = views.utc(as_of or datetime.now(timezone.utc))
    tasks = [(task.task_id, task.cancelled_at, json.loads(task.document)) for task in views.task_lines(connection, year=year)]
    unit_of = {task_id: line.get("unit") or "" for task_id, _, line in tasks}
    inspected = views.inspected_by_task(connection, year)
    published = views.result_publications_by_task(connection, year)
    overdue = views.overdue_unpublished_by_task(connection, year, as_of)
    problems = views.problem_results_by_task(connection, year)

    def total(counts: dict, unit: str, index: int | None = None) -> int:
        return sum(n if index is None else n[index] for task_id, n in counts.items() if unit_of.get(task_id) == unit)

    units = {}
    for unit in sorted(set(unit_of.values())):
        live = [line for task_id, cancelled_at, line in tasks
                if unit_of[task_id] == unit and cancelled_at is None and not line.get("cancelled_at")]
        on_time = total(published, unit, 1)
        units[unit] = {
            "inspected_targets": total(inspected, unit),
            "joint_rate": Ratio(sum(1 for line in live if line.get("partner_units")), len(live)).as_json(),
            "on_time_publication_rate": Ratio(on_time, total(published, unit, 0) + total(overdue, unit)).as_json(),
            "problem_disposal_rate": Ratio(total(problems, unit, 0), total(problems, unit, 1)).as_json(),
        }
    return units


def unit_line(figures: dict) -> str:
    """One unit's figures (`metrics_by_unit`) on a line: inspected=n, then each ratio as numerator/denominator."""
    return f"inspected={figures['inspected_targets']}  " + "  ".join(
        f"{name}={v['numerator']}/{v['denominator']}" for name, v in figures.items() if isinstance(v, dict))


def year_summary(connection: Connection, plan_code: str, as_of: datetime | None = None) -> dict:
    """What the demo prints for a plan: its tasks, draws, results, publications, follow-ups, alerts,
    and the metrics of its year. Strata are internal (credit-risk classes): this is operator output,
    never part of the public register."""
    plan = views.plan(connection, plan_code)
    if plan is None:
        raise LookupError(f"plan {plan_code!r} not found")
    tasks = task_rows(connection, plan=plan_code)
    categories: dict[str, int] = defaultdict(int)
    for category, _kind, n in views.result_counts(connection, plan_code=plan_code):
        categories[category] += n
    publications = views.result_publications_by_timeliness(connection, plan_code)
    follow_ups: dict[str, dict[str, int]] = defaultdict(lambda: {s: 0 for s in views.FOLLOW_UP_STATES})
    for kind, state, n in views.follow_up_counts(connection, plan_code=plan_code):
        follow_ups[kind][state] = n
    alerts = {"reminder": 0, "escalation": 0, **views.alert_counts(connection, plan_code=plan_code)}
    return {
        "plan_code": plan.plan_code,
        "year": plan.year,
        "tasks": tasks,
        "task_counts": {"total": len(tasks), "cancelled": sum(1 for r in tasks if r["cancelled_at"]),
                        "joint": sum(1 for r in tasks if r["partner_units"] and not r["cancelled_at"])},
        "targets_by_stratum": dict(sorted(views.selected_by_stratum(connection, plan_code))),
        "targets_by_kind": dict(sorted(views.targets_by_kind(connection, plan_code))),
        "results_by_category": dict(sorted(categories.items())),
        "publications": {"on_time": sum(n for ok, n in publications if ok),
                         "late": sum(n for ok, n in publications if not ok)},
        "follow_ups": dict(sorted(follow_ups.items())),
        "alerts": dict(sorted(alerts.items())),
        "metrics": metrics(connection, plan.year, as_of).as_json(),
        "metrics_by_unit": metrics_by_unit(connection, plan.year, as_of),
    }
