"""The target workflow's messages (TargetInspectionWorkflow, target/{task_id}/{uscc})."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from domain import results
from domain.messages.base import Command, Record
from domain.stages import Stage


class Team(Record):
    unit: str
    inspectors: list[str]  # leader first


class TargetContext(Record):
    """What the target's validators need, loaded once at the start (validators cannot read the database)."""

    task_code: str
    unit: str
    region: str
    kind: str  # random | targeted
    teams: list[Team]
    unstaffed_units: list[str]
    reviewers: list[str]
    supervisors: list[str]
    review_required: bool
    methods: list[str]
    checklist: list[str]
    reminder_at: datetime
    window_end: datetime


class HumanStep(Command):
    """A person's step: who authenticated and how (api.md: who acted is who authenticated), set by the
    command service from the actor, never from a door's field. None in histories from before."""

    actor: str | None = None
    auth_method: Literal["password", "oidc", "cli-local"] | None = None


class CheckRecord(HumanStep):
    inspectors: list[str] = Field(min_length=1)
    method: str
    certificates_shown: bool = False
    evidence: list[str] = []

    @field_validator("evidence")
    @classmethod
    def _evidence(cls, values: list[str]) -> list[str]:
        results.evidence_fingerprinted(values)
        return values


class ResultEntry(HumanStep):
    inspector: str
    category: str
    note: str = ""
    findings: dict[str, str] = {}  # check point -> pass | fail

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        results.known_category(value)
        return value

    @field_validator("findings")
    @classmethod
    def _findings(cls, values: dict[str, str]) -> dict[str, str]:
        results.findings_pass_or_fail(values)
        return values


class Review(HumanStep):
    reviewer: str
    approve: bool
    note: str = ""


class ManualAssignment(HumanStep):
    unit: str
    inspectors: list[str]
    by: str
    reason: str = Field(min_length=1, pattern=r"\S")  # not blank


class Recheck(HumanStep):
    inspector: str
    passed: bool
    note: str = ""


class FieldSignal(HumanStep):
    kind: str = Field(pattern="^(accept|arrive)$")
    inspector: str


class TargetState(Record):
    """All a target's workflow knows, carried into its next run when it continues as new at a long wait."""

    ctx: TargetContext
    stage: Stage
    teams: list[Team]
    check: CheckRecord | None = None
    check_at: datetime | None = None
    due: datetime | None = None
    result: ResultEntry | None = None
    returns: int = 0
    approved: bool = False
    overdue: bool = False
    follow_up: str | None = None
    recheck: Recheck | None = None
    signals: list[str] = []
    last_command: str | None = None
    seq: int = 0
    cancel: str | None = None


class TargetRun(Record):
    task_id: str
    uscc: str
    plan_code: str
    plan_year: int
    # "last": only the task's last open target signals its finish (the task counts them in the projection);
    # "each": every target signals, as targets started before that (their input has no such field) do.
    finish_signal: Literal["each", "last"] = "each"
    state: TargetState | None = None  # None: a new target; else the run continues where its previous one stopped


class TargetStep(Record):
    """An activity call for one target: who, which step (idempotency key), when, and the data of the step."""

    task_id: str
    uscc: str
    step: str
    at: datetime
    check: CheckRecord | None = None
    result: ResultEntry | None = None
    review: Review | None = None
    assignment: ManualAssignment | None = None
    due_at: datetime | None = None
    stage: Stage | None = None


class CheckRecorded(Record):
    publication_due: datetime
    reminder_at: datetime


class Alert(Record):
    task_id: str
    uscc: str | None
    kind: str  # reminder | escalation
    step: str
    at: datetime
    details: str
    notify: list[str]


class FollowUpStep(Record):
    task_id: str
    uscc: str
    kind: str
    category: str
    step: str
    at: datetime
    due_at: datetime | None = None


class FollowUpOpened(Record):
    lead_id: str
    due_at: datetime | None


class FollowUpClosing(Record):
    lead_id: str
    at: datetime
    closed_by: str


class Delivery(Record):
    workflow_id: str
    step: str


class TargetStatus(Record):
    task_id: str
    uscc: str
    stage: Stage
    kind: str
    teams: list[Team]
    methods: list[str]
    checklist: list[str]
    reviewers: list[str]
    review_required: bool
    check: CheckRecord | None
    check_at: datetime | None
    result: ResultEntry | None
    returns: int
    publication_due: datetime | None
    overdue: bool
    follow_up: str | None
    field_signals: list[str]
    commands: int  # accepted commands so far: part of each update id
    last_command: str | None  # canonical form of the last accepted command, so a repeat is "already recorded"
