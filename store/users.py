"""Local accounts, their login state, the login throttle, and a person as the inspectors directory stands now.

The rules (lockout, throttle) are domain/access.py's; here they are applied inside one transaction
with the row locked, so two attempts at once cannot both count as the last allowed one.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update

from db import schema
from db.engine import Engine
from domain import access
from store.common import insert_once

_u = schema.users


@dataclass(frozen=True)
class Account:
    user_id: str
    password_hash: str
    roles: tuple[str, ...]  # operator roles
    unit: str | None
    status: str  # active | disabled
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DirectoryPerson:
    """The current version of an inspectors-directory record: what a field-role user may do now."""

    inspector_id: str
    roles: tuple[str, ...]
    unit: str
    status: str  # active | inactive


def _joined(values: Iterable[str]) -> str:
    return ";".join(sorted(set(values)))


def _split(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(";") if v)


def _account(row) -> Account:
    return Account(
        user_id=row.user_id, password_hash=row.password_hash, roles=_split(row.roles), unit=row.unit_code,
        status=row.status, failed_logins=row.failed_logins, locked_until=row.locked_until,
        created_at=row.created_at, updated_at=row.updated_at,
    )


def add(engine: Engine, user_id: str, password_hash: str, roles: Iterable[str], unit: str | None,
        now: datetime) -> bool:
    """A new active account; False when the id is taken (nothing changes)."""
    with engine.begin() as connection:
        return insert_once(connection, _u, dict(
            user_id=user_id, password_hash=password_hash, roles=_joined(roles), unit_code=unit, status="active",
            failed_logins=0, locked_until=None, created_at=now, updated_at=now,
        ), keys=("user_id",))


def account(engine: Engine, user_id: str) -> Account | None:
    with engine.connect() as connection:
        row = connection.execute(select(_u).where(_u.c.user_id == user_id)).first()
    return _account(row) if row else None


def accounts(engine: Engine) -> list[Account]:
    with engine.connect() as connection:
        return [_account(row) for row in connection.execute(select(_u).order_by(_u.c.user_id))]


def _change(engine: Engine, user_id: str, now: datetime, **values) -> bool:
    with engine.begin() as connection:
        changed = connection.execute(update(_u).where(_u.c.user_id == user_id).values(updated_at=now, **values))
        return changed.rowcount == 1


def set_status(engine: Engine, user_id: str, status: str, now: datetime) -> bool:
    """False when there is no such account."""
    return _change(engine, user_id, now, status=status)


def set_password(engine: Engine, user_id: str, password_hash: str, now: datetime) -> bool:
    """A new password, and a clean slate: no failures counted, no lockout. False when there is no such account."""
    return _change(engine, user_id, now, password_hash=password_hash, failed_logins=0, locked_until=None)


def rehash(engine: Engine, user_id: str, old_hash: str, new_hash: str) -> None:
    """The same password under today's hashing parameters, unless the password changed meanwhile."""
    with engine.begin() as connection:
        connection.execute(update(_u).where(_u.c.user_id == user_id, _u.c.password_hash == old_hash)
                           .values(password_hash=new_hash))


def _locked_row(connection: Connection, user_id: str):
    return connection.execute(select(_u).where(_u.c.user_id == user_id).with_for_update()).first()


def record_failure(engine: Engine, user_id: str, now: datetime, policy: access.LoginPolicy) -> None:
    """One more wrong password in a row; the policy's lockout once there are too many."""
    with engine.begin() as connection:
        row = _locked_row(connection, user_id)
        if row is None:
            return
        failures, locked_until = access.after_failure(row.failed_logins, now, policy)
        connection.execute(update(_u).where(_u.c.user_id == user_id)
                           .values(failed_logins=failures, locked_until=locked_until or row.locked_until))


def record_success(engine: Engine, user_id: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(_u).where(_u.c.user_id == user_id, _u.c.failed_logins != 0)
                           .values(failed_logins=0))


def count_attempt(engine: Engine, key: str, now: datetime, limit: int, window: timedelta) -> bool:
    """Count a login attempt under `key`; False when it is over the limit of its window."""
    t = schema.login_throttle
    # Windows that have passed say nothing any more; their own short transaction keeps the table small
    # without holding their locks while this key's row is counted.
    with engine.begin() as connection:
        connection.execute(delete(t).where(t.c.window_start <= now - window))
    with engine.begin() as connection:
        insert_once(connection, t, dict(throttle_key=key, window_start=now, attempts=0), keys=("throttle_key",))
        row = connection.execute(select(t).where(t.c.throttle_key == key).with_for_update()).one()
        state = access.throttle(row.window_start, row.attempts, now, limit, window)
        connection.execute(update(t).where(t.c.throttle_key == key)
                           .values(window_start=state.window_start, attempts=state.attempts))
    return state.allowed


def directory_person(engine: Engine, inspector_id: str) -> DirectoryPerson | None:
    """The inspectors directory's current record of this id, if it has one."""
    i = schema.inspectors
    with engine.connect() as connection:
        row = connection.execute(
            select(i.c.inspector_id, i.c.roles, i.c.unit_code, i.c.status)
            .where(i.c.inspector_id == inspector_id, i.c.valid_to.is_(None))
        ).first()
    if row is None:
        return None
    return DirectoryPerson(inspector_id=row.inspector_id, roles=_split(row.roles), unit=row.unit_code,
                           status=row.status)
