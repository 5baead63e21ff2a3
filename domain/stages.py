"""Where a task or a target stands: its own module so the rules (domain.results) and the records
(domain.messages.target, whose validators call those rules) can both use it without importing each other."""
from __future__ import annotations

from enum import Enum


class Stage(str, Enum):
    """Where a task or a target stands; also the `SpotcheckStage` search attribute."""

    PUBLISHED = "published"  # plan
    ANNOUNCED = "announced"
    FROZEN = "frozen"
    AWAITING_ENTROPY = "awaiting_entropy"
    DRAWN = "drawn"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    UNSTAFFED = "unstaffed"
    CHECKED = "checked"
    ENTERED = "entered"
    APPROVED = "approved"
    FOLLOW_UP = "follow_up"
    CLOSED = "closed"
    CANCELLED = "cancelled"
