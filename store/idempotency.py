"""The HTTP API's idempotency keys: claimed before a mutation runs, answered after it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from db import schema
from db.engine import Engine
from store.common import insert_once

_k = schema.api_idempotency


@dataclass(frozen=True)
class Claim:
    """What a request under a key finds: its own new row, or an earlier request's."""

    new: bool
    fingerprint: str
    status_code: int | None  # None: the earlier request has no answer yet (in flight, or its process died)
    response: str | None


def claim(engine: Engine, user_id: str, key: str, fingerprint: str, now: datetime) -> Claim:
    with engine.begin() as connection:
        if insert_once(connection, _k, dict(user_id=user_id, idem_key=key, fingerprint=fingerprint, created_at=now),
                       keys=("user_id", "idem_key")):
            return Claim(True, fingerprint, None, None)
        row = connection.execute(select(_k).where(_k.c.user_id == user_id, _k.c.idem_key == key)).one()
    return Claim(False, row.fingerprint, row.status_code, row.response)


def answer(engine: Engine, user_id: str, key: str, status_code: int, response: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(_k).where(_k.c.user_id == user_id, _k.c.idem_key == key)
                           .values(status_code=status_code, response=response))


def release(engine: Engine, user_id: str, key: str) -> None:
    """Forget a key whose request failed on our side, so that its retry runs as new."""
    with engine.begin() as connection:
        connection.execute(delete(_k).where(_k.c.user_id == user_id, _k.c.idem_key == key))
