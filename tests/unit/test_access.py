"""domain/access.py: api.md's role table, role by action; a manual assignment's rules, each breached once."""
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest

from domain import access
from domain.access import Actor, Candidate, LoginPolicy
from domain.dispatch import PoolInspector

UNIT, PARENT, OTHER = "360202-SCJ", "360200-SCJ", "360203-SCJ"


def actor(role: str, unit: str | None = UNIT, who: str = "P01") -> Actor:
    return Actor(id=who, roles=frozenset({role}), unit=unit, method="password")


# Each action with everything but the role in the actor's favour: on the team to act on a target,
# off it to review, of the very unit to supervise or plan.
ACTIONS = {
    "inspector": lambda a: access.may_act_on_target(a, team=[a.id, "I09"]),
    "reviewer": lambda a: access.may_review(a, UNIT, team=["I08", "I09"]),
    "supervisor": lambda a: access.may_assign(a, UNIT, unit_parents=[PARENT]),
    "planner": lambda a: access.may_plan(a, UNIT, unit_parents=[PARENT]),
    "auditor": access.may_audit,
    "admin": access.may_admin,
}
APPROVE_REDRAW = lambda a: access.may_approve(a, "PL1", UNIT, [PARENT])  # noqa: E731


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("role", sorted(access.ROLES))
def test_each_action_is_open_to_its_own_role_only(role, action):
    decision = ACTIONS[action](actor(role))
    if role == action:
        assert decision and decision.refusal is None
    else:
        assert not decision
        assert decision.refusal.rule == access.ROLE
        assert decision.refusal.reason == f"P01 is not a {action}"


@pytest.mark.parametrize("role", sorted(access.ROLES))
def test_only_a_supervisor_approves_a_redraw(role):
    decision = APPROVE_REDRAW(actor(role))
    assert bool(decision) == (role == "supervisor")
    if role != "supervisor":
        assert decision.refusal.rule == access.ROLE


def test_an_admin_holding_every_operator_role_still_cannot_inspect_review_or_approve():
    admin = Actor(id="root", roles=access.OPERATOR_ROLES, unit=UNIT, method="cli-local")
    for check in (ACTIONS["inspector"], ACTIONS["reviewer"], ACTIONS["supervisor"], APPROVE_REDRAW):
        assert check(admin).refusal.rule == access.ROLE


@pytest.mark.parametrize("check, rule", [
    (lambda: access.may_act_on_target(actor("inspector"), team=["I08", "I09"]), access.TEAM),
    (lambda: access.may_review(actor("reviewer", unit=PARENT), UNIT, team=["I08"]), access.UNIT),
    (lambda: access.may_review(actor("reviewer"), UNIT, team=["P01", "I09"]), access.OWN_TEAM),
    (lambda: access.may_assign(actor("supervisor", unit=OTHER), UNIT, [PARENT]), access.UNIT),
    (lambda: access.may_assign(actor("supervisor", unit=None), UNIT, [PARENT]), access.UNIT),
    (lambda: access.may_plan(actor("planner", unit=OTHER), UNIT, [PARENT]), access.UNIT),
    (lambda: access.may_approve(actor("supervisor", unit=OTHER), "PL1", UNIT, [PARENT]),
     access.UNIT),
    (lambda: access.may_approve(Actor("P01", frozenset({"supervisor", "planner"}), UNIT, "oidc"), "P01", UNIT, []),
     access.FOUR_EYES),
], ids=["not-on-team", "reviewer-of-parent", "reviewer-on-team", "supervisor-elsewhere", "supervisor-no-unit",
        "planner-elsewhere", "approver-elsewhere", "approver-is-planner"])
def test_refusals_beyond_the_role(check, rule):
    assert check().refusal.rule == rule


def test_a_parent_unit_supervises_and_plans_for_the_units_below_it():
    assert access.may_assign(actor("supervisor", unit=PARENT), UNIT, [PARENT])
    assert access.may_plan(actor("planner", unit=PARENT), UNIT, [PARENT])
    assert access.may_approve(actor("supervisor", unit=PARENT), "PL1", UNIT, [PARENT])
    # ...but a parent's reviewer does not review for the unit (the target's unit only)
    assert not access.may_review(actor("reviewer", unit=PARENT), UNIT, [])


def test_an_actor_names_how_it_authenticated():
    with pytest.raises(ValueError, match="method"):
        Actor(id="I01", roles=frozenset({"inspector"}), unit=UNIT, method="header")
    with pytest.raises(ValueError, match="unknown roles"):
        Actor(id="I01", roles=frozenset({"root"}), unit=UNIT, method="oidc")


# --- a manual assignment ---------------------------------------------------------------------------
AS_OF = date(2025, 4, 1)
USCC = "91360202705565720F"


def candidate(who: str, **change) -> Candidate:
    base = Candidate(
        inspector=PoolInspector(who, "active", date(2027, 12, 31), ("food", "registration"), ()),
        unit=UNIT, roles=frozenset({"inspector"}), load=0,
    )
    pool_change = {k: change.pop(k) for k in ("status", "cert_expiry", "qualifications", "recusal") if k in change}
    return replace(base, inspector=replace(base.inspector, **pool_change), **change)


DIRECTORY = {"I01": candidate("I01"), "I02": candidate("I02")}


def breaches(team=("I01", "I02"), directory=DIRECTORY, override_reason=""):
    return access.assignment_breaches(list(team), directory, unit=UNIT, uscc=USCC, required=["registration"],
                                      as_of=AS_OF, load_cap=2, override_reason=override_reason)


def test_an_assignment_within_every_rule_stands():
    assert breaches() == []


@pytest.mark.parametrize("change, rule, reason", [
    (dict(status="inactive"), "active", "I02 is inactive, not active"),
    (dict(cert_expiry=date(2025, 3, 31)), "certificate",
     "I02's certificate expired on 2025-03-31, before 2025-04-01"),
    (dict(qualifications=("food",)), "qualifications", "I02 lacks the qualification registration"),
    (dict(recusal=(USCC,)), "recusal", f"I02 is recused for {USCC}"),
    (dict(unit=OTHER), access.POOL, f"I02 is of unit {OTHER}, not of {UNIT}'s pool"),
    (dict(roles=frozenset({"reviewer"})), access.ROLE, "I02 does not hold the role inspector"),
    (dict(load=2), "load-cap", "I02 already has 2 targets, the load cap is 2"),
])
def test_each_rule_breached_alone(change, rule, reason):
    directory = {**DIRECTORY, "I02": candidate("I02", **change)}
    assert [(b.rule, b.reason) for b in breaches(directory=directory)] == [(rule, reason)]


def test_a_certificate_valid_on_the_day_itself_is_valid():
    assert breaches(directory={**DIRECTORY, "I02": candidate("I02", cert_expiry=AS_OF)}) == []


def test_an_inspector_missing_from_the_directory_is_not_of_the_pool():
    assert [b.rule for b in breaches(team=("I01", "I07"))] == [access.POOL]


def test_a_team_needs_two_different_inspectors():
    assert [b.rule for b in breaches(team=("I01", "I01"))] == [access.TEAM_SIZE]
    assert [b.rule for b in breaches(team=("I01",))] == [access.TEAM_SIZE]


def test_a_recorded_override_reason_lifts_the_load_cap_only():
    directory = {**DIRECTORY, "I02": candidate("I02", load=5, recusal=(USCC,))}
    assert [b.rule for b in breaches(directory=directory)] == ["recusal", "load-cap"]
    assert [b.rule for b in breaches(directory=directory, override_reason="only food inspector free")] == ["recusal"]
    assert [b.rule for b in breaches(directory=directory, override_reason="   ")] == ["recusal", "load-cap"]


def test_every_breach_is_reported_not_only_the_first():
    directory = {"I01": candidate("I01", status="inactive", unit=OTHER, roles=frozenset())}
    assert [b.rule for b in breaches(team=("I01",), directory=directory)] == [
        "active", access.POOL, access.ROLE, access.TEAM_SIZE]


# --- accounts and logins -----------------------------------------------------------------------------
@pytest.mark.parametrize("user_id, roles, unit, rule", [
    ("a b", [], None, access.USER_ID_RULE),
    ("x" * 33, [], None, access.USER_ID_RULE),
    ("ops", ["root"], None, access.UNKNOWN_ROLE),
    ("ops", ["supervisor"], UNIT, access.FIELD_ROLE),
    ("ops", ["planner"], None, access.PLANNER_UNIT),
])
def test_account_rules(user_id, roles, unit, rule):
    assert [b.rule for b in access.account_breaches(user_id, roles, unit)] == [rule]


def test_an_operator_account_and_an_inspectors_own_account_are_valid():
    assert access.account_breaches("ops.planner", ["planner", "auditor"], UNIT) == []
    assert access.account_breaches("I01", [], None) == []  # its roles come from the directory


def test_password_length():
    assert [b.rule for b in access.password_breaches("short")] == [access.PASSWORD]
    assert [b.rule for b in access.password_breaches("x" * 1025)] == [access.PASSWORD]
    assert access.password_breaches("correct horse battery") == []


NOW = datetime(2025, 4, 1, 9, tzinfo=timezone.utc)
POLICY = LoginPolicy(max_failures=3, lockout=timedelta(minutes=15))


def test_lockout_after_max_failures_in_a_row_for_the_lockout_time():
    failures, until = 0, None
    for _ in range(2):
        failures, until = access.after_failure(failures, NOW, POLICY)
        assert until is None
    failures, until = access.after_failure(failures, NOW, POLICY)
    assert (failures, until) == (0, NOW + timedelta(minutes=15))
    assert access.locked(until, NOW + timedelta(minutes=14, seconds=59))
    assert not access.locked(until, NOW + timedelta(minutes=15))
    assert not access.locked(None, NOW)


def test_throttle_counts_attempts_in_a_fixed_window():
    window = timedelta(minutes=1)
    state = access.throttle(None, 0, NOW, 2, window)
    assert state == access.Throttle(NOW, 1, True)
    state = access.throttle(state.window_start, state.attempts, NOW + timedelta(seconds=30), 2, window)
    assert state.allowed and state.attempts == 2
    state = access.throttle(state.window_start, state.attempts, NOW + timedelta(seconds=59), 2, window)
    assert not state.allowed and state.attempts == 3
    state = access.throttle(state.window_start, state.attempts, NOW + timedelta(seconds=60), 2, window)
    assert state == access.Throttle(NOW + timedelta(seconds=60), 1, True)
