"""The messages of the register's own workflows: a correction (更正) of a published result
(CorrectionWorkflow, correction/{task_id}/{uscc}/{n}) and an application to stop publishing one
(StopPublicationWorkflow, stop-publication/{task_id}/{uscc}; R27)."""
from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator, model_validator

from domain import results
from domain.messages.base import LINE_CAP, Command, Record, bounded
from domain.messages.target import HumanStep
from domain.text import check_line


class CorrectionRun(HumanStep):
    """The unit corrects a published result: a new category, a new note, or both, with a reason and an approver."""

    task_id: str
    uscc: str
    n: int = Field(ge=1)  # the target's n-th correction
    category: str | None = None
    note: str | None = None
    reason: str = Field(min_length=1, pattern=r"\S")
    approver: str  # the supervisor giving it: the actor
    request: str | None = None  # the door's idempotency key, hashed: its retry finds this correction

    _bounds = bounded("note", "reason", "approver")

    @field_validator("category")
    @classmethod
    def _category(cls, value: str | None) -> str | None:
        if value is not None:
            results.known_category(check_line(value, "category", LINE_CAP))
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> CorrectionRun:
        if self.category is None and self.note is None:
            raise ValueError("a correction changes the category, the note or both")
        return self


class Published(Record):
    """A result as the register holds it now, and who may decide on it: or why it may not be acted on."""

    refusal: str | None = None
    publication_id: int | None = None
    published_at: datetime | None = None
    supervisors: list[str] = []


class StopPublicationRun(HumanStep):
    """An entity applies to stop the publication of its result (信用修复). `min_days` is the province's minimum
    period (runtime.config) as it stood when the application arrived; None: not set, so refused (R27)."""

    task_id: str
    uscc: str
    applicant: str
    grounds: str = Field(min_length=1, pattern=r"\S")
    min_days: int | None = Field(default=None, ge=0)
    request: str | None = None  # the door's idempotency key, hashed: its retry finds this application

    _bounds = bounded("applicant", "grounds")


class StopDecision(HumanStep):
    """The unit's decision on an application: a supervisor of the result's unit approves or rejects it."""

    decided_by: str  # the supervisor deciding: the actor
    approve: bool
    reason: str = ""

    _bounds = bounded("decided_by", "reason")


class RegisterStep(Command):
    """One step of these workflows, as its activity receives it."""

    step: str
    task_id: str
    uscc: str
    at: datetime
    correction: CorrectionRun | None = None
    application: StopPublicationRun | None = None
    decision: StopDecision | None = None
    eligible_from: datetime | None = None
    decided_at: datetime | None = None
    refusal: str | None = None  # why an application was refused before any decision


class StopPublicationStatus(Record):
    state: str  # applied | refused | rejected | approved | withdrawn
    applied_at: datetime
    eligible_from: datetime | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    withdrawn_at: datetime | None = None
    refusal: str | None = None
