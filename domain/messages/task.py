"""The inspection task workflow's messages (InspectionTaskWorkflow, task/{task_id})."""
from __future__ import annotations

from datetime import datetime

from pydantic import Field

from domain.messages.base import ID, Command, HumanStep, Record, bounded
from domain.stages import Stage


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


class Redraw(HumanStep):
    """A redraw before dispatch (draw-protocol.md): new nonce, commitment, later entropy, next draw_seq."""

    reason: str = Field(min_length=1, pattern=r"\S")
    approver: str = Field(pattern=ID)  # the supervisor who approved it, by their own act (the actor)
    requested_by: str | None = Field(None, pattern=ID)  # the planner who asked for it; None in histories from before

    _bounds = bounded("reason")


class TargetedEntity(Command):
    """An entity inspected for a complaint, a clue or key supervision; it stays in the population."""

    uscc: str
    reason: str = Field(min_length=1, pattern=r"\S")  # not blank
    # The law, regulation or rule that requires the inspection (R12's exception): needed, not blank, to target
    # an entity the frequency cap excludes (an A-class one drawn this year, R12; one at the year's cap, R14).
    legal_basis: str | None = Field(default=None, min_length=1, pattern=r"\S")

    _bounds = bounded("uscc", "reason", "legal_basis")


class TargetedStep(Record):
    task_id: str
    uscc: str
    reason: str
    at: datetime
    legal_basis: str | None = None


class WorkingDaysLater(Record):
    task_id: str
    uscc: str | None = None
    start: datetime
    working_days: int


class WaitFor(Record):
    """A wait on people (a supervisor's assignment, an entropy value) that starts at `start`."""

    task_id: str
    uscc: str | None = None
    wait: str  # staffing | entropy
    start: datetime
    not_after: datetime | None = None  # no later than this (the task window's end)


class WaitDeadline(Record):
    """When to remind, when the wait is overdue, and who the task's unit has to answer for it."""

    reminder_at: datetime
    due_at: datetime
    supervisors: list[str]


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


class TaskStatus(Record):
    task_id: str
    stage: Stage
    draw_seq: int
    targets_total: int
    started: int
    finished: int
    cancel_reason: str | None
