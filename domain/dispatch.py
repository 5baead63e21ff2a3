"""The verifiable inspector draw, sc-dispatch-v1 (shared/spec/draw-protocol.md, section 2).

Pure: the teams are a fixed function of the target draw's seed, the frozen pool and the task's
parameters, so an auditor holding the pool file can recompute every team.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from domain.uscc import uscc_problem

PROTOCOL = "sc-dispatch-v1"
MIN_TEAM_SIZE = 2  # law: at least two inspectors per check (R15)

_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")  # inspector_id, unit_code, tags, status
_HEX64 = re.compile(r"[0-9a-f]{64}")


class DispatchError(ValueError):
    """An input outside the sc-dispatch-v1 grammar."""


def _code(value: object, what: str) -> str:
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise DispatchError(f"{what} {value!r}: must be 1-32 of A-Z a-z 0-9 . _ -")
    return value


def _uscc(value: object, what: str) -> str:
    problem = uscc_problem(value) if isinstance(value, str) else "must be a string"
    if problem:
        raise DispatchError(f"{what} {value!r}: {problem}")
    return value


def _distinct(values: Iterable[str], what: str) -> tuple[str, ...]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise DispatchError(f"{what} {value!r} is listed twice")
        seen.add(value)
    return tuple(sorted(seen))


@dataclass(frozen=True)
class PoolInspector:
    inspector_id: str
    status: str
    cert_expiry: date
    qualifications: tuple[str, ...]
    recusal: tuple[str, ...]

    def __post_init__(self) -> None:
        who = _code(self.inspector_id, "inspector_id")
        _code(self.status, f"status of {who}")
        # A datetime is a date too, but its isoformat would put a time into the pool file.
        if not isinstance(self.cert_expiry, date) or isinstance(self.cert_expiry, datetime):
            raise DispatchError(f"cert_expiry of {who} {self.cert_expiry!r}: must be a date")
        for tag in self.qualifications:
            _code(tag, f"qualification of {who}")
        _distinct(self.qualifications, f"qualification of {who}")
        for uscc in self.recusal:
            _uscc(uscc, f"recusal of {who}")
        _distinct(self.recusal, f"recusal of {who}")

    def line(self) -> str:
        return "\t".join((
            self.inspector_id,
            self.status,
            self.cert_expiry.isoformat(),
            ";".join(sorted(self.qualifications)),
            ";".join(sorted(self.recusal)),
        )) + "\n"


def _by_id(pool: Iterable[PoolInspector]) -> list[PoolInspector]:
    members = sorted(pool, key=lambda inspector: inspector.inspector_id)
    for before, after in zip(members, members[1:]):
        if before.inspector_id == after.inspector_id:
            raise DispatchError(f"inspector {before.inspector_id!r} appears twice in the pool")
    return members


def pool_file(pool: Iterable[PoolInspector]) -> bytes:
    """The pool file's rows (no header), sorted by inspector_id."""
    return "".join(inspector.line() for inspector in _by_id(pool)).encode("ascii")


def pool_digest(pool_bytes: bytes) -> str:
    return hashlib.sha256(pool_bytes).hexdigest()


def _size(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DispatchError(f"{what} {value!r}: must be an integer of at least {minimum}")
    return value


def _team_size(value: object) -> int:
    return _size(value, "team_size", MIN_TEAM_SIZE)


def dispatch_seed(draw_seed: bytes, unit_code: str, pool_digest: str, team_size: int, load_cap: int) -> bytes:
    if not isinstance(draw_seed, bytes) or len(draw_seed) != 32:
        raise DispatchError(f"draw seed must be 32 bytes, got {draw_seed!r}")
    if not isinstance(pool_digest, str) or not _HEX64.fullmatch(pool_digest):
        raise DispatchError(f"pool_digest {pool_digest!r}: must be 64 lower-case hex digits")
    text = "\n".join((
        PROTOCOL,
        draw_seed.hex(),
        _code(unit_code, "unit_code"),
        pool_digest,
        str(_team_size(team_size)),
        str(_size(load_cap, "load_cap", 0)),
    ))
    return hashlib.sha256(text.encode("ascii")).digest()


# The eligibility rules, by name: the draw applies them, and a supervisor's manual assignment is held
# to the same ones (domain/access.py).
ACTIVE = "active"
CERTIFICATE = "certificate"
QUALIFICATIONS = "qualifications"
RECUSAL = "recusal"
LOAD_CAP = "load-cap"


@dataclass(frozen=True)
class Breach:
    """A rule that refuses, by name, and a sentence saying why."""

    rule: str
    reason: str


def standing_breaches(inspector: PoolInspector, required: Iterable[str], as_of: date) -> list[Breach]:
    """The rules that hold for every target alike: active, certificate valid on the day, every qualification."""
    who = inspector.inspector_id
    breaches = []
    if inspector.status != "active":
        breaches.append(Breach(ACTIVE, f"{who} is {inspector.status}, not active"))
    if inspector.cert_expiry < as_of:
        breaches.append(Breach(CERTIFICATE, f"{who}'s certificate expired on {inspector.cert_expiry.isoformat()},"
                                            f" before {as_of.isoformat()}"))
    missing = set(required).difference(inspector.qualifications)
    if missing:
        breaches.append(Breach(QUALIFICATIONS, f"{who} lacks the qualification {', '.join(sorted(missing))}"))
    return breaches


def target_breaches(inspector: PoolInspector, uscc: str, load: int, load_cap: int) -> list[Breach]:
    """The rules of one target: not recused for the entity, and one more target within the load cap (0: none)."""
    who = inspector.inspector_id
    breaches = []
    if uscc in inspector.recusal:
        breaches.append(Breach(RECUSAL, f"{who} is recused for {uscc}"))
    if load_cap and load >= load_cap:
        breaches.append(Breach(LOAD_CAP, f"{who} already has {load} targets, the load cap is {load_cap}"))
    return breaches


@dataclass
class DispatchOutcome:
    order: list[str] = field(default_factory=list)  # targets in draw order
    teams: dict[str, list[str]] = field(default_factory=dict)  # uscc -> [leader, ...]
    unstaffed: dict[str, str] = field(default_factory=dict)  # uscc -> reason


def dispatch(
    seed2: bytes,
    targets: Iterable[str],
    pool: Sequence[PoolInspector],
    required_qualifications: Iterable[str],
    team_size: int,
    load_cap: int,
    as_of: date,
) -> DispatchOutcome:
    """Staff each target, in draw order, with the team_size eligible inspectors ranked first.

    Never staffs a team smaller than team_size: such a target is recorded as unstaffed and waits
    for a supervisor's recorded assignment.
    """
    if not isinstance(seed2, bytes) or len(seed2) != 32:
        raise DispatchError(f"dispatch seed must be 32 bytes, got {seed2!r}")
    _team_size(team_size)
    _size(load_cap, "load_cap", 0)
    if not isinstance(as_of, date) or isinstance(as_of, datetime):
        raise DispatchError(f"as_of {as_of!r}: must be a date")
    required = {_code(tag, "required qualification") for tag in required_qualifications}
    # Status, certificate and qualifications do not change during a dispatch: filter once.
    qualified = [inspector for inspector in _by_id(pool) if not standing_breaches(inspector, required, as_of)]
    load = {inspector.inspector_id: 0 for inspector in qualified}
    outcome = DispatchOutcome(order=_draw_order(seed2, targets))
    for uscc in outcome.order:
        eligible = [
            inspector.inspector_id for inspector in qualified
            if not target_breaches(inspector, uscc, load[inspector.inspector_id], load_cap)
        ]
        if len(eligible) < team_size:
            outcome.unstaffed[uscc] = f"{len(eligible)} eligible inspectors < team size {team_size}"
            continue
        team = sorted(eligible, key=lambda inspector_id: (_rank(seed2, uscc + "\n" + inspector_id), inspector_id))
        outcome.teams[uscc] = team[:team_size]
        for inspector_id in outcome.teams[uscc]:
            load[inspector_id] += 1
    return outcome


def _rank(seed2: bytes, text: str) -> bytes:
    return hashlib.sha256(seed2 + text.encode("ascii")).digest()


def _draw_order(seed2: bytes, targets: Iterable[str]) -> list[str]:
    distinct = _distinct((_uscc(uscc, "target") for uscc in targets), "target")
    return sorted(distinct, key=lambda uscc: (_rank(seed2, uscc), uscc))
