"""The history archive's table `history_archive` (db/schema.py): append-only, one hash chain in `seq` order
(the hashes: domain/archive.py).

Appending: one transaction per entry, under a lock (PostgreSQL: the advisory lock CHAIN_LOCK; SQLite:
the database's write lock), which reads the head and inserts after it; `prev_hash` is also unique, so
even a writer that bypassed the lock cannot fork the chain. Nothing here updates or deletes a row.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, Row, false, func, select

from db import schema
from domain.archive import GENESIS, ClosedRun, entry_digest, history_digest

CHAIN_LOCK = 7233002  # pg_advisory_xact_lock key of the chain (7233001: migrations; 7233100 + year: draws)


def append_entry(engine: Engine, run: ClosedRun, history: str) -> int | None:
    """Append one history at the head of the chain, in one transaction; its seq, or None when that run
    is archived already (by an earlier pass, or a concurrent one)."""
    t = schema.history_archive
    history_sha256 = history_digest(history)
    with engine.begin() as connection:
        _lock_chain(connection)
        if connection.execute(select(t.c.seq).where(t.c.workflow_id == run.workflow_id,
                                                    t.c.run_id == run.run_id)).first() is not None:
            return None
        prev_hash = connection.execute(select(t.c.entry_hash).order_by(t.c.seq.desc()).limit(1)).scalar()
        prev_hash = prev_hash or GENESIS
        inserted = connection.execute(t.insert().values(
            workflow_id=run.workflow_id, run_id=run.run_id, workflow_type=run.workflow_type,
            closed_at=run.closed_at, history=history, history_sha256=history_sha256, prev_hash=prev_hash,
            entry_hash=entry_digest(prev_hash, run.workflow_id, run.run_id, history_sha256)))
        return inserted.inserted_primary_key[0]


def _lock_chain(connection: Connection) -> None:
    """Appenders take turns: the head each one reads is still the head when it inserts after it."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK)))
    else:
        # SQLite has no advisory locks and starts a transaction at its first write: a write that changes
        # nothing takes the database's write lock (waiting busy_timeout for it) before the head is read.
        connection.execute(schema.history_archive.delete().where(false()))


def archived_keys(engine: Engine, runs: Iterable[ClosedRun], chunk: int = 500) -> set[tuple[str, str]]:
    """Which of these runs are in the archive already."""
    t = schema.history_archive
    runs = list(runs)
    found: set[tuple[str, str]] = set()
    with engine.connect() as connection:
        for start in range(0, len(runs), chunk):
            part = runs[start:start + chunk]
            rows = connection.execute(select(t.c.workflow_id, t.c.run_id).where(
                t.c.run_id.in_(sorted({r.run_id for r in part})))).all()
            found |= {(r.workflow_id, r.run_id) for r in rows}
    return found


def newest_closed_at(engine: Engine) -> datetime | None:
    with engine.connect() as connection:
        return connection.execute(select(func.max(schema.history_archive.c.closed_at))).scalar()


def chain_head(engine: Engine) -> tuple[int, str] | None:
    t = schema.history_archive
    with engine.connect() as connection:
        row = connection.execute(select(t.c.seq, t.c.entry_hash).order_by(t.c.seq.desc()).limit(1)).first()
    return (row.seq, row.entry_hash) if row else None


def runs_of(engine: Engine, workflow_id: str) -> list[Row]:
    """Every archived run of a workflow id, in archive order: seq, run_id, closed_at, history, history_sha256."""
    t = schema.history_archive
    with engine.connect() as connection:
        return connection.execute(select(t.c.seq, t.c.run_id, t.c.closed_at, t.c.history, t.c.history_sha256)
                                  .where(t.c.workflow_id == workflow_id).order_by(t.c.seq)).all()


@contextmanager
def chain_entries(engine: Engine, batch: int = 100) -> Iterator[Iterable[Row]]:
    """The whole chain in seq order, streamed `batch` rows at a time: seq, workflow_id, run_id, history,
    history_sha256, prev_hash, entry_hash. Leaving the block early stops the stream."""
    t = schema.history_archive
    with engine.connect() as connection:
        rows = connection.execution_options(yield_per=batch).execute(
            select(t.c.seq, t.c.workflow_id, t.c.run_id, t.c.history, t.c.history_sha256, t.c.prev_hash,
                   t.c.entry_hash).order_by(t.c.seq))
        try:
            yield rows
        finally:
            rows.close()
