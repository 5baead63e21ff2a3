"""The target workflow's messages (TargetInspectionWorkflow, target/{task_id}/{uscc})."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from domain import alert_texts, public, results
from domain.messages.base import LINE_CAP, HumanStep, Record, bounded
from domain.stages import Stage
from domain.text import TextRefused, check_evidence_uri, check_line

MAX_EVIDENCE = 50  # files named by one check: photos, a record, a signed form
MAX_FINDINGS = 200  # check points of one result: the task's checklists (domain.plan.MAX_ITEMS items)


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
    # R23: the marking the task's items carry (the plan's withheld_items); None when no item is marked
    withholding: Withholding | None = None
    team_notified: bool = False  # open_target told the team (asked to, and every unit staffed)


class CheckRecord(HumanStep):
    inspectors: list[str] = Field(min_length=1)
    method: str
    certificates_shown: bool = False
    evidence: list[str] = []

    _bounds = bounded("inspectors", "method")

    @field_validator("evidence")
    @classmethod
    def _evidence(cls, values: list[str]) -> list[str]:
        if len(values) > MAX_EVIDENCE:
            raise TextRefused("evidence", f"names {len(values)} files; the cap is {MAX_EVIDENCE}")
        results.evidence_fingerprinted(values)  # its message first: tests and people know it
        return [check_evidence_uri(value) for value in values]


class ResultEntry(HumanStep):
    inspector: str
    category: str
    note: str = ""
    findings: dict[str, str] = {}  # check point -> pass | fail

    _bounds = bounded("inspector", "note")

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        results.known_category(check_line(value, "category", LINE_CAP))
        return value

    @field_validator("findings")
    @classmethod
    def _findings(cls, values: dict[str, str]) -> dict[str, str]:
        if len(values) > MAX_FINDINGS:
            raise TextRefused("findings", f"are {len(values)}; the cap is {MAX_FINDINGS}")
        for point in values:
            check_line(point, "check point", LINE_CAP)
        results.findings_pass_or_fail(values)
        return values


class Review(HumanStep):
    reviewer: str
    approve: bool
    note: str = ""

    _bounds = bounded("reviewer", "note")


class ManualAssignment(HumanStep):
    unit: str
    inspectors: list[str]
    by: str
    reason: str = Field(min_length=1, pattern=r"\S")  # not blank

    _bounds = bounded("unit", "inspectors", "by", "reason")


class Recheck(HumanStep):
    inspector: str
    passed: bool
    note: str = ""

    _bounds = bounded("inspector", "note")


class Withholding(HumanStep):
    """R23: the result touches state secrets, trade secrets or privacy; these public fields wait for an approver."""

    marked_by: str
    grounds: Literal["state_secret", "trade_secret", "privacy"]
    fields: list[str] = Field(min_length=1)
    reason: str = Field(min_length=1, pattern=r"\S")

    _bounds = bounded("marked_by", "reason")

    @field_validator("fields")
    @classmethod
    def _fields(cls, values: list[str]) -> list[str]:
        unknown = sorted(set(values) - set(public.WITHHOLDABLE))
        if unknown:
            raise TextRefused("fields", f"{', '.join(unknown)}: only {', '.join(public.WITHHOLDABLE)} may be withheld")
        return sorted(set(values))


class WithholdingDecision(HumanStep):
    approver: str
    approve: bool
    note: str = ""

    _bounds = bounded("approver", "note")


class FieldSignal(HumanStep):
    kind: str = Field(pattern="^(accept|arrive)$")
    inspector: str
    # The door's idempotency key, digested (service.targets.field_signal): a signal whose key the target has
    # seen is a retry of one already logged (its door died before answering) and is not logged twice.
    request: str | None = None

    _bounds = bounded("inspector", "request")


# Field signals gate nothing and anyone may send them: the target keeps the last few and counts the rest, so
# no number of them grows its state, its status query or what it carries across continue-as-new.
KEPT_SIGNALS = 20
# The answers of the last few commands, by update id, carried across continue-as-new: a door's retry of a
# command whose answer it lost (its process died) gets that answer again, and no second effect, even when
# the target has continued as new since (Temporal dedupes an update id within one run only).
KEPT_ANSWERS = 20


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
    signals: list[str] = []  # the last KEPT_SIGNALS field signals
    signal_count: int = 0  # every field signal received, kept or not
    last_command: str | None = None
    seq: int = 0
    cancel: str | None = None
    withholding: Withholding | None = None  # R23: marked before approval
    withholding_approved: bool | None = None  # None: not decided yet
    answers: dict[str, str] = {}  # update id -> its answer, the last KEPT_ANSWERS


class TargetRun(Record):
    task_id: str
    uscc: str
    plan_code: str
    plan_year: int
    # "last": only the task's last open target signals its finish (the task counts them in the projection);
    # "each": every target signals, as targets started before that (their input has no such field) do.
    finish_signal: Literal["each", "last"] = "each"
    state: TargetState | None = None  # None: a new target; else the run continues where its previous one stopped


class TargetsShard(Record):
    """One slice of a task's targets to start: the `count` targets after the first `skip` ones after `after`
    (USCC order). The target's input comes as a template (its `uscc` is set per target), the workflow type and
    id prefix from the workflows (the activity layer does not import them): no id list travels."""

    run: TargetRun
    workflow: str
    id_prefix: str
    after: str | None = None
    skip: int = 0
    count: int


class TargetsStarted(Record):
    handled: int  # started now, or found started before (a retry, an earlier run of the task)
    last: str | None = None  # the shard's last USCC


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
    withholding: Withholding | None = None  # marked; with publish-result: approved, so the fields are withheld
    withholding_decision: WithholdingDecision | None = None
    notify_team: bool = False  # with open: tell the team in the same step when every unit is staffed


class CheckRecorded(Record):
    publication_due: datetime
    reminder_at: datetime


class Alert(Record):
    task_id: str
    uscc: str | None
    kind: str  # reminder | escalation | notice
    step: str
    at: datetime
    details: str
    notify: list[str]


TEAM_NOTICE = "notify-team"


def team_notice(task_id: str, uscc: str, at: datetime, teams: list[Team]) -> Alert:
    """The notice that tells a target's team they are on it: one per target (its step is the key)."""
    return Alert(task_id=task_id, uscc=uscc, kind="notice", step=TEAM_NOTICE, at=at,
                 details=alert_texts.TEAM_TOLD,
                 notify=sorted({i for t in teams for i in t.inspectors}))


def substitution_steps(step: str) -> tuple[str, str]:
    """The steps (keys) of an assignment's notices: to those who join, to those who leave."""
    return f"{TEAM_NOTICE}-{step}", f"{TEAM_NOTICE}-{step}-off"


def substitution_notices(task_id: str, uscc: str, at: datetime, step: str, before: list[str],
                         after: list[str]) -> list[Alert]:
    """A unit's team substituted after the target's team was told (`step`: the assignment's, the key): the
    inspectors who join are told they are on it, those who leave that they no longer are."""
    joining, leaving = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    joined, left = substitution_steps(step)
    notices = []
    if joining:
        notices.append(Alert(task_id=task_id, uscc=uscc, kind="notice", step=joined, at=at,
                             details=alert_texts.TEAM_JOINED,
                             notify=joining))
    if leaving:
        notices.append(Alert(task_id=task_id, uscc=uscc, kind="notice", step=left, at=at,
                             details=alert_texts.TEAM_LEFT, notify=leaving))
    return notices


class FollowUpStep(Record):
    task_id: str
    uscc: str
    kind: str
    category: str
    step: str
    at: datetime
    due_at: datetime | None = None
    verified_at: datetime | None = None  # the check that verified the finding: an order runs from it (R25)


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
    field_signals: list[str]  # the last KEPT_SIGNALS
    field_signal_count: int = 0  # all of them
    commands: int  # accepted commands so far: part of each update id
    last_command: str | None  # canonical form of the last accepted command, so a repeat is "already recorded"
    withholding: Withholding | None = None
    withholding_approved: bool | None = None
