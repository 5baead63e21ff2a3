"""The projection rebuild's SQL (read/projection.py): a fresh schema holding the live inputs, and the rows compared.

The fresh schema is migrated like any other, then given a copy of what the activities read but do not
derive from their inputs (the directories, the plans, the populations stored by draws frozen before
migration 0006); the projection tables the rebuild recomputes stay empty. The draws' secrets (a nonce, a
population salt) and the instant a draw committed are in no history: `draw_secrets` reads them from the live
rows, for the replay to make the same draws. PostgreSQL: a schema of its own in the live database, dropped
afterwards. SQLite: a temporary file with the live one attached.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Table, create_engine, or_, select, text, update

from db import schema
from db.engine import Engine, make_engine, migrate

# What the activities read and no history can give back: the directories and plans (inputs), and the
# populations of draws frozen before migration 0006, kept as they were (store/draws.py).
INPUTS: tuple[Table, ...] = (
    schema.import_batches, schema.units, schema.items, schema.entities, schema.inspectors,
    schema.plans, schema.plan_templates, schema.plan_tasks, schema.draw_population,
)


@contextmanager
def fresh_schema(live: Engine) -> Iterator[Engine]:
    """An engine on a new, migrated schema holding a copy of the live INPUTS; removed on exit."""
    if live.dialect.name == "postgresql":
        with _postgres_schema(live) as fresh:
            yield fresh
    else:
        with _sqlite_file(live) as fresh:
            yield fresh


@contextmanager
def _postgres_schema(live: Engine) -> Iterator[Engine]:
    with live.connect() as connection:
        source = connection.execute(text("SELECT current_schema()")).scalar()
    name = f"projection_{uuid.uuid4().hex[:12]}"
    url = live.url.render_as_string(hide_password=False)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    fresh = make_engine(url, search_path=name)
    try:
        migrate(fresh)
        with fresh.begin() as connection:
            _copy_inputs(connection, f'"{source}"')
        yield fresh
    finally:
        fresh.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@contextmanager
def _sqlite_file(live: Engine) -> Iterator[Engine]:
    folder = tempfile.mkdtemp(prefix="spotcheck-projection-")
    path = os.path.join(folder, "rebuilt.sqlite")
    fresh = make_engine(f"sqlite:///{path}")
    try:
        migrate(fresh)
        with fresh.connect() as connection:
            connection.exec_driver_sql("ATTACH DATABASE ? AS live", (live.url.database,))
            connection.commit()
            _copy_inputs(connection, "live")
            connection.commit()
            connection.exec_driver_sql("DETACH DATABASE live")
            connection.commit()
        yield fresh
    finally:
        fresh.dispose()
        for leftover in os.listdir(folder):
            os.remove(os.path.join(folder, leftover))
        os.rmdir(folder)


def _copy_inputs(connection: Connection, source: str) -> None:
    for table in INPUTS:
        columns = ", ".join(f'"{c.name}"' for c in table.columns)
        connection.execute(text(
            f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM {source}."{table.name}"'))


# --- the rows compared --------------------------------------------------------------------------------
def year_scope(engine: Engine, year: int) -> tuple[list[str], list[str]]:
    """(plan codes, task ids) of the plan year: every task its plans ever held, added ones included."""
    p, pt = schema.plans, schema.plan_tasks
    with engine.connect() as connection:
        plans = list(connection.execute(
            select(p.c.plan_code).where(p.c.year == year).order_by(p.c.plan_code)).scalars())
        tasks = list(connection.execute(select(pt.c.task_id).where(pt.c.plan_code.in_(plans))
                                        .order_by(pt.c.task_id)).scalars())
    return plans, tasks


def started_targets(engine: Engine, task_ids: list[str]) -> list[tuple[str, str]]:
    """(task id, uscc) of the tasks' targets whose workflow has started (named in the projection row): those
    the task started by activities (since patch targets-started-in-shards) are no children in its history."""
    t = schema.targets
    with engine.connect() as connection:
        return [(r.task_id, r.uscc) for r in connection.execute(
            select(t.c.task_id, t.c.uscc).where(t.c.task_id.in_(task_ids), t.c.workflow_id != "")
            .order_by(t.c.task_id, t.c.uscc))]


def scoped_rows(engine: Engine, table: Table, plan_codes: list[str], task_ids: list[str],
                workflow_ids: Collection[str] = (), left_out: dict[str, tuple] | None = None) -> list[dict]:
    """The table's rows of the year: those of its tasks, and for tables that name a plan, those of its plans;
    for a table that names neither (the outbox), those its workflows wrote. `left_out`: {column: values} of
    rows not compared."""
    conditions = []
    if "task_id" in table.c:
        conditions.append(table.c.task_id.in_(task_ids))
    if "plan_code" in table.c:
        conditions.append(table.c.plan_code.in_(plan_codes))
    if not conditions:
        conditions.append(table.c.workflow_id.in_(sorted(workflow_ids)))
    query = select(table).where(or_(*conditions))
    for column, values in (left_out or {}).items():
        query = query.where(table.c[column].not_in(values))
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(query).mappings()]


def draw_secrets(engine: Engine, task_ids: list[str]) -> dict[tuple[str, int], dict]:
    """(task_id, draw_seq) -> what the live draw holds that no history does: its nonce and population salt
    (secrets), when it committed (drawn_at) and whether its population is stored (frozen before 0006)."""
    d = schema.draws
    with engine.connect() as connection:
        return {(r["task_id"], r["draw_seq"]): dict(r) for r in connection.execute(
            select(d.c.task_id, d.c.draw_seq, d.c.nonce, d.c.population_salt, d.c.drawn_at, d.c.population_stored)
            .where(d.c.task_id.in_(task_ids))).mappings()}


def keep_stored_population(engine: Engine, task_id: str, draw_seq: int) -> None:
    """The rebuilt draw reads its population from the stored rows, as the live one (frozen before 0006) does."""
    d = schema.draws
    with engine.begin() as connection:
        connection.execute(update(d).where(d.c.task_id == task_id, d.c.draw_seq == draw_seq)
                           .values(population_stored=True))
