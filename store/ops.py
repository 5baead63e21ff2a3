"""What operators watch, from the projection tables: the figures behind the workers' Prometheus gauges
(runtime/telemetry.py). Cheap aggregate queries, run every few seconds by one worker process."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from db import schema
from store.views import utc

t, f, o = schema.targets, schema.follow_ups, schema.outbox


@dataclass(frozen=True)
class Watch:
    targets_by_stage: dict[str, int]
    targets_overdue: int  # flagged overdue by their workflow (a field-work or publication deadline passed)
    follow_ups_overdue: int  # open past their due date
    outbox_backlog: int  # external effects not yet delivered
    outbox_oldest_seconds: float  # age of the oldest undelivered one; 0 when none


def watch(connection: Connection, now: datetime) -> Watch:
    now = utc(now)
    oldest = connection.execute(select(func.min(o.c.created_at)).where(o.c.delivered_at.is_(None))).scalar()
    if oldest is not None and oldest.tzinfo is None:  # SQLite keeps UTC wall time
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return Watch(
        targets_by_stage=dict(connection.execute(select(t.c.stage, func.count()).group_by(t.c.stage)).all()),
        targets_overdue=connection.execute(select(func.count()).where(t.c.overdue.is_(True))).scalar_one(),
        follow_ups_overdue=connection.execute(select(func.count()).where(
            f.c.state == "open", f.c.due_at.is_not(None), f.c.due_at < now)).scalar_one(),
        outbox_backlog=connection.execute(select(func.count()).where(o.c.delivered_at.is_(None))).scalar_one(),
        outbox_oldest_seconds=0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()),
    )
