"""store.draws.insert_rows: COPY on PostgreSQL, INSERT elsewhere, the same rows back either way."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from db import schema
from store.draws import insert_rows


@pytest.mark.parametrize("engine_fixture", ["fresh_pg_engine", "sqlite_engine"])
def test_rows_come_back_as_given(request, engine_fixture):
    engine = request.getfixturevalue(engine_fixture)
    at = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=8)))
    t = schema.targets
    rows = [dict(task_id="T-1", uscc=f"91360202MA35GTX1{i}T", workflow_id=wid, kind="random", stage="drawn",
                 method=None, overdue=i == 1, updated_at=at)
            for i, wid in enumerate(["", "tab\there", "back\\slash\nnew line\rreturn", "\\N"])]
    with engine.begin() as connection:
        insert_rows(connection, t, rows)
        insert_rows(connection, t, [])
    with engine.connect() as connection:
        back = connection.execute(select(*(t.c[c] for c in rows[0])).order_by(t.c.uscc)).mappings().all()
    assert [dict(r) for r in back] == [{**r, "updated_at": at.astimezone(timezone.utc)} for r in rows]


def test_a_naive_instant_is_refused(fresh_pg_engine):
    row = dict(task_id="T-1", uscc="91360202MA35GTX11T", workflow_id="", kind="random", stage="drawn",
               overdue=False, updated_at=datetime(2025, 3, 4))
    with pytest.raises(ValueError, match="naive"), fresh_pg_engine.begin() as connection:
        insert_rows(connection, schema.targets, [row])
