"""The rules of a target's inspection: its check, its result (抽查检查结果), its review, its team, its re-check.

Each rule is a function that raises `Refused`, its message saying what to change, and returns nothing
when the command may be recorded. Two callers: the records' field validators (domain.messages.target: what a
command must say on its own) and the target workflow's update validators (workflows.target: what it must
say where the target stands, `Standing`). The messages are compared by tests and read by people at the
command line: they do not change.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from domain.categories import CATEGORIES, ORDER_KINDS, category
from domain.stages import Stage

if TYPE_CHECKING:  # annotations only: domain.messages.target calls these rules from its validators
    from domain.messages.target import CheckRecord, ManualAssignment, Recheck, ResultEntry, Review, TargetContext

EVIDENCE = re.compile(r"^\S+#[0-9a-f]{64}$")
# Once its result is approved, the team that inspected is the one on record.
TEAM_SETTLED = (Stage.APPROVED, Stage.FOLLOW_UP, Stage.CLOSED, Stage.CANCELLED)


class Refused(ValueError):
    """A rule refused the command: it is not recorded. A ValueError, so a field validator's refusal
    is a pydantic ValidationError carrying the same message."""


@dataclass(frozen=True)
class Standing:
    """Where a target stands, as its update validators see it."""

    stage: Stage
    ctx: TargetContext | None  # None until the target has loaded what its validators need
    team: frozenset[str]  # the inspectors of its teams now (a manual assignment changes them)
    cancel: str | None = None  # the task's cancellation reason
    result: ResultEntry | None = None
    recheck: Recheck | None = None


# --- what a command must say on its own (the records' field validators) ----------------------------
def evidence_fingerprinted(evidence: Iterable[str]) -> None:
    """Evidence names its file and the file's SHA-256 digest."""
    for value in evidence:
        if not EVIDENCE.match(value):
            raise Refused(f"evidence {value!r} must be URI#sha256 (64 lowercase hex digits)")


def findings_pass_or_fail(findings: dict[str, str]) -> None:
    for point, outcome in findings.items():
        if outcome not in ("pass", "fail"):
            raise Refused(f"finding {point}:{outcome} must be pass or fail")


def known_category(code: str) -> None:
    """R20: a result is one of the published categories."""
    if code not in CATEGORIES:
        raise Refused(f"unknown result category {code!r}; one of: {', '.join(CATEGORIES)}")


# --- what a command must say where the target stands (the workflow's update validators) -------------
def in_stage(standing: Standing, stage: Stage, what: str) -> None:
    """The steps come in order, each once the one before it is recorded, and none once the task is cancelled."""
    if standing.cancel is not None:
        raise Refused(f"the task was cancelled: {standing.cancel}")
    if standing.ctx is None:
        raise Refused("the target is still being dispatched; try again in a moment")
    if standing.stage != stage:
        raise Refused(f"cannot {what} in stage {standing.stage.value}")


def on_team(named: Iterable[str], team: frozenset[str]) -> None:
    """谁检查、谁录入 (R22): whoever checks, enters or re-checks is on the target's team."""
    outsiders = sorted(set(named) - team)
    if outsiders:
        raise Refused(f"not on this target's team: {', '.join(outsiders)} (team: {', '.join(sorted(team))})")


def two_inspectors(inspectors: list[str]) -> None:
    """R15: at least two enforcement officers check a target."""
    if len(set(inspectors)) < 2:
        raise Refused(f"a check needs at least two inspectors of the team (R15); named: {', '.join(inspectors)}")


def allowed_method(method: str, methods: list[str]) -> None:
    """The task's check items allow these methods only."""
    if method not in methods:
        raise Refused(f"method {method!r} is not allowed for this task's items; allowed: {', '.join(methods)}")


def certificates_shown(check: CheckRecord) -> None:
    """R30: on site, the inspectors show their certificates, and the check records that they did."""
    if check.method == "onsite" and not check.certificates_shown:
        raise Refused("an onsite check must record that certificates were shown (R30): add --certificates-shown")


def note_if_needed(entry: ResultEntry) -> None:
    """A category such as 其他情况 says nothing on its own: its note says what was found."""
    if category(entry.category).needs_note and not entry.note.strip():
        raise Refused(f"category {entry.category!r} needs a note (--note)")


def findings_cover_checklist(findings: dict[str, str], checklist: list[str]) -> None:
    """One finding for each check point of the task's checklists, and none for any other."""
    missing = sorted(set(checklist) - set(findings))
    unknown = sorted(set(findings) - set(checklist))
    if missing:
        raise Refused(f"a finding is needed for each check point; missing: {', '.join(missing)}")
    if unknown:
        raise Refused(f"check points not in this task's checklists: {', '.join(unknown)}")


def reviewer_of_unit(reviewer: str, ctx: TargetContext) -> None:
    """R22: the inspecting unit's reviewers review before publication."""
    if reviewer not in ctx.reviewers:
        raise Refused(f"{reviewer} is not a reviewer of unit {ctx.unit}")


def reviewer_off_team(reviewer: str, team: frozenset[str]) -> None:
    """No one reviews a result they inspected."""
    if reviewer in team:
        raise Refused(f"{reviewer} is on the inspection team and cannot review its result")


def return_explained(review: Review) -> None:
    """A returned result says what to change."""
    if not review.approve and not review.note.strip():
        raise Refused("a return needs a note saying what to change")


def team_unsettled(stage: Stage) -> None:
    if stage in TEAM_SETTLED:
        raise Refused(f"the team cannot change once the result is approved (stage {stage.value})")


def unit_dispatches(unit: str, ctx: TargetContext) -> None:
    """Only a unit that dispatches for this target (the task's own, or a joint task's, R18) staffs it."""
    if unit not in {ctx.unit, *(t.unit for t in ctx.teams), *ctx.unstaffed_units}:
        raise Refused(f"unit {unit} does not dispatch for this target")


def supervisor_assigns(by: str, ctx: TargetContext) -> None:
    """A team is assigned by hand by a supervisor of the unit, who answers for it."""
    if by not in ctx.supervisors:
        raise Refused(f"{by} is not a supervisor of unit {ctx.unit}")


def team_of_two(inspectors: list[str]) -> None:
    """R15: a team has at least two different inspectors."""
    if len(set(inspectors)) < 2:
        raise Refused("a team needs at least two different inspectors (R15)")


def order_awaits_recheck(standing: Standing) -> None:
    """R25: a re-check answers an order (to publish, to correct), once, while it waits."""
    if standing.stage != Stage.FOLLOW_UP or standing.recheck is not None or not standing.result:
        raise Refused(f"no order is waiting for a re-check (stage {standing.stage.value})")
    if category(standing.result.category).follow_up not in ORDER_KINDS:
        raise Refused(f"the follow-up of {standing.result.category!r} takes no re-check")


# --- each command's rules, in the order a person meets them --------------------------------------------
def may_record_check(check: CheckRecord, standing: Standing) -> None:
    in_stage(standing, Stage.DISPATCHED, "record a check")
    assert standing.ctx
    two_inspectors(check.inspectors)
    on_team(check.inspectors, standing.team)
    allowed_method(check.method, standing.ctx.methods)
    certificates_shown(check)


def may_enter_result(entry: ResultEntry, standing: Standing) -> None:
    in_stage(standing, Stage.CHECKED, "enter a result")
    assert standing.ctx
    on_team([entry.inspector], standing.team)
    note_if_needed(entry)
    findings_cover_checklist(entry.findings, standing.ctx.checklist)


def may_review(review: Review, standing: Standing) -> None:
    in_stage(standing, Stage.ENTERED, "review a result")
    assert standing.ctx
    reviewer_of_unit(review.reviewer, standing.ctx)
    reviewer_off_team(review.reviewer, standing.team)
    return_explained(review)


def may_assign_team(assignment: ManualAssignment, standing: Standing) -> None:
    assert standing.ctx
    team_unsettled(standing.stage)
    unit_dispatches(assignment.unit, standing.ctx)
    supervisor_assigns(assignment.by, standing.ctx)
    team_of_two(assignment.inspectors)


def may_record_recheck(recheck: Recheck, standing: Standing) -> None:
    order_awaits_recheck(standing)
    on_team([recheck.inspector], standing.team)
