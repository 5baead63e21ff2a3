"""Follow-ups and the outbox: case leads, listings, orders, credit feedback, notifications.

Each external effect is exactly one outbox row per (workflow id, step), written in the same
transaction as its domain row. Delivery is at least once, with the idempotency key
`workflow_id/step` that the receiving system de-duplicates on.
"""
from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, select, update
from temporalio import activity

from activities.directory import entity_name, task_line
from activities.common import not_found, workflow_id
from store.common import canonical_json, insert_once, one_by
from db import schema
from domain.categories import ORDER_KINDS, ORDER_WORKING_DAYS, FollowUpKind
from domain.records import Delivery, FollowUpClosing, FollowUpOpened, FollowUpStep
from domain.workdays import Deadlines

CREDIT_FEEDBACK = "credit_feedback"
# Follow-ups closed by the receiving system's acceptance of the handoff.
CLOSED_ON_ACCEPTANCE = frozenset({FollowUpKind.CASE_LEAD.value, FollowUpKind.ABNORMAL_LISTING.value})


class Receiver(Protocol):
    """An external system behind an adapter: the penalty-case system, the listing register, mail."""

    def send(self, key: str, kind: str, payload: dict) -> None: ...


class JsonlReceiver:
    """The default adapter: one JSON line per delivery, with its idempotency key."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def send(self, key: str, kind: str, payload: dict) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        line = canonical_json({"idempotency_key": key, "kind": kind, "payload": payload,
                               "sent_at": datetime.now(timezone.utc).isoformat()})
        with self._path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


class WebhookReceiver:
    """POSTs each delivery as JSON with an `Idempotency-Key` header; any non-2xx answer is retried."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._url, self._timeout = url, timeout

    def send(self, key: str, kind: str, payload: dict) -> None:
        body = json.dumps({"kind": kind, "payload": payload}, ensure_ascii=False).encode()
        request = urllib.request.Request(self._url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": key})
        with urllib.request.urlopen(request, timeout=self._timeout):
            pass


class Notifier:
    """Writes outbox rows inside the caller's transaction and relays them to the receiver."""

    def __init__(self, engine: Engine, receiver: Receiver) -> None:
        self._engine, self._receiver = engine, receiver

    def enqueue(self, connection: Connection, workflow: str, step: str, kind: str, payload: dict) -> None:
        insert_once(connection, schema.outbox, dict(
            workflow_id=workflow, step=step, kind=kind, payload=canonical_json(payload),
            created_at=datetime.now(timezone.utc), attempts=0))

    def deliver(self, workflow: str, step: str) -> bool:
        """Send the row unless already delivered; True when this call delivered it."""
        with self._engine.begin() as connection:
            row = one_by(connection, schema.outbox, workflow_id=workflow, step=step)
            if row is None:
                raise not_found(f"outbox row {workflow}/{step}")
            if row.delivered_at is not None:
                return False
            connection.execute(update(schema.outbox).where(schema.outbox.c.outbox_id == row.outbox_id)
                               .values(attempts=schema.outbox.c.attempts + 1))
        # Sent outside the transaction: a crash after sending re-sends with the same key, never loses it.
        self._receiver.send(f"{workflow}/{step}", row.kind, json.loads(row.payload))
        with self._engine.begin() as connection:
            connection.execute(update(schema.outbox).where(schema.outbox.c.outbox_id == row.outbox_id)
                               .values(delivered_at=datetime.now(timezone.utc)))
        return True


class HandoffActivities:
    def __init__(self, engine: Engine, deadlines: Deadlines, notifier: Notifier) -> None:
        self._engine, self._deadlines, self._notifier = engine, deadlines, notifier

    @activity.defn
    def open_follow_up(self, step: FollowUpStep) -> FollowUpOpened:
        lead_id = f"{step.task_id}/{step.uscc}/{step.step}"
        with self._engine.begin() as connection:
            line, _ = task_line(connection, step.task_id)
            payload = {"lead_id": lead_id, "kind": step.kind, "task_id": step.task_id,
                       "task_code": line["task_code"], "uscc": step.uscc,
                       "entity_name": entity_name(connection, step.uscc), "category": step.category}
            due_at = None
            if step.kind in {k.value for k in ORDER_KINDS}:
                due_at = self._deadlines.after_working_days(step.at, ORDER_WORKING_DAYS)
                payload["due_at"] = due_at.isoformat()
            if step.kind != CREDIT_FEEDBACK:
                insert_once(connection, schema.follow_ups, dict(
                    lead_id=lead_id, kind=step.kind, task_id=step.task_id, task_code=line["task_code"],
                    uscc=step.uscc, entity_name=payload["entity_name"], category=step.category, state="open",
                    opened_at=step.at, due_at=due_at, workflow_id=workflow_id(), step=step.step))
                connection.execute(update(schema.targets).where(
                    schema.targets.c.task_id == step.task_id, schema.targets.c.uscc == step.uscc,
                ).values(stage="follow_up", updated_at=step.at))
            self._notifier.enqueue(connection, workflow_id(), step.step, step.kind, payload)
            stored = one_by(connection, schema.follow_ups, lead_id=lead_id)
        return FollowUpOpened(lead_id=lead_id, due_at=stored.due_at if stored else None)

    @activity.defn
    def deliver(self, delivery: Delivery) -> None:
        self._notifier.deliver(delivery.workflow_id, delivery.step)
        with self._engine.begin() as connection:
            lead = connection.execute(select(schema.follow_ups).where(
                schema.follow_ups.c.workflow_id == delivery.workflow_id, schema.follow_ups.c.step == delivery.step,
            )).mappings().first()
            if lead and lead["kind"] in CLOSED_ON_ACCEPTANCE:
                close(connection, lead["lead_id"], datetime.now(timezone.utc), "accepted by the receiving system")

    @activity.defn
    def close_follow_up(self, closing: FollowUpClosing) -> None:
        with self._engine.begin() as connection:
            close(connection, closing.lead_id, closing.at, closing.closed_by)


def close(connection: Connection, lead_id: str, at: datetime, closed_by: str) -> None:
    f = schema.follow_ups
    connection.execute(update(f).where(f.c.lead_id == lead_id, f.c.state == "open")
                       .values(state="closed", closed_at=at, closed_by=closed_by))
