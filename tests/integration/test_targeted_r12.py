"""R12's exception path: an A-class entity another task drew this year, targeted again.

R12 allows a second inspection in the year only where a law, regulation or rule requires it, with that
legal basis recorded. Targeted with its legal basis, the entity stays in the task's population (the freeze,
`draw verify` and the audit package all recompute the same draw) and the basis is in the audit package but
on no public record. Targeted without one, it is refused, naming the entity and the rule, and nothing is stored.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from temporalio.exceptions import ApplicationError

from activities.draws import DrawActivities
from db import schema
from domain.messages.task import TargetedStep, TaskStep
from read.audit_package import export_draw, verify_against_database, verify_from_files
from service.imports import import_examples
from store.directory import in_force, task_line
from store.draws import eligible_population
from store.plans import load_plan
from tests.integration.test_audit_package import ENTROPY, load_tasks, run_activity, run_draw
from tests.integration.test_frequency_cap import as_of_now, capped_plan, draw, population_by_hand

pytestmark = pytest.mark.postgres

LEGAL_BASIS = "《食品安全法》第一百一十条：对上年度发生食品安全事故的生产经营者实施重点检查"


def drawn_a_class(engine) -> tuple[str, str]:
    """(second task, an A-class entity the first task drew): R12 excludes it from the second's population."""
    first, second = load_tasks(engine, tasks=2)
    run_draw(engine, first, dispatch=False)
    ds, e = schema.draw_selection, schema.entities
    with engine.connect() as connection:
        a_class = connection.execute(
            select(ds.c.uscc).join(e, e.c.uscc == ds.c.uscc)
            .where(ds.c.task_id == first, e.c.risk_class == "A", in_force(e, datetime.now(timezone.utc)))
            .order_by(ds.c.uscc).limit(1)).scalar_one()
    return second, a_class


def target(engine, task_id: str, uscc: str, legal_basis: str | None) -> None:
    run_activity(task_id, DrawActivities(engine).record_targeted, TargetedStep(
        task_id=task_id, uscc=uscc, reason="重点监管", at=datetime.now(timezone.utc), legal_basis=legal_basis))


def test_an_a_class_entity_drawn_this_year_is_targeted_with_its_legal_basis_and_verifies(fresh_pg_engine, tmp_path):
    engine = fresh_pg_engine
    task_id, a_class = drawn_a_class(engine)
    activities = DrawActivities(engine)
    step = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY)
    run_activity(task_id, activities.announce, step)
    target(engine, task_id, a_class, LEGAL_BASIS)
    run_activity(task_id, activities.freeze, step)
    drawn = run_activity(task_id, activities.draw, step)
    assert drawn.conflicts == 0  # the lawful second inspection does not supersede the draw

    t, tg = schema.targets, schema.targeted
    with engine.connect() as connection:
        kind = connection.execute(select(t.c.kind).where(t.c.task_id == task_id, t.c.uscc == a_class)).scalar()
        basis = connection.execute(select(tg.c.legal_basis).where(tg.c.task_id == task_id, tg.c.uscc == a_class)
                                   ).scalar()
        published = connection.execute(select(schema.publications.c.payload)
                                       .where(schema.publications.c.task_id == task_id)).scalars().all()
    assert kind in ("random", "targeted") and basis == LEGAL_BASIS
    report = verify_against_database(engine, task_id)
    assert report.ok, report

    package = export_draw(engine, task_id, record_path=tmp_path / "record.json",
                          population_path=tmp_path / "population.csv")
    record = json.loads((tmp_path / "record.json").read_text(encoding="utf-8"))
    assert {"uscc": a_class, "reason": "重点监管", "legal_basis": LEGAL_BASIS} in record["targeted"], record["targeted"]
    assert f"{a_class},A" in (tmp_path / "population.csv").read_text(encoding="ascii").splitlines()
    assert verify_from_files(tmp_path / "record.json", tmp_path / "population.csv").ok, package
    assert published and not any(LEGAL_BASIS in p or a_class in p for p in published)  # auditors only


def test_without_a_legal_basis_the_entity_is_refused_naming_it_and_the_rule(fresh_pg_engine):
    engine = fresh_pg_engine
    task_id, a_class = drawn_a_class(engine)
    run_activity(task_id, DrawActivities(engine).announce, TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY))
    with pytest.raises(ApplicationError) as refused:
        target(engine, task_id, a_class, None)
    assert refused.value.non_retryable and refused.value.type == "Refused"
    assert f"entity {a_class} is excluded from task {task_id} by R12" in str(refused.value)
    assert "legal basis" in str(refused.value)
    with engine.connect() as connection:
        assert connection.execute(select(schema.targeted).where(schema.targeted.c.task_id == task_id)).first() is None
        assert connection.execute(select(schema.alerts)).first() is None  # a refusal, not a failure to repair

    target(engine, task_id, a_class, LEGAL_BASIS)  # the same entity, now with the law that requires it
    with engine.connect() as connection:
        stored = connection.execute(select(schema.targeted.c.uscc, schema.targeted.c.legal_basis)
                                    .where(schema.targeted.c.task_id == task_id)).all()
    assert stored == [(a_class, LEGAL_BASIS)]


def test_an_entity_at_the_years_frequency_cap_needs_a_legal_basis_too(fresh_pg_engine):
    """R14: drawn by two tasks at a cap of 2, an entity is refused to a third without a legal basis, naming
    R14; with one, it is back in that task's population (tests/integration/test_frequency_cap.py's plan)."""
    engine = fresh_pg_engine
    import_examples(engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    code = f"R14L-{uuid.uuid4().hex[:6].upper()}"
    load_plan(engine, capped_plan(code), "plan.json")
    assert draw(engine, f"{code}-T1") == 5 and draw(engine, f"{code}-T2") == 4
    third = f"{code}-T3"
    _, eligible = as_of_now(engine, third)
    capped = sorted(u for u, stratum in population_by_hand().items() if stratum != "A")[0]
    assert capped not in eligible
    run_activity(third, DrawActivities(engine).announce, TaskStep(task_id=third, draw_seq=1, entropy=ENTROPY))
    with pytest.raises(ApplicationError, match=f"entity {capped} is excluded from task {third} by R14"):
        target(engine, third, capped, None)
    target(engine, third, capped, LEGAL_BASIS)
    exclusions, eligible = as_of_now(engine, third)
    assert eligible == {capped} and exclusions == {"a_class_already_drawn": 1, "frequency_cap": 3}


def test_targeted_before_another_task_drew_it_the_freeze_refuses_it_on_record(fresh_pg_engine, tmp_path):
    """Targeted without a legal basis while nothing excluded them, then drawn by another task before this freeze:
    R12 now excludes them. They are not inspected, an alert says why for each, and the draw still verifies."""
    engine = fresh_pg_engine
    first, second = load_tasks(engine, tasks=2)
    activities = DrawActivities(engine)
    step, second_step = (TaskStep(task_id=task, draw_seq=1, entropy=ENTROPY) for task in (first, second))
    run_activity(first, activities.announce, step)
    run_activity(first, activities.freeze, step)
    run_activity(second, activities.announce, second_step)
    # Every A-class entity of the population (the two tasks share it), targeted by the second task before the
    # first draws: nothing excludes them yet. The first task then draws some of them.
    with engine.connect() as connection:
        line, year = task_line(connection, second)
        a_class = sorted(u for u, stratum, reason in connection.execute(eligible_population(
            connection, second, line, year, datetime.now(timezone.utc))) if stratum == "A" and reason is None)
    for uscc in a_class:
        target(engine, second, uscc, None)
    run_activity(first, activities.draw, step)
    with engine.connect() as connection:
        ds = schema.draw_selection
        raced = sorted(set(a_class) & set(connection.execute(select(ds.c.uscc).where(ds.c.task_id == first)).scalars()))
    assert raced and len(raced) < len(a_class)

    run_activity(second, activities.freeze, second_step)
    drawn = run_activity(second, activities.draw, second_step)
    t, a = schema.targets, schema.alerts
    with engine.connect() as connection:
        inspected = set(connection.execute(select(t.c.uscc).where(t.c.task_id == second)).scalars())
        alerts = dict(connection.execute(select(a.c.uscc, a.c.details).where(a.c.task_id == second,
                                                                             a.c.kind == "refused")).all())
    assert not inspected & set(raced) and set(a_class) - set(raced) <= inspected
    assert drawn.targeted == len(inspected - set(selected_of(engine, second)))
    assert sorted(alerts) == raced
    assert all(f"targeted entity {u} is not inspected" in alerts[u] and "R12" in alerts[u] for u in raced)
    assert verify_against_database(engine, second).ok
    export_draw(engine, second, record_path=tmp_path / "record.json", population_path=tmp_path / "population.csv")
    record = json.loads((tmp_path / "record.json").read_text(encoding="utf-8"))
    assert [t["uscc"] for t in record["targeted"]] == sorted(set(a_class) - set(raced))
    assert record["targeted_refused"] == [{"uscc": u, "reason": "重点监管", "excluded": "a_class_already_drawn"}
                                          for u in raced]
    assert verify_from_files(tmp_path / "record.json", tmp_path / "population.csv").ok


def selected_of(engine, task_id: str) -> list[str]:
    ds = schema.draw_selection
    with engine.connect() as connection:
        return list(connection.execute(select(ds.c.uscc).where(ds.c.task_id == task_id)).scalars())
