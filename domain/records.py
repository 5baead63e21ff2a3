"""What passes between the workflows, their activities and the command line.

Small on purpose: ids, counts and instants — never a population, a selection or a plan file
(payloads are stored in the event history for years). Timestamps are always passed in, never
defaulted from the clock, because models are built inside workflow code too.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain import results
from domain.stages import Stage

ID = r"^[A-Za-z0-9._-]{1,32}$"

class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")

class Command(Record):
    """What an operator sends (an update or a signal): its text must be storable and sendable. PostgreSQL
    refuses a NUL (the activity would retry for ever) and UTF-8 cannot encode a lone surrogate (what a
    non-UTF-8 command-line argument decodes to), so both are refused here, naming the field."""

    @field_validator("*")
    @classmethod
    def _text_only(cls, value: object) -> object:
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else \
            [*value, *value.values()] if isinstance(value, dict) else []
        if any(isinstance(text, str) and _NOT_TEXT.search(text) for text in texts):
            raise ValueError("must be text without NUL characters or lone surrogates (\\u0000, \\ud800-\\udfff)")
        return value

# --- plan -------------------------------------------------------------------------------------
class PlanRun(Record):
    plan_code: str

class TaskSlot(Record):
    task_id: str
    unit: str
    start_at: datetime

class PlanPublished(Record):
    plan_code: str
    year: int
    published_at: datetime
    on_time: bool
    tasks: list[TaskSlot]

class Adjustment(Command):
    """A published change to the plan (R5): add a task (already stored by the command line) or cancel one."""

    kind: str = Field(pattern="^(add|cancel)$")
    task_id: str
    reason: str = Field(min_length=1, pattern=r"\S")  # not blank
    approver: str = Field(pattern=ID)
    task_document: str | None = None  # the added task line, validated by the command line, canonical JSON

class AdjustmentStep(Record):
    plan_code: str
    adjustment: Adjustment
    seq: int

class AdjustmentPublished(Record):
    slot: TaskSlot | None  # the added task's start; None for a cancellation

class PlanOutcome(Record):
    plan_code: str
    tasks_closed: int
    tasks_cancelled: int

# --- task --------------------------------------------------------------------------------------
class TaskProgress(Record):
    """What a task carries across continue-as-new: counters and a cursor, never the target list."""

    stage: Stage = Stage.ANNOUNCED
    draw_seq: int = 1
    targets_total: int = 0
    started: int = 0
    finished: int = 0
    cursor: str | None = None  # the last USCC whose target workflow was started
    cancel_reason: str | None = None
    told: str | None = None  # the last started USCC told of the cancellation
    all_told: bool = False  # every started target told, the never-started ones recorded cancelled

class TaskRun(Record):
    task_id: str
    plan_code: str
    plan_year: int
    unit: str
    progress: TaskProgress = TaskProgress()

class TaskStep(Record):
    task_id: str
    draw_seq: int = 1
    entropy: str = ""
    reason: str | None = None  # a redraw's reason and approver, recorded with its announcement
    approver: str | None = None


class Redraw(Command):
    """A redraw before dispatch (draw-protocol.md): new nonce, commitment, later entropy, next draw_seq."""

    reason: str = Field(min_length=1, pattern=r"\S")
    approver: str = Field(pattern=ID)


class TargetedEntity(Command):
    """An entity inspected for a complaint, a clue or key supervision; it stays in the population."""

    uscc: str
    reason: str = Field(min_length=1, pattern=r"\S")  # not blank


class TargetedStep(Record):
    task_id: str
    uscc: str
    reason: str
    at: datetime


class WorkingDaysLater(Record):
    task_id: str
    uscc: str | None = None
    start: datetime
    working_days: int

class Announcement(Record):
    commitment: str
    entropy_source: str

class FreezeSummary(Record):
    frozen_at: datetime
    population: int
    strata: dict[str, int]
    exclusions: dict[str, int]
    population_digest: str

class DrawSummary(Record):
    seed: str
    selected: int
    targeted: int
    strata: dict[str, int]  # quota per stratum
    selection_digest: str
    conflicts: int = 0  # selected entities another task drew after this freeze (R12, R14): the draw is superseded

class DispatchSummary(Record):
    teams: int
    unstaffed: int

class TargetsPage(Record):
    task_id: str
    after: str | None
    limit: int

class TaskTargets(Record):
    """The targets of a task after a USCC (all of them without one); `at`: when a step changes them."""

    task_id: str
    after: str | None = None
    at: datetime | None = None

class TargetCounts(Record):
    finished: int  # closed or cancelled
    total: int

class TaskClosing(Record):
    task_id: str
    cancelled: bool
    reason: str | None = None

class EntropyEntry(Command):
    value: str = Field(pattern=r"^[\x20-\x7e]{0,256}$")

# --- target ------------------------------------------------------------------------------------
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

class CheckRecord(Command):
    inspectors: list[str] = Field(min_length=1)
    method: str
    certificates_shown: bool = False
    evidence: list[str] = []

    @field_validator("evidence")
    @classmethod
    def _evidence(cls, values: list[str]) -> list[str]:
        results.evidence_fingerprinted(values)
        return values

class ResultEntry(Command):
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

class Review(Command):
    reviewer: str
    approve: bool
    note: str = ""

class ManualAssignment(Command):
    unit: str
    inspectors: list[str]
    by: str
    reason: str = Field(min_length=1, pattern=r"\S")  # not blank

class Recheck(Command):
    inspector: str
    passed: bool
    note: str = ""

class FieldSignal(Command):
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

class TaskStatus(Record):
    task_id: str
    stage: Stage
    draw_seq: int
    targets_total: int
    started: int
    finished: int
    cancel_reason: str | None
