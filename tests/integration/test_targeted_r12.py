"""R12's exception path, as the code stands: an A-class entity another task drew this year, targeted
again. R12 allows it only when a law requires it, with the legal basis recorded; today a targeted entity
carries a reason and no legal basis, the freeze excludes it as `a_class_already_drawn`, the draw still
makes it a target, and `draw verify` fails ("targeted: not in the population").

Strict xfail: the test states the rule; it passes (and the xfail fails) once the exception path exists.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from db import schema
from read.audit_package import verify_against_database
from store.directory import in_force
from tests.integration.test_audit_package import load_tasks, run_draw

pytestmark = pytest.mark.postgres


@pytest.mark.xfail(strict=True, reason="R12 exception path missing: no legal basis on a targeted entity (issue 18)")
def test_a_targeted_a_class_entity_drawn_this_year_is_verifiable_and_recorded(fresh_pg_engine):
    engine = fresh_pg_engine
    first, second = load_tasks(engine, tasks=2)
    run_draw(engine, first, dispatch=False)
    ds, e, t = schema.draw_selection, schema.entities, schema.targets
    with engine.connect() as connection:
        a_class = connection.execute(
            select(ds.c.uscc).join(e, e.c.uscc == ds.c.uscc)
            .where(ds.c.task_id == first, e.c.risk_class == "A", in_force(e, datetime.now(timezone.utc)))
            .order_by(ds.c.uscc).limit(1)).scalar_one()
    run_draw(engine, second, [a_class], dispatch=False)
    with engine.connect() as connection:
        kind = connection.execute(select(t.c.kind).where(t.c.task_id == second, t.c.uscc == a_class)).scalar()
    report = verify_against_database(engine, second)
    assert kind is None or report.ok, f"inspected again as {kind!r} with no legal basis, and: {report}"
