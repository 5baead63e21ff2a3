"""Read-side queries for the command line: the register, the cases, the metrics, the task list.

Everything takes a SQLAlchemy `Connection` (the caller owns the transaction) and runs on
PostgreSQL and SQLite alike: Core expressions only, list-valued and JSON columns decoded in Python.
Instants are compared as UTC: SQLite keeps a DateTime's wall time and drops its offset, and the
activities write UTC instants, so every instant this module binds is converted to UTC first, and
every instant it returns is an ISO 8601 string in UTC (a naive value read back from SQLite is UTC).

Outputs follow contract.md ("JSON outputs"); extra keys are allowed there and used sparingly.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Connection, and_, case, exists, func, or_, select, update

from db import schema
from domain.categories import CATEGORIES, FollowUpKind
from domain.metrics import Metrics, Ratio, year_end

# A result is accepted once approved (a unit that does not review approves on entry); these are
# the target stages from approval on.
ACCEPTED_STAGES = ("approved", "published", "follow_up", "closed")
PROBLEM_CATEGORIES = tuple(sorted(code for code, c in CATEGORIES.items() if c.problem))
FOLLOW_UP_STATES = ("open", "closed")
# Keys never shown in the public register, at any depth: an entity's credit-risk class (R29).
PRIVATE_KEYS = frozenset({"risk_class", "stratum"})

t, p, f, pt, pl = schema.targets, schema.publications, schema.follow_ups, schema.plan_tasks, schema.plans


# --- helpers -----------------------------------------------------------------------------------
def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass an aware instant")
    return moment.astimezone(timezone.utc)


def instant(value: datetime | None) -> str | None:
    """An instant read back from either database, as ISO 8601 in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite: stored as UTC wall time
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _in_year(column, year: int):
    return and_(column >= date(year, 1, 1), column < date(year + 1, 1, 1))


def _in_force(table, at: datetime):
    at = _utc(at)
    return and_(table.c.valid_from <= at, or_(table.c.valid_to.is_(None), table.c.valid_to > at))


def _line(document: str) -> dict:
    return json.loads(document)


def _cancelled(row) -> bool:
    """A task is cancelled when its row says so (the column; the task line may carry it too)."""
    return row.cancelled_at is not None or bool(_line(row.document).get("cancelled_at"))


def _public(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if k not in PRIVATE_KEYS}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def _count(connection: Connection, *where, table=t) -> int:
    return connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def _tasks_of_plans(year: int | None = None, plan_code: str | None = None):
    query = select(pt.c.task_id).join(pl, pl.c.plan_code == pt.c.plan_code)
    if year is not None:
        query = query.where(pl.c.year == year)
    if plan_code is not None:
        query = query.where(pt.c.plan_code == plan_code)
    return query


# --- metrics -----------------------------------------------------------------------------------
def metrics(connection: Connection, year: int, as_of: datetime | None = None) -> Metrics:
    """The year's four metrics (domain.metrics.Metrics has the definitions).

    `as_of` is "now" for the on-time rate's overdue results (a deadline passed before `as_of`
    with no publication); default the current instant. Pass it for reproducible figures.
    """
    as_of = _utc(as_of or datetime.now(timezone.utc))
    return Metrics(
        year=year,
        inspected_share=inspected_share(connection, year),
        joint_rate=joint_rate(connection, year),
        on_time_publication_rate=on_time_publication_rate(connection, year, as_of),
        problem_disposal_rate=problem_disposal_rate(connection, year),
    )


def inspected_share(connection: Connection, year: int) -> Ratio:
    inspected = _count(connection, t.c.kind == "random", t.c.stage.in_(ACCEPTED_STAGES), _in_year(t.c.check_date, year))
    e = schema.entities
    active = connection.execute(
        select(func.count(func.distinct(e.c.uscc))).where(_in_force(e, year_end(year)), e.c.status == "active")
    ).scalar_one()
    return Ratio(inspected, active)


def joint_rate(connection: Connection, year: int) -> Ratio:
    rows = connection.execute(
        select(pt.c.task_id, pt.c.document, pt.c.cancelled_at)
        .join(pl, pl.c.plan_code == pt.c.plan_code).where(pl.c.year == year)
    ).all()
    live = [r for r in rows if not _cancelled(r)]
    joint = [r for r in live if _line(r.document).get("partner_units")]
    return Ratio(len(joint), len(live))


def on_time_publication_rate(connection: Connection, year: int, as_of: datetime) -> Ratio:
    results = and_(p.c.kind == "result", p.c.year == year)
    published = _count(connection, results, table=p)
    on_time = _count(connection, results, p.c.on_time.is_(True), table=p)
    has_publication = exists().where(p.c.kind == "result", p.c.task_id == t.c.task_id, p.c.uscc == t.c.uscc)
    overdue = _count(
        connection, _in_year(t.c.check_date, year), t.c.stage != "cancelled",
        t.c.publication_due.is_not(None), t.c.publication_due < _utc(as_of),
        t.c.published_at.is_(None), ~has_publication,
    )
    return Ratio(on_time, published + overdue)


def problem_disposal_rate(connection: Connection, year: int) -> Ratio:
    problems = and_(t.c.stage.in_(ACCEPTED_STAGES), t.c.category.in_(PROBLEM_CATEGORIES),
                    _in_year(t.c.check_date, year))
    of_target = and_(f.c.task_id == t.c.task_id, f.c.uscc == t.c.uscc)
    disposed = and_(exists().where(of_target), ~exists().where(of_target, f.c.state != "closed"))
    return Ratio(_count(connection, problems, disposed), _count(connection, problems))


# --- the public register -------------------------------------------------------------------------
def publication_register(connection: Connection, year: int | None = None) -> list[dict]:
    """The register (公示) rows of `year` (all years when None), by publication time then id.

    Each row is the contract's keys from the columns, plus the published payload's own keys
    (the columns win on a clash). Never an entity's credit-risk class (R29): such keys are
    dropped at any depth, whatever a writer put in the payload. The internal timeliness columns
    (`due_at`, `on_time`) are for the metrics, not the public, and are left out.
    """
    query = select(p).order_by(p.c.published_at, p.c.publication_id)
    if year is not None:
        query = query.where(p.c.year == year)
    register = []
    for row in connection.execute(query).mappings():
        payload = _public(json.loads(row["payload"]))
        entry = dict(payload) if isinstance(payload, dict) else {"payload": payload}
        entry.update(
            publication_id=row["publication_id"], kind=row["kind"], published_at=instant(row["published_at"]),
            year=row["year"], plan_code=row["plan_code"], task_id=row["task_id"], uscc=row["uscc"],
            category=row["category"], unit=row["unit"],
        )
        register.append(entry)
    return register


# --- cases ----------------------------------------------------------------------------------------
def _case(row) -> dict:
    return {
        "lead_id": row["lead_id"], "kind": row["kind"], "task_id": row["task_id"], "task_code": row["task_code"],
        "uscc": row["uscc"], "entity_name": row["entity_name"], "category": row["category"], "state": row["state"],
        "opened_at": instant(row["opened_at"]), "closed_at": instant(row["closed_at"]),
        "due_at": instant(row["due_at"]), "closed_by": row["closed_by"], "decision_no": row["decision_no"],
    }


def case_list(connection: Connection, task_id: str | None = None, state: str | None = None) -> list[dict]:
    """Follow-ups (case leads, listings, orders, corrections), oldest first."""
    if state is not None and state not in FOLLOW_UP_STATES:
        raise ValueError(f"unknown case state {state!r}; one of: {', '.join(FOLLOW_UP_STATES)}")
    query = select(f).order_by(f.c.opened_at, f.c.lead_id)
    if task_id is not None:
        query = query.where(f.c.task_id == task_id)
    if state is not None:
        query = query.where(f.c.state == state)
    return [_case(row) for row in connection.execute(query).mappings()]


class CaseLinkConflict(ValueError):
    """The lead already carries another decision number."""


def link_case(connection: Connection, lead_id: str, decision_no: str) -> dict:
    """Record the penalty decision number (处罚决定书文号) a case lead led to.

    Returns the case (case_list shape) with `already_recorded`: True when the lead already carried
    this very number (a repeat is reported, not refused). Raises LookupError for an unknown lead,
    ValueError for a follow-up that is not a case lead or an empty number, and CaseLinkConflict
    (a ValueError) when the lead carries another number. The state is not changed: a lead closes
    when the case system accepts it, and the decision may come long after.
    """
    decision_no = (decision_no or "").strip()
    if not decision_no:
        raise ValueError(f"empty decision number for case lead {lead_id!r}")
    row = connection.execute(select(f).where(f.c.lead_id == lead_id)).mappings().first()
    if row is None:
        raise LookupError(f"case lead {lead_id!r} not found")
    if row["kind"] != FollowUpKind.CASE_LEAD.value:
        raise ValueError(f"{lead_id!r} is a {row['kind']} follow-up, not a case lead: only a case lead takes a decision number")
    # Conditional write: of two concurrent links, one records and the other re-reads and compares.
    linked = connection.execute(
        update(f).where(f.c.lead_id == lead_id, f.c.decision_no.is_(None)).values(decision_no=decision_no)
    ).rowcount == 1
    row = connection.execute(select(f).where(f.c.lead_id == lead_id)).mappings().one()
    if not linked and row["decision_no"] != decision_no:
        raise CaseLinkConflict(
            f"case lead {lead_id!r} already carries decision {row['decision_no']!r}; refusing {decision_no!r}")
    return {**_case(row), "already_recorded": not linked}


# --- tasks ----------------------------------------------------------------------------------------
def task_rows(connection: Connection, plan: str | None = None) -> list[dict]:
    """The database's view of the tasks, of one plan or all (`task list` filters them by the search
    attributes and adds the live stage: runtime.listing).

    One row per task: task_id, task_code, plan_code, year, unit, partner_units, origin,
    cancelled_at, targets ({target stage: count}) and overdue (targets flagged overdue).
    """
    query = (select(pt.c.task_id, pt.c.plan_code, pt.c.document, pt.c.origin, pt.c.cancelled_at, pl.c.year)
             .join(pl, pl.c.plan_code == pt.c.plan_code).order_by(pt.c.plan_code, pt.c.task_id))
    if plan is not None:
        query = query.where(pt.c.plan_code == plan)
    tasks = connection.execute(query).all()
    by_stage: dict[str, Counter] = defaultdict(Counter)
    late: Counter = Counter()
    counts = select(t.c.task_id, t.c.stage, func.count().label("n"),
                    func.sum(case((t.c.overdue.is_(True), 1), else_=0)).label("overdue"))
    if plan is not None:
        counts = counts.where(t.c.task_id.in_(_tasks_of_plans(plan_code=plan)))
    for r in connection.execute(counts.group_by(t.c.task_id, t.c.stage)):
        by_stage[r.task_id][r.stage] = r.n
        late[r.task_id] += int(r.overdue or 0)
    rows = []
    for task in tasks:
        line = _line(task.document)
        partners = list(line.get("partner_units") or [])
        rows.append({
            "task_id": task.task_id, "task_code": line.get("task_code"), "plan_code": task.plan_code,
            "year": task.year, "unit": line.get("unit"), "partner_units": partners, "origin": task.origin,
            "cancelled_at": instant(task.cancelled_at) if task.cancelled_at else line.get("cancelled_at"),
            "targets": dict(sorted(by_stage[task.task_id].items())), "overdue": late[task.task_id],
        })
    return rows


# --- the demo's summary ---------------------------------------------------------------------------
def year_summary(connection: Connection, plan_code: str, as_of: datetime | None = None) -> dict:
    """What the demo prints for a plan: its tasks, draws, results, publications, follow-ups, alerts,
    and the metrics of its year. Strata are internal (credit-risk classes): this is operator output,
    never part of the public register."""
    plan = connection.execute(select(pl.c.plan_code, pl.c.year).where(pl.c.plan_code == plan_code)).first()
    if plan is None:
        raise LookupError(f"plan {plan_code!r} not found")
    of_plan = _tasks_of_plans(plan_code=plan_code)
    tasks = task_rows(connection, plan=plan_code)

    dp, d = schema.draw_population, schema.draws
    strata = connection.execute(
        select(dp.c.stratum, func.count())
        .join(d, and_(d.c.task_id == dp.c.task_id, d.c.draw_seq == dp.c.draw_seq))
        .where(dp.c.selected.is_(True), d.c.state == "drawn", dp.c.task_id.in_(of_plan))
        .group_by(dp.c.stratum)
    ).all()
    kinds = connection.execute(
        select(t.c.kind, func.count()).where(t.c.task_id.in_(of_plan)).group_by(t.c.kind)).all()
    categories = connection.execute(
        select(t.c.category, func.count())
        .where(t.c.task_id.in_(of_plan), t.c.stage.in_(ACCEPTED_STAGES), t.c.category.is_not(None))
        .group_by(t.c.category)
    ).all()
    publications = connection.execute(
        select(p.c.on_time, func.count()).where(p.c.kind == "result", p.c.task_id.in_(of_plan)).group_by(p.c.on_time)
    ).all()
    follow_ups: dict[str, dict[str, int]] = defaultdict(lambda: {s: 0 for s in FOLLOW_UP_STATES})
    for kind, state, n in connection.execute(
        select(f.c.kind, f.c.state, func.count()).where(f.c.task_id.in_(of_plan)).group_by(f.c.kind, f.c.state)
    ):
        follow_ups[kind][state] = n
    a = schema.alerts
    alerts = {"reminder": 0, "escalation": 0}
    for kind, n in connection.execute(
        select(a.c.kind, func.count()).where(a.c.task_id.in_(of_plan)).group_by(a.c.kind)
    ):
        alerts[kind] = n
    return {
        "plan_code": plan.plan_code,
        "year": plan.year,
        "tasks": tasks,
        "task_counts": {"total": len(tasks), "cancelled": sum(1 for r in tasks if r["cancelled_at"]),
                        "joint": sum(1 for r in tasks if r["partner_units"] and not r["cancelled_at"])},
        "targets_by_stratum": dict(sorted(strata)),
        "targets_by_kind": dict(sorted(kinds)),
        "results_by_category": dict(sorted(categories)),
        "publications": {"on_time": sum(n for ok, n in publications if ok),
                         "late": sum(n for ok, n in publications if not ok)},
        "follow_ups": dict(sorted(follow_ups.items())),
        "alerts": dict(sorted(alerts.items())),
        "metrics": metrics(connection, plan.year, as_of).as_json(),
    }
