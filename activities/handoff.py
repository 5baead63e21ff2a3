"""Follow-ups and the outbox: case leads, listings, orders, credit feedback, notifications.

Each external effect is exactly one outbox row per (workflow id, step), written in the same
transaction as its domain row. Delivery is at least once, with the idempotency key
`workflow_id/step` that the receiving system de-duplicates on.
"""
from __future__ import annotations

import json
import os
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from temporalio import activity

from activities.common import found, no_retry_cures, workflow_id
from db.engine import Engine
from domain import public
from domain.categories import ORDER_KINDS, ORDER_WORKING_DAYS, FollowUpKind
from domain.messages.target import Delivery, FollowUpClosing, FollowUpOpened, FollowUpStep
from domain.workdays import Deadlines
from store import outbox, targets
from store.common import canonical_json
from store.directory import entity_name, task_line

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
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = canonical_json({"idempotency_key": key, "kind": kind, "payload": payload,
                               "sent_at": datetime.now(timezone.utc).isoformat()})
        # Created 0600: the outbox carries the follow-ups and notices, for the receiving system alone.
        created = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(created, "a", encoding="utf-8") as out:
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

    def enqueue(self, connection, workflow: str, step: str, kind: str, payload: dict) -> None:
        outbox.enqueue(connection, workflow, step, kind, payload, datetime.now(timezone.utc))

    def deliver(self, workflow: str, step: str) -> bool:
        """Send the row unless already delivered; True when this call delivered it."""
        with found(), self._engine.begin() as connection:
            taken = outbox.take_for_delivery(connection, workflow, step)
        if taken is None:
            return False
        kind, payload = taken
        # Sent outside the transaction: a crash after sending re-sends with the same key, never loses it.
        self._receiver.send(f"{workflow}/{step}", kind, payload)
        with self._engine.begin() as connection:
            outbox.delivered(connection, workflow, step, datetime.now(timezone.utc))
        return True


class HandoffActivities:
    def __init__(self, engine: Engine, deadlines: Deadlines, notifier: Notifier) -> None:
        self._engine, self._deadlines, self._notifier = engine, deadlines, notifier

    @activity.defn
    @no_retry_cures
    def open_follow_up(self, step: FollowUpStep) -> FollowUpOpened:
        lead_id = f"{step.task_id}/{step.uscc}/{step.step}"
        with found(), self._engine.begin() as connection:
            line, _ = task_line(connection, step.task_id)
            name = entity_name(connection, step.uscc)
            due_at = None
            if step.kind in {k.value for k in ORDER_KINDS}:
                due_at = self._deadlines.after_working_days(step.verified_at or step.at, ORDER_WORKING_DAYS)
            payload = public.follow_up(lead_id=lead_id, kind=step.kind, task_id=step.task_id, line=line,
                                       uscc=step.uscc, entity_name=name, result_category=step.category,
                                       due_at=due_at)
            stored_due = None
            if step.kind != CREDIT_FEEDBACK:
                stored_due = outbox.open_follow_up(
                    connection, lead_id=lead_id, kind=step.kind, task_id=step.task_id, task_code=line["task_code"],
                    uscc=step.uscc, entity_name=name, category=step.category, at=step.at, due_at=due_at,
                    workflow_id=workflow_id(), step=step.step)
                targets.project(connection, step.task_id, step.uscc, step.at, stage="follow_up")
            self._notifier.enqueue(connection, workflow_id(), step.step, step.kind, public.check(payload))
        return FollowUpOpened(lead_id=lead_id, due_at=stored_due)

    @activity.defn
    @no_retry_cures
    def deliver(self, delivery: Delivery) -> None:
        self._notifier.deliver(delivery.workflow_id, delivery.step)
        with self._engine.begin() as connection:
            lead = outbox.follow_up_of(connection, delivery.workflow_id, delivery.step)
            if lead and lead["kind"] in CLOSED_ON_ACCEPTANCE:
                outbox.close_follow_up(connection, lead["lead_id"], datetime.now(timezone.utc),
                                       "accepted by the receiving system")

    @activity.defn
    @no_retry_cures
    def close_follow_up(self, closing: FollowUpClosing) -> None:
        with self._engine.begin() as connection:
            outbox.close_follow_up(connection, closing.lead_id, closing.at, closing.closed_by)
