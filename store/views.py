"""Read-model queries: the rows and counts the read side (read/) shapes into what the doors show.

Plain rows, dicts and numbers, on PostgreSQL and SQLite alike: Core expressions only; JSON
columns come back as stored, for the caller to decode. Instants are compared as UTC: SQLite keeps
a DateTime's wall time and drops its offset, and the activities write UTC instants, so every
instant bound here is converted to UTC first (`utc`), and `instant` reads one back as ISO 8601 in UTC.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone

from sqlalchemy import Connection, Engine, and_, case, exists, func, or_, select

from db import schema
from domain.categories import CATEGORIES
from store import draws
from store.directory import task_line

# A result is accepted once approved (a unit that does not review approves on entry); these are
# the target stages from approval on.
_FETCH = 20_000  # rows a population stream holds at a time
ACCEPTED_STAGES = ("approved", "published", "follow_up", "closed")
PROBLEM_CATEGORIES = tuple(sorted(code for code, c in CATEGORIES.items() if c.problem))
FOLLOW_UP_STATES = ("open", "closed")

t, p, f, pt, pl = schema.targets, schema.publications, schema.follow_ups, schema.plan_tasks, schema.plans
d, ds, a = schema.draws, schema.draw_selection, schema.alerts


# --- helpers -----------------------------------------------------------------------------------
@contextmanager
def reading(handle: Engine | Connection) -> Iterator[Connection]:
    """The caller's connection as it is, or one opened on its engine for the duration."""
    if isinstance(handle, Connection):
        yield handle
    else:
        with handle.connect() as connection:
            yield connection


def utc(moment: datetime) -> datetime:
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
    at = utc(at)
    return and_(table.c.valid_from <= at, or_(table.c.valid_to.is_(None), table.c.valid_to > at))


def _count(connection: Connection, *where, table=t) -> int:
    return connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def _task_ids(year: int | None = None, plan_code: str | None = None):
    """The ids of the tasks of a plan year, of one plan, or of every plan."""
    query = select(pt.c.task_id).join(pl, pl.c.plan_code == pt.c.plan_code)
    if year is not None:
        query = query.where(pl.c.year == year)
    if plan_code is not None:
        query = query.where(pt.c.plan_code == plan_code)
    return query


# --- plans and tasks ---------------------------------------------------------------------------
def plan(connection: Connection, plan_code: str):
    """The plan's (plan_code, year), or None."""
    return connection.execute(select(pl.c.plan_code, pl.c.year).where(pl.c.plan_code == plan_code)).first()


def plans_of_year(connection: Connection, year: int) -> list:
    return connection.execute(select(pl).where(pl.c.year == year).order_by(pl.c.plan_code)).mappings().all()


def task_lines(connection: Connection, *, year: int | None = None, plan_code: str | None = None) -> list:
    """The tasks (task_id, plan_code, document, origin, cancelled_at, year) of a plan year, of one
    plan, or of every plan, by plan then task."""
    query = (select(pt.c.task_id, pt.c.plan_code, pt.c.document, pt.c.origin, pt.c.cancelled_at, pl.c.year)
             .join(pl, pl.c.plan_code == pt.c.plan_code).order_by(pt.c.plan_code, pt.c.task_id))
    if year is not None:
        query = query.where(pl.c.year == year)
    if plan_code is not None:
        query = query.where(pt.c.plan_code == plan_code)
    return connection.execute(query).all()


def task_document(connection: Connection, task_id: str) -> str | None:
    """The task's plan line (JSON), or None."""
    return connection.execute(select(pt.c.document).where(pt.c.task_id == task_id)).scalar()


def target_stage_counts(connection: Connection, *, plan_code: str | None = None, task_id: str | None = None) -> list:
    """(task_id, stage, n, overdue): targets per task and stage, and how many of them are flagged overdue."""
    query = select(t.c.task_id, t.c.stage, func.count().label("n"),
                   func.sum(case((t.c.overdue.is_(True), 1), else_=0)).label("overdue"))
    if plan_code is not None:
        query = query.where(t.c.task_id.in_(_task_ids(plan_code=plan_code)))
    if task_id is not None:
        query = query.where(t.c.task_id == task_id)
    return connection.execute(query.group_by(t.c.task_id, t.c.stage)).all()


def overdue_targets(connection: Connection, task_id: str) -> list[str]:
    """The USCCs of the task's targets flagged overdue, in order."""
    return [r.uscc for r in connection.execute(
        select(t.c.uscc).where(t.c.task_id == task_id, t.c.overdue).order_by(t.c.uscc))]


def next_publication_due(connection: Connection, task_id: str) -> datetime | None:
    """The earliest publication deadline among the task's unpublished targets."""
    return connection.execute(select(func.min(t.c.publication_due)).where(
        t.c.task_id == task_id, t.c.published_at.is_(None))).scalar()


def next_order_due(connection: Connection, task_id: str) -> datetime | None:
    """The earliest deadline among the task's open follow-ups (an order to correct or to publish)."""
    return connection.execute(select(func.min(f.c.due_at)).where(
        f.c.task_id == task_id, f.c.state == "open")).scalar()


def awaiting_check(connection: Connection, task_id: str) -> bool:
    """Whether a target of the task still waits for its check (dispatched, or unstaffed): its window is open."""
    return connection.execute(select(exists().where(
        t.c.task_id == task_id, t.c.stage.in_(("dispatched", "unstaffed"))))).scalar()


# --- metrics -----------------------------------------------------------------------------------
def inspected_targets(connection: Connection, year: int) -> int:
    """Random-draw targets with an accepted result, checked in `year`."""
    return _count(connection, t.c.kind == "random", t.c.stage.in_(ACCEPTED_STAGES), _in_year(t.c.check_date, year))


def active_entities(connection: Connection, at: datetime) -> int:
    e = schema.entities
    return connection.execute(
        select(func.count(func.distinct(e.c.uscc))).where(_in_force(e, at), e.c.status == "active")
    ).scalar_one()


def result_publications(connection: Connection, year: int) -> tuple[int, int]:
    """(published, on time): the year's result publications."""
    results = and_(p.c.kind == "result", p.c.year == year)
    return _count(connection, results, table=p), _count(connection, results, p.c.on_time.is_(True), table=p)


def overdue_unpublished(connection: Connection, year: int, as_of: datetime) -> int:
    """Results checked in `year` whose publication deadline passed before `as_of`, unpublished."""
    has_publication = exists().where(p.c.kind == "result", p.c.task_id == t.c.task_id, p.c.uscc == t.c.uscc)
    return _count(
        connection, _in_year(t.c.check_date, year), t.c.stage != "cancelled",
        t.c.publication_due.is_not(None), t.c.publication_due < utc(as_of),
        t.c.published_at.is_(None), ~has_publication,
    )


def pending_publications(connection: Connection, year: int, as_of: datetime) -> int:
    """Results checked in `year`, unpublished, whose deadline has not passed at `as_of`."""
    return _count(connection, _in_year(t.c.check_date, year), t.c.stage != "cancelled",
                  t.c.publication_due.is_not(None), t.c.publication_due >= utc(as_of), t.c.published_at.is_(None))


def problem_results(connection: Connection, year: int) -> tuple[int, int]:
    """(disposed, all): accepted problem results checked in `year`, and those whose every follow-up is closed."""
    problems = and_(t.c.stage.in_(ACCEPTED_STAGES), t.c.category.in_(PROBLEM_CATEGORIES),
                    _in_year(t.c.check_date, year))
    of_target = and_(f.c.task_id == t.c.task_id, f.c.uscc == t.c.uscc)
    disposed = and_(exists().where(of_target), ~exists().where(of_target, f.c.state != "closed"))
    return _count(connection, problems, disposed), _count(connection, problems)


# --- results, publications, follow-ups, alerts ----------------------------------------------------
def result_counts(connection: Connection, *, year: int | None = None, plan_code: str | None = None) -> list:
    """(category, kind, n): accepted results checked in `year`, or of the plan's tasks."""
    query = select(t.c.category, t.c.kind, func.count()).where(
        t.c.stage.in_(ACCEPTED_STAGES), t.c.category.is_not(None))
    if year is not None:
        query = query.where(_in_year(t.c.check_date, year))
    if plan_code is not None:
        query = query.where(t.c.task_id.in_(_task_ids(plan_code=plan_code)))
    return connection.execute(query.group_by(t.c.category, t.c.kind)).all()


def targets_by_kind(connection: Connection, plan_code: str) -> list:
    """(kind, n): the plan's targets, random and targeted."""
    return connection.execute(select(t.c.kind, func.count()).where(
        t.c.task_id.in_(_task_ids(plan_code=plan_code))).group_by(t.c.kind)).all()


def publications(connection: Connection, year: int | None = None) -> list:
    """The register's rows of `year` (all years when None), by publication time then id."""
    query = select(p).order_by(p.c.published_at, p.c.publication_id)
    if year is not None:
        query = query.where(p.c.year == year)
    return connection.execute(query).mappings().all()


def plan_publications(connection: Connection, year: int) -> dict:
    """{plan_code: (plan_code, published_at, payload)}: the year's published plans."""
    return {row.plan_code: row for row in connection.execute(
        select(p.c.plan_code, p.c.published_at, p.c.payload).where(p.c.kind == "plan", p.c.year == year))}


def adjustments_of_year(connection: Connection, year: int) -> list:
    """(published_at, plan_code, task_id, payload): the year's published plan adjustments, in order."""
    return connection.execute(
        select(p.c.published_at, p.c.plan_code, p.c.task_id, p.c.payload)
        .where(p.c.kind == "adjustment", p.c.year == year).order_by(p.c.published_at, p.c.publication_id)
    ).all()


def result_publications_by_timeliness(connection: Connection, plan_code: str) -> list:
    """(on_time, n): the result publications of the plan's tasks."""
    return connection.execute(
        select(p.c.on_time, func.count()).where(p.c.kind == "result", p.c.task_id.in_(_task_ids(plan_code=plan_code)))
        .group_by(p.c.on_time)).all()


def follow_up_counts(connection: Connection, *, checked_in: int | None = None, plan_code: str | None = None) -> list:
    """(kind, state, n): the follow-ups of results checked in the year `checked_in`, or of the plan's tasks."""
    query = select(f.c.kind, f.c.state, func.count())
    if checked_in is not None:
        query = query.join(t, and_(t.c.task_id == f.c.task_id, t.c.uscc == f.c.uscc)).where(
            _in_year(t.c.check_date, checked_in))
    if plan_code is not None:
        query = query.where(f.c.task_id.in_(_task_ids(plan_code=plan_code)))
    return connection.execute(query.group_by(f.c.kind, f.c.state)).all()


def linked_decisions(connection: Connection, checked_in: int) -> int:
    """Follow-ups of results checked in the year that carry a penalty decision number."""
    return connection.execute(
        select(func.count()).select_from(f).join(t, and_(t.c.task_id == f.c.task_id, t.c.uscc == f.c.uscc))
        .where(_in_year(t.c.check_date, checked_in), f.c.decision_no.is_not(None))).scalar_one()


def alert_counts(connection: Connection, *, year: int | None = None, plan_code: str | None = None) -> dict[str, int]:
    """{kind: n}: the alerts of a plan year's tasks, or of one plan's."""
    return dict(connection.execute(
        select(a.c.kind, func.count()).where(a.c.task_id.in_(_task_ids(year, plan_code))).group_by(a.c.kind)).all())


def escalations_of_year(connection: Connection, year: int) -> list:
    """(at, task_id, uscc, step, details): the escalations of the year's tasks, in order."""
    return connection.execute(
        select(a.c.at, a.c.task_id, a.c.uscc, a.c.step, a.c.details)
        .where(a.c.task_id.in_(_task_ids(year)), a.c.kind == "escalation").order_by(a.c.at, a.c.alert_id)
    ).all()


# --- draws -------------------------------------------------------------------------------------
def draws_of_year(connection: Connection, year: int) -> list:
    """Every draw row of the year's tasks, by task then draw."""
    return connection.execute(
        select(d).join(pt, pt.c.task_id == d.c.task_id).join(pl, pl.c.plan_code == pt.c.plan_code)
        .where(pl.c.year == year).order_by(d.c.task_id, d.c.draw_seq)
    ).mappings().all()


def selected_by_stratum(connection: Connection, plan_code: str) -> list:
    """(stratum, n): the entities selected by the plan's current (drawn) draws. Internal: strata are risk classes."""
    return connection.execute(
        select(ds.c.stratum, func.count())
        .join(d, and_(d.c.task_id == ds.c.task_id, d.c.draw_seq == ds.c.draw_seq))
        .where(d.c.state == "drawn", ds.c.task_id.in_(_task_ids(plan_code=plan_code)))
        .group_by(ds.c.stratum)
    ).all()


def draw_states(connection: Connection, task_id: str) -> list:
    """(draw_seq, state) of every draw of the task, in order."""
    return connection.execute(select(d.c.draw_seq, d.c.state).where(d.c.task_id == task_id).order_by(d.c.draw_seq)).all()


def draw_row(connection: Connection, task_id: str, draw_seq: int | None = None):
    """The draw `draw_seq`, or with None the task's latest one in state drawn; None when there is none."""
    query = select(d).where(d.c.task_id == task_id)
    if draw_seq is None:
        query = query.where(d.c.state == "drawn").order_by(d.c.draw_seq.desc()).limit(1)
    else:
        query = query.where(d.c.draw_seq == draw_seq)
    return connection.execute(query).mappings().first()


def draw_selection(connection: Connection, task_id: str, draw_seq: int) -> tuple[list[str], list[dict], list[dict]]:
    """(selected USCCs, targeted [{uscc, reason[, legal_basis]}], refused [{uscc, reason, excluded}]), each in
    byte order: what an audit package adds to a draw's public record, with the population salt. A legal basis
    (R12's exception) is for auditors; refused are the targeted entities the freeze excluded for want of one."""
    selected = [r.uscc for r in connection.execute(
        select(ds.c.uscc).where(ds.c.task_id == task_id, ds.c.draw_seq == draw_seq))]
    line, year = task_line(connection, task_id)
    frozen_at = connection.execute(select(d.c.frozen_at).where(d.c.task_id == task_id, d.c.draw_seq == draw_seq)
                                   ).scalar()
    excluded = draws.refused_targeted(connection, task_id, line, year, frozen_at) if frozen_at else {}
    tg = schema.targeted
    targeted, refused = [], []
    for r in connection.execute(select(tg.c.uscc, tg.c.reason, tg.c.legal_basis).where(tg.c.task_id == task_id)):
        if r.uscc in excluded:
            refused.append({"uscc": r.uscc, "reason": r.reason, "excluded": excluded[r.uscc]})
        else:
            targeted.append({"uscc": r.uscc, "reason": r.reason, **({"legal_basis": r.legal_basis} if r.legal_basis else {})})
    return sorted(selected), sorted(targeted, key=lambda t: t["uscc"]), sorted(refused, key=lambda t: t["uscc"])


def draw_population(connection: Connection, task_id: str, draw_seq: int) -> Iterator[tuple[str, str]]:
    """The draw's frozen population, (uscc, stratum) in byte order, streamed: stored or recomputed (store.draws)."""
    query = draws.population_query(connection, draws.draw(connection, task_id, draw_seq))
    for row in connection.execute(query.execution_options(yield_per=_FETCH)):
        yield row.uscc, row.stratum


# --- metrics per task (read.metrics sums them per unit) --------------------------------------------
def inspected_by_task(connection: Connection, year: int) -> dict[str, int]:
    """{task_id: n}: `inspected_targets` per task."""
    return dict(connection.execute(
        select(t.c.task_id, func.count()).where(t.c.kind == "random", t.c.stage.in_(ACCEPTED_STAGES),
                                                _in_year(t.c.check_date, year)).group_by(t.c.task_id)).all())


def result_publications_by_task(connection: Connection, year: int) -> dict[str, tuple[int, int]]:
    """{task_id: (published, on time)}: `result_publications` per task."""
    on_time = func.sum(case((p.c.on_time.is_(True), 1), else_=0))
    return {task_id: (n, int(ok or 0)) for task_id, n, ok in connection.execute(
        select(p.c.task_id, func.count(), on_time).where(p.c.kind == "result", p.c.year == year)
        .group_by(p.c.task_id))}


def overdue_unpublished_by_task(connection: Connection, year: int, as_of: datetime) -> dict[str, int]:
    """{task_id: n}: `overdue_unpublished` per task."""
    has_publication = exists().where(p.c.kind == "result", p.c.task_id == t.c.task_id, p.c.uscc == t.c.uscc)
    return dict(connection.execute(
        select(t.c.task_id, func.count()).where(
            _in_year(t.c.check_date, year), t.c.stage != "cancelled", t.c.publication_due.is_not(None),
            t.c.publication_due < utc(as_of), t.c.published_at.is_(None), ~has_publication)
        .group_by(t.c.task_id)).all())


def problem_results_by_task(connection: Connection, year: int) -> dict[str, tuple[int, int]]:
    """{task_id: (disposed, all)}: `problem_results` per task."""
    of_target = and_(f.c.task_id == t.c.task_id, f.c.uscc == t.c.uscc)
    disposed = and_(exists().where(of_target), ~exists().where(of_target, f.c.state != "closed"))
    return {task_id: (int(done or 0), n) for task_id, done, n in connection.execute(
        select(t.c.task_id, func.sum(case((disposed, 1), else_=0)), func.count())
        .where(t.c.stage.in_(ACCEPTED_STAGES), t.c.category.in_(PROBLEM_CATEGORIES), _in_year(t.c.check_date, year))
        .group_by(t.c.task_id))}


def population_stored(connection: Connection, task_id: str, draw_seq: int) -> bool:
    """Whether the draw's population rows are stored (a draw frozen before migration 0006) or recomputed."""
    return draws.draw(connection, task_id, draw_seq).population_stored


def copy_population(connection: Connection, task_id: str, draw_seq: int, handle) -> int:
    """The population file's rows (`uscc,stratum` LF, byte order) written to the binary `handle`; how many."""
    query = draws.population_query(connection, draws.draw(connection, task_id, draw_seq))
    return draws.copy_lines(connection, query, ",", handle.write)


def population_blocks(connection: Connection, task_id: str, draw_seq: int, block, lines_per_block: int) -> int:
    """The draw's population as the digest's lines ("uscc\tstratum\n", byte order), streamed once in blocks."""
    return draws.population_lines(connection, draws.draw(connection, task_id, draw_seq), block, lines_per_block)


def freeze_tally(connection: Connection, task_id: str, line: dict, year: int,
                 at: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """(eligible by stratum, excluded by reason) of the task's filter at `at`, counted by the database."""
    return draws.tally(connection, task_id, line, year, at)


def recomputes_in_database(connection: Connection) -> bool:
    return draws.in_database(connection)


def recomputed_selection(connection: Connection, task_id: str, draw_seq: int, seed: bytes, quotas: dict[str, int],
                         populations: dict[str, int]) -> list[tuple[str, str]]:
    """The selection recomputed by the database from the draw's population (store.draws.select_in_database)."""
    return draws.select_in_database(connection, draws.draw(connection, task_id, draw_seq), seed, quotas, populations)


def rebuilt_freeze(connection: Connection, task_id: str, line: dict, year: int, at: datetime) -> Iterator[tuple]:
    """(uscc, stratum, reason) of the freeze rebuilt from the directory's history as of `at`, byte order, streamed."""
    return connection.execute(draws.eligible_population(connection, task_id, line, year, at)
                              .order_by(draws.byte_order(connection, schema.entities.c.uscc)).execution_options(yield_per=_FETCH))


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One consistent view for a draw's record and population read together."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def first_publication(connection: Connection, task_id: str, step: str):
    """(published_at, payload) of the task's first publication of `step`, or None."""
    return connection.execute(select(p.c.published_at, p.c.payload).where(
        p.c.task_id == task_id, p.c.step == step).order_by(p.c.publication_id).limit(1)).first()


def dispatch_rows(connection: Connection, task_id: str) -> tuple[list, datetime | None, list]:
    """(pools by unit, when the dispatch was made, team rows by uscc, unit, time): a dispatch record's rows."""
    tm, pools = schema.teams, schema.dispatch_pools
    units = connection.execute(select(pools).where(pools.c.task_id == task_id).order_by(pools.c.unit_code)).all()
    dispatched_at = connection.execute(select(func.min(tm.c.at)).where(
        tm.c.task_id == task_id, tm.c.source.in_(("draw", "unstaffed")))).scalar()
    teams = connection.execute(select(tm).where(tm.c.task_id == task_id)
                               .order_by(tm.c.uscc, tm.c.unit_code, tm.c.at, tm.c.team_id)).all()
    return units, dispatched_at, teams
