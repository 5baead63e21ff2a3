"""The rules of a target's inspection (domain.results), pure: each rule on what it accepts and the exact
message of what it refuses (the command line prints them and tests/workflows/test_refusals.py sends them),
each command's rules in the order a person meets them, and the records' field validators calling them."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pydantic
import pytest

from domain.messages.target import CheckRecord, ManualAssignment, Recheck, ResultEntry, Review, TargetContext, Team
from domain.results import (
    Refused,
    Standing,
    allowed_method,
    certificates_shown,
    evidence_fingerprinted,
    findings_cover_checklist,
    findings_pass_or_fail,
    in_stage,
    known_category,
    may_assign_team,
    may_enter_result,
    may_record_check,
    may_record_recheck,
    may_review,
    note_if_needed,
    on_team,
    order_awaits_recheck,
    return_explained,
    reviewer_of_unit,
    reviewer_off_team,
    supervisor_assigns,
    team_of_two,
    team_unsettled,
    two_inspectors,
    unit_dispatches,
)
from domain.stages import Stage

AT = datetime(2025, 5, 6, tzinfo=timezone.utc)
CTX = TargetContext(
    task_code="T-2025-01", unit="U1", region="360100", kind="random",
    teams=[Team(unit="U1", inspectors=["I1", "I2"]), Team(unit="U2", inspectors=["J1", "J2"])],
    unstaffed_units=["U3"], reviewers=["R1", "R2"], supervisors=["S1"], review_required=True,
    methods=["onsite", "document"], checklist=["P1", "P2"], reminder_at=AT, window_end=AT,
)
TEAM = frozenset({"I1", "I2", "J1", "J2"})
DIGEST = "0123456789abcdef" * 4
ALL_PASS = {"P1": "pass", "P2": "pass"}
CATEGORY_CODES = ("no_issue, unpublished_info, unreachable, obstructed, no_activity, ordered_to_correct, "
                  "pending_investigation, passed, failed, other")


def at(stage: Stage, **changes) -> Standing:
    return Standing(**{"stage": stage, "ctx": CTX, "team": TEAM, **changes})


def entry(category: str = "no_issue", **changes) -> ResultEntry:
    return ResultEntry(**{"inspector": "I1", "category": category, "findings": ALL_PASS, **changes})


def check(*inspectors: str, method: str = "document", shown: bool = False) -> CheckRecord:
    return CheckRecord(inspectors=list(inspectors) or ["I1", "I2"], method=method, certificates_shown=shown)


def assignment(unit: str = "U1", inspectors: tuple[str, ...] = ("I1", "K1"), by: str = "S1") -> ManualAssignment:
    return ManualAssignment(unit=unit, inspectors=list(inspectors), by=by, reason="I2 is ill")


def refusal(rule) -> str | None:
    """The message of the rule's refusal, None when it accepts."""
    try:
        rule()
    except Refused as refused:
        return str(refused)
    return None


RULES = [
    # what a command must say on its own
    ("evidence with its digest", lambda: evidence_fingerprinted([f"s3://evidence/a.jpg#{DIGEST}"]), None),
    ("evidence without a digest", lambda: evidence_fingerprinted([f"s3://evidence/a.jpg#{DIGEST}", "a.jpg"]),
     "evidence 'a.jpg' must be URI#sha256 (64 lowercase hex digits)"),
    ("evidence in upper-case hex", lambda: evidence_fingerprinted([f"a.jpg#{DIGEST.upper()}"]),
     f"evidence 'a.jpg#{DIGEST.upper()}' must be URI#sha256 (64 lowercase hex digits)"),
    ("findings pass and fail", lambda: findings_pass_or_fail({"P1": "pass", "P2": "fail"}), None),
    ("a finding neither", lambda: findings_pass_or_fail({"P1": "pass", "P2": "ok"}),
     "finding P2:ok must be pass or fail"),
    ("a known category", lambda: known_category("ordered_to_correct"), None),
    ("an unknown category", lambda: known_category("bogus"),
     f"unknown result category 'bogus'; one of: {CATEGORY_CODES}"),
    # where the target stands
    ("the stage expected", lambda: in_stage(at(Stage.CHECKED), Stage.CHECKED, "enter a result"), None),
    ("another stage", lambda: in_stage(at(Stage.DISPATCHED), Stage.CHECKED, "enter a result"),
     "cannot enter a result in stage dispatched"),
    ("a cancelled task, before its stage", lambda: in_stage(at(Stage.DISPATCHED, cancel="计划调整"), Stage.CHECKED,
                                                            "enter a result"), "the task was cancelled: 计划调整"),
    ("a target still loading", lambda: in_stage(at(Stage.DISPATCHED, ctx=None), Stage.DISPATCHED, "record a check"),
     "the target is still being dispatched; try again in a moment"),
    ("the team", lambda: on_team(["I1", "J2"], TEAM), None),
    ("outsiders, sorted", lambda: on_team(["Z9", "I1", "A9"], TEAM),
     "not on this target's team: A9, Z9 (team: I1, I2, J1, J2)"),
    ("two inspectors", lambda: two_inspectors(["I1", "I2"]), None),
    ("one inspector", lambda: two_inspectors(["I1"]),
     "a check needs at least two inspectors of the team (R15); named: I1"),
    ("one inspector twice", lambda: two_inspectors(["I1", "I1"]),
     "a check needs at least two inspectors of the team (R15); named: I1, I1"),
    ("an allowed method", lambda: allowed_method("document", CTX.methods), None),
    ("a method of other items", lambda: allowed_method("entrusted", CTX.methods),
     "method 'entrusted' is not allowed for this task's items; allowed: onsite, document"),
    ("onsite, certificates shown", lambda: certificates_shown(check(method="onsite", shown=True)), None),
    ("onsite, certificates not shown", lambda: certificates_shown(check(method="onsite")),
     "an onsite check must record that certificates were shown (R30): add --certificates-shown"),
    ("no certificates to show on documents", lambda: certificates_shown(check(method="document")), None),
    ("其他情况 with a note", lambda: note_if_needed(entry("other", note="搬迁中")), None),
    ("其他情况 without a note", lambda: note_if_needed(entry("other")), "category 'other' needs a note (--note)"),
    ("其他情况 with a blank note", lambda: note_if_needed(entry("other", note=" \t")),
     "category 'other' needs a note (--note)"),
    ("a category that says it all", lambda: note_if_needed(entry("no_issue")), None),
    ("each check point", lambda: findings_cover_checklist(ALL_PASS, CTX.checklist), None),
    ("a check point missing", lambda: findings_cover_checklist({"P2": "pass"}, CTX.checklist),
     "a finding is needed for each check point; missing: P1"),
    ("a check point of another checklist", lambda: findings_cover_checklist({**ALL_PASS, "Q1": "fail"}, CTX.checklist),
     "check points not in this task's checklists: Q1"),
    ("missing is named before unknown", lambda: findings_cover_checklist({"P1": "pass", "Q1": "pass"}, CTX.checklist),
     "a finding is needed for each check point; missing: P2"),
    ("a reviewer of the unit", lambda: reviewer_of_unit("R1", CTX), None),
    ("a supervisor reviewing", lambda: reviewer_of_unit("S1", CTX), "S1 is not a reviewer of unit U1"),
    ("a reviewer off the team", lambda: reviewer_off_team("R1", TEAM), None),
    ("a reviewer on the team", lambda: reviewer_off_team("J1", TEAM),
     "J1 is on the inspection team and cannot review its result"),
    ("an approval without a note", lambda: return_explained(Review(reviewer="R1", approve=True)), None),
    ("a return with a note", lambda: return_explained(Review(reviewer="R1", approve=False, note="补拍照片")), None),
    ("a return with a blank note", lambda: return_explained(Review(reviewer="R1", approve=False, note="  ")),
     "a return needs a note saying what to change"),
    *[(f"a team changed at {stage.value}", lambda stage=stage: team_unsettled(stage), None)
      for stage in (Stage.UNSTAFFED, Stage.DISPATCHED, Stage.CHECKED, Stage.ENTERED)],
    *[(f"a team changed at {stage.value}", lambda stage=stage: team_unsettled(stage),
       f"the team cannot change once the result is approved (stage {stage.value})")
      for stage in (Stage.APPROVED, Stage.FOLLOW_UP, Stage.CLOSED, Stage.CANCELLED)],
    *[(f"unit {unit} staffing", lambda unit=unit: unit_dispatches(unit, CTX), None) for unit in ("U1", "U2", "U3")],
    ("a unit of another target", lambda: unit_dispatches("U9", CTX), "unit U9 does not dispatch for this target"),
    ("a supervisor assigning", lambda: supervisor_assigns("S1", CTX), None),
    ("a reviewer assigning", lambda: supervisor_assigns("R1", CTX), "R1 is not a supervisor of unit U1"),
    ("a team of two", lambda: team_of_two(["I1", "K1"]), None),
    ("a team of one twice", lambda: team_of_two(["I1", "I1"]), "a team needs at least two different inspectors (R15)"),
    *[(f"an order to {code}", lambda code=code: order_awaits_recheck(at(Stage.FOLLOW_UP, result=entry(code))), None)
      for code in ("ordered_to_correct", "unpublished_info")],
    ("a re-check before the follow-up",
     lambda: order_awaits_recheck(at(Stage.APPROVED, result=entry("unpublished_info"))),
     "no order is waiting for a re-check (stage approved)"),
    ("a second re-check", lambda: order_awaits_recheck(
        at(Stage.FOLLOW_UP, result=entry("unpublished_info"), recheck=Recheck(inspector="I1", passed=False))),
     "no order is waiting for a re-check (stage follow_up)"),
    ("a re-check with no result", lambda: order_awaits_recheck(at(Stage.FOLLOW_UP)),
     "no order is waiting for a re-check (stage follow_up)"),
    ("a re-check of a case lead", lambda: order_awaits_recheck(at(Stage.FOLLOW_UP, result=entry("obstructed"))),
     "the follow-up of 'obstructed' takes no re-check"),
]


@pytest.mark.parametrize("rule, refused", [case[1:] for case in RULES], ids=[case[0] for case in RULES])
def test_each_rule(rule, refused):
    assert refusal(rule) == refused


# Each command's rules in order: the first it breaks is the one named.
COMMANDS = [
    ("a check", lambda: may_record_check(check(), at(Stage.DISPATCHED)), None),
    ("a check once cancelled", lambda: may_record_check(check("I1"), at(Stage.DISPATCHED, cancel="撤销")),
     "the task was cancelled: 撤销"),
    ("a second check", lambda: may_record_check(check("I1"), at(Stage.CHECKED)),
     "cannot record a check in stage checked"),
    ("one outsider checking", lambda: may_record_check(check("Z9"), at(Stage.DISPATCHED)),
     "a check needs at least two inspectors of the team (R15); named: Z9"),
    ("an outsider checking on site", lambda: may_record_check(check("I1", "Z9", method="onsite"), at(Stage.DISPATCHED)),
     "not on this target's team: Z9 (team: I1, I2, J1, J2)"),
    ("a check by a team a supervisor changed",
     lambda: may_record_check(check("I1", "K1"), at(Stage.DISPATCHED, team=frozenset({"I1", "K1"}))), None),
    ("an entrusted check", lambda: may_record_check(check(method="entrusted"), at(Stage.DISPATCHED)),
     "method 'entrusted' is not allowed for this task's items; allowed: onsite, document"),
    ("an onsite check", lambda: may_record_check(check(method="onsite"), at(Stage.DISPATCHED)),
     "an onsite check must record that certificates were shown (R30): add --certificates-shown"),
    ("a result", lambda: may_enter_result(entry(), at(Stage.CHECKED)), None),
    ("a result before the check", lambda: may_enter_result(entry(inspector="Z9"), at(Stage.DISPATCHED)),
     "cannot enter a result in stage dispatched"),
    ("a result by an outsider", lambda: may_enter_result(entry("other", inspector="Z9"), at(Stage.CHECKED)),
     "not on this target's team: Z9 (team: I1, I2, J1, J2)"),
    ("其他情况 without note nor findings", lambda: may_enter_result(entry("other", findings={}), at(Stage.CHECKED)),
     "category 'other' needs a note (--note)"),
    ("a result without findings", lambda: may_enter_result(entry(findings={}), at(Stage.CHECKED)),
     "a finding is needed for each check point; missing: P1, P2"),
    ("an approval", lambda: may_review(Review(reviewer="R2", approve=True), at(Stage.ENTERED)), None),
    ("a review of a returned result", lambda: may_review(Review(reviewer="J1", approve=False), at(Stage.CHECKED)),
     "cannot review a result in stage checked"),
    ("a return by an inspector", lambda: may_review(Review(reviewer="J1", approve=False), at(Stage.ENTERED)),
     "J1 is not a reviewer of unit U1"),
    ("a reviewer put on the team", lambda: may_review(Review(reviewer="R1", approve=False),
                                                      at(Stage.ENTERED, team=TEAM | {"R1"})),
     "R1 is on the inspection team and cannot review its result"),
    ("a return without a note", lambda: may_review(Review(reviewer="R1", approve=False), at(Stage.ENTERED)),
     "a return needs a note saying what to change"),
    ("an assignment", lambda: may_assign_team(assignment(), at(Stage.UNSTAFFED)), None),
    ("an assignment once cancelled, before the target stops",
     lambda: may_assign_team(assignment(), at(Stage.CHECKED, cancel="撤销")), None),
    ("an assignment after approval", lambda: may_assign_team(assignment("U9", ("I1",), "R1"), at(Stage.APPROVED)),
     "the team cannot change once the result is approved (stage approved)"),
    ("an assignment for another unit", lambda: may_assign_team(assignment("U9", ("I1",), "R1"), at(Stage.ENTERED)),
     "unit U9 does not dispatch for this target"),
    ("an assignment by a reviewer", lambda: may_assign_team(assignment("U3", ("I1",), "R1"), at(Stage.ENTERED)),
     "R1 is not a supervisor of unit U1"),
    ("an assignment of one", lambda: may_assign_team(assignment("U3", ("K1",)), at(Stage.ENTERED)),
     "a team needs at least two different inspectors (R15)"),
    ("a re-check", lambda: may_record_recheck(Recheck(inspector="J2", passed=True),
                                              at(Stage.FOLLOW_UP, result=entry("ordered_to_correct"))), None),
    ("a re-check by an outsider of a case lead", lambda: may_record_recheck(
        Recheck(inspector="Z9", passed=True), at(Stage.FOLLOW_UP, result=entry("failed"))),
     "the follow-up of 'failed' takes no re-check"),
    ("a re-check by an outsider", lambda: may_record_recheck(
        Recheck(inspector="Z9", passed=True), at(Stage.FOLLOW_UP, result=entry("ordered_to_correct"))),
     "not on this target's team: Z9 (team: I1, I2, J1, J2)"),
]


@pytest.mark.parametrize("command, refused", [case[1:] for case in COMMANDS], ids=[case[0] for case in COMMANDS])
def test_each_command_names_the_first_rule_it_breaks(command, refused):
    assert refusal(command) == refused


# The records' field validators refuse with the same rules: a client never sends such a command.
RECORDS = [
    (lambda: CheckRecord(inspectors=["I1", "I2"], method="onsite", evidence=["a.jpg#" + DIGEST[:-1]]),
     f"evidence 'a.jpg#{DIGEST[:-1]}' must be URI#sha256 (64 lowercase hex digits)"),
    (lambda: entry("bogus"), f"unknown result category 'bogus'; one of: {CATEGORY_CODES}"),
    (lambda: entry(findings={"P1": "pass", "P2": "FAIL"}), "finding P2:FAIL must be pass or fail"),
]


@pytest.mark.parametrize("build, refused", RECORDS, ids=["evidence", "category", "findings"])
def test_the_records_refuse_by_the_same_rules(build, refused):
    with pytest.raises(pydantic.ValidationError, match=re.escape(refused)):
        build()


def test_the_records_take_what_the_rules_accept():
    recorded = CheckRecord(inspectors=["I1", "I2"], method="onsite", certificates_shown=True,
                           evidence=[f"s3://evidence/a.jpg#{DIGEST}"])
    assert recorded.evidence == [f"s3://evidence/a.jpg#{DIGEST}"]
    assert entry("other", note="搬迁中").findings == ALL_PASS
