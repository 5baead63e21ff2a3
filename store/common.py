"""Idempotent writes shared by the store modules.

Activities run at least once. Every row a workflow step writes carries (workflow_id, step) under a
unique constraint, so the retry of a step whose transaction already committed writes nothing
and reads back what the first attempt stored.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Table, and_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def insert_once(connection: Connection, table: Table, values: dict, keys: tuple[str, ...] = ("workflow_id", "step")) -> bool:
    """Insert unless a row with the same keys exists; True when this call inserted it."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys))
    return connection.execute(statement).rowcount == 1


def one_by(connection: Connection, table: Table, **keys):
    row = connection.execute(select(table).where(and_(*(table.c[k] == v for k, v in keys.items())))).mappings().first()
    return row


class NotFound(LookupError):
    """A row the caller needs is not stored (activities make it the non-retryable `NotFound` failure)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.what = what


class Unstorable(ValueError):
    """The database refused a row for what it holds (a value too long for its column, a broken constraint):
    the same row is refused again on every retry. Activities make it a non-retryable failure and an alert."""


@contextmanager
def refusals() -> Iterator[None]:
    """The database's refusal of a row, raised inside, as `Unstorable` (its first line: the column and why)."""
    try:
        yield
    except (DataError, IntegrityError) as error:
        raise Unstorable(str(error.orig or error).strip().splitlines()[0]) from error
