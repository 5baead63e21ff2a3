"""Who may do what (shared/spec/api.md): the role table, a manual assignment's rules, the login policy.

Pure: each function takes the facts as plain values and answers with the rule that refuses, by
name and with a sentence, so a door can say which rule it was (403, 409) and change nothing.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from domain.dispatch import LOAD_CAP, MIN_TEAM_SIZE, Breach, PoolInspector, standing_breaches, target_breaches

FIELD_ROLES = frozenset({"inspector", "reviewer", "supervisor"})  # read from the inspectors directory
OPERATOR_ROLES = frozenset({"planner", "auditor", "admin"})  # held by accounts outside the directory
ROLES = FIELD_ROLES | OPERATOR_ROLES
METHODS = frozenset({"password", "oidc", "cli-local"})  # how the actor authenticated, recorded with each step
USER_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")

# Rule names of the role table.
ROLE = "role"  # the actor lacks the role the action needs
TEAM = "team"  # an inspector acts only on a target of their own team
UNIT = "unit"  # of the unit (or, where the table says so, of a parent unit)
OWN_TEAM = "own-team"  # nobody reviews a result of their own team
FOUR_EYES = "four-eyes"  # a request is approved by someone other than the planner asking for it
# Rule names of a manual assignment, beside domain/dispatch.py's (active, certificate, ...).
POOL = "pool"
TEAM_SIZE = "team-size"
# Rule names of an account.
USER_ID_RULE = "user-id"
UNKNOWN_ROLE = "unknown-role"
FIELD_ROLE = "field-role"
PLANNER_UNIT = "planner-unit"
PASSWORD = "password"


@dataclass(frozen=True)
class Actor:
    """Who acts: the authenticated user with the roles and unit they hold at this moment."""

    id: str
    roles: frozenset[str]
    unit: str | None
    method: str

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r}: must be one of {', '.join(sorted(METHODS))}")
        if not self.roles <= ROLES:
            raise ValueError(f"unknown roles {', '.join(sorted(self.roles - ROLES))}")


@dataclass(frozen=True)
class Decision:
    """Allowed (truthy) or refused by one named rule."""

    refusal: Breach | None = None

    def __bool__(self) -> bool:
        return self.refusal is None


ALLOWED = Decision()


def _lacks(actor: Actor, role: str) -> Breach | None:
    # An admin's role grants nothing else: an admin cannot approve, review or inspect as such.
    return None if role in actor.roles else Breach(ROLE, f"{actor.id} is not a {role}")


def _outside(actor: Actor, role: str, unit: str, unit_parents: Iterable[str]) -> Breach | None:
    if actor.unit == unit or actor.unit in set(unit_parents):
        return None
    return Breach(UNIT, f"{actor.id} is a {role} of {actor.unit or 'no unit'}, not of {unit} or a unit above it")


def may_act_on_target(actor: Actor, team: Iterable[str]) -> Decision:
    """See a target, accept, arrive, record the check, enter the result: an inspector on its team."""
    if refusal := _lacks(actor, "inspector"):
        return Decision(refusal)
    if actor.id not in set(team):
        return Decision(Breach(TEAM, f"{actor.id} is not on this target's team"))
    return ALLOWED


def may_review(actor: Actor, unit: str, team: Iterable[str]) -> Decision:
    """Review a result: a reviewer of the target's unit (that unit only) who is not on its team."""
    if refusal := _lacks(actor, "reviewer"):
        return Decision(refusal)
    if actor.unit != unit:
        return Decision(Breach(UNIT, f"{actor.id} is a reviewer of {actor.unit or 'no unit'}, not of {unit}"))
    if actor.id in set(team):
        return Decision(Breach(OWN_TEAM, f"{actor.id} is on this target's team and cannot review its result"))
    return ALLOWED


def may_assign(actor: Actor, unit: str, unit_parents: Iterable[str]) -> Decision:
    """Assign or substitute a team; see the unit's unstaffed and overdue targets: a supervisor of the unit or above.

    `unit_parents`: the units above `unit`, as the units directory stands now.
    """
    return Decision(_lacks(actor, "supervisor") or _outside(actor, "supervisor", unit, unit_parents))


def may_plan(actor: Actor, owner_unit: str, unit_parents: Iterable[str]) -> Decision:
    """Start, adjust, schedule plans; targeted entities; entropy; redraw: a planner of the owner unit or above."""
    return Decision(_lacks(actor, "planner") or _outside(actor, "planner", owner_unit, unit_parents))


def may_approve(approver: Actor, requested_by: str, owner_unit: str, unit_parents: Iterable[str]) -> Decision:
    """A planner's request (a redraw, a plan adjustment) is approved by a supervisor of the plan's owner unit or
    above, not the planner asking for it."""
    if refusal := _lacks(approver, "supervisor"):
        return Decision(refusal)
    if approver.id == requested_by:
        return Decision(Breach(FOUR_EYES, f"{approver.id} asked for this and cannot approve it too"))
    return Decision(_outside(approver, "supervisor", owner_unit, unit_parents))


def may_decide_publication(actor: Actor, unit: str) -> Decision:
    """Correct a published result, decide on a stop-publication application or on withholding a result's fields
    (R23, R27): a supervisor of the result's unit, that unit only (as the workflows judge it)."""
    if refusal := _lacks(actor, "supervisor"):
        return Decision(refusal)
    if actor.unit != unit:
        return Decision(Breach(UNIT, f"{actor.id} is a supervisor of {actor.unit or 'no unit'}, not of {unit}"))
    return ALLOWED


def may_record_application(actor: Actor, unit: str) -> Decision:
    """Record an entity's application to stop publishing its result (R27), as the unit received it: the entity has
    no account, so staff of the result's unit (an inspector, reviewer or supervisor of it) record it."""
    if not actor.roles & FIELD_ROLES:
        return Decision(Breach(ROLE, f"{actor.id} is not staff of a unit (inspector, reviewer or supervisor)"))
    if actor.unit != unit:
        return Decision(Breach(UNIT, f"{actor.id} is of {actor.unit or 'no unit'}, not of {unit}"))
    return ALLOWED


def may_audit(actor: Actor) -> Decision:
    """Audit packages (population, salt, pools), `draw verify`, the history archive: an auditor."""
    return Decision(_lacks(actor, "auditor"))


def may_admin(actor: Actor) -> Decision:
    """Users: an admin."""
    return Decision(_lacks(actor, "admin"))


# --- a supervisor's manual assignment ---------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """An inspector named in a manual assignment, as the directory stands on the day."""

    inspector: PoolInspector  # status, certificate, qualifications, recusal: the draw's own rules read these
    unit: str
    roles: frozenset[str]
    load: int  # targets of this task the inspector's teams in this unit already hold, this one excluded


def assignment_breaches(
    inspectors: Sequence[str],
    directory: Mapping[str, Candidate],
    *,
    unit: str,
    uscc: str,
    required: Iterable[str],
    as_of: date,
    load_cap: int,
    override_reason: str = "",
) -> list[Breach]:
    """Every rule of the draw a manual assignment breaks (none: it stands).

    Each inspector: active, certificate valid on `as_of`, every qualification of the task's items, not
    recused for the entity, of the assigning unit's pool, role inspector, within the load cap unless an
    override reason is recorded. The team: at least two different inspectors.
    """
    required = set(required)
    override = bool(override_reason.strip())
    breaches: list[Breach] = []
    for inspector_id in dict.fromkeys(inspectors):
        candidate = directory.get(inspector_id)
        if candidate is None:
            breaches.append(Breach(POOL, f"{inspector_id} is not in the inspectors directory"))
            continue
        breaches += standing_breaches(candidate.inspector, required, as_of)
        breaches += [breach for breach in target_breaches(candidate.inspector, uscc, candidate.load, load_cap)
                     if not (override and breach.rule == LOAD_CAP)]
        if candidate.unit != unit:
            breaches.append(Breach(POOL, f"{inspector_id} is of unit {candidate.unit}, not of {unit}'s pool"))
        if "inspector" not in candidate.roles:
            breaches.append(Breach(ROLE, f"{inspector_id} does not hold the role inspector"))
    if len(set(inspectors)) < MIN_TEAM_SIZE:
        breaches.append(Breach(TEAM_SIZE, f"a team needs at least {MIN_TEAM_SIZE} different inspectors"))
    return breaches


# --- accounts and logins ---------------------------------------------------------------------------
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # hashing a megabyte on every attempt would be a way to stall the server


def account_breaches(user_id: str, roles: Iterable[str], unit: str | None) -> list[Breach]:
    """A local account's rules: its id's grammar, operator roles only (field roles come from the directory)."""
    roles = set(roles)
    breaches = []
    if not USER_ID.fullmatch(user_id):
        breaches.append(Breach(USER_ID_RULE, f"user id {user_id!r}: must be 1-32 of A-Z a-z 0-9 . _ -"))
    if roles - ROLES:
        breaches.append(Breach(UNKNOWN_ROLE, f"unknown roles {', '.join(sorted(roles - ROLES))}"))
    if roles & FIELD_ROLES:
        breaches.append(Breach(FIELD_ROLE, f"{', '.join(sorted(roles & FIELD_ROLES))}: field roles come from the"
                                           " inspectors directory, not from an account"))
    if "planner" in roles and not unit:
        breaches.append(Breach(PLANNER_UNIT, "a planner plans for a unit: give the unit"))
    return breaches


def password_breaches(password: str) -> list[Breach]:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return [Breach(PASSWORD, f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")]
    return []


@dataclass(frozen=True)
class LoginPolicy:
    """Lockout after `max_failures` wrong passwords in a row; and at most so many attempts a window, per
    user name and per client, whether the user exists or not."""

    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    window: timedelta = timedelta(minutes=1)
    per_user: int = 10
    per_client: int = 30


def locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and now < locked_until


def after_failure(failures: int, now: datetime, policy: LoginPolicy) -> tuple[int, datetime | None]:
    """(failures in a row, locked until) after one more wrong password; the count restarts with a lockout."""
    failures += 1
    if failures >= policy.max_failures:
        return 0, now + policy.lockout
    return failures, None


@dataclass(frozen=True)
class Throttle:
    """A key's attempts in its current window, and whether this attempt is within the limit."""

    window_start: datetime
    attempts: int
    allowed: bool


def throttle(window_start: datetime | None, attempts: int, now: datetime, limit: int, window: timedelta) -> Throttle:
    """Count one attempt in a fixed window: a new window starts once the last one has passed."""
    if window_start is None or now >= window_start + window:
        window_start, attempts = now, 0
    attempts += 1
    return Throttle(window_start, attempts, attempts <= limit)
