"""Who is acting: local accounts (argon2id), password logins, access tokens, OpenID Connect bearer tokens.

Who acted is who authenticated (api.md): every door turns its credentials into an `Actor` here, and
the actor's roles and unit are read at that moment, so a disabled user or an inspector the directory
has made inactive can do nothing from the next request on, whatever token they still hold.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from db.engine import Engine
from domain import access
from domain.access import Actor, Breach, LoginPolicy
from store import users

_hasher = PasswordHasher()  # argon2id, RFC 9106's low-memory parameters


class IdentityError(Exception):
    """A refused identity command or credential, with the rule that refused it."""

    def __init__(self, rule: str, reason: str):
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


class Forbidden(IdentityError):
    """The actor's roles do not allow this (403)."""


class Invalid(IdentityError):
    """Fields that break an account's rules (422); `breaches` names each."""

    def __init__(self, breaches: Sequence[Breach]):
        super().__init__(breaches[0].rule, "; ".join(b.reason for b in breaches))
        self.breaches = list(breaches)


class UserExists(IdentityError):
    """409"""


class UnknownUser(IdentityError):
    """404"""


class AuthenticationFailed(IdentityError):
    """401. A password login says the same for an unknown user, a wrong password, a locked or disabled account."""


class TooManyAttempts(IdentityError):
    """429"""


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def require(decision: access.Decision) -> None:
    if not decision:
        raise Forbidden(decision.refusal.rule, decision.refusal.reason)


def _valid_password(password: str) -> None:
    if breaches := access.password_breaches(password):
        raise Invalid(breaches)


# --- the users command (an admin's) ---------------------------------------------------------------
@dataclass(frozen=True)
class UserView:
    """An account as `user list` shows it: never its password hash."""

    id: str
    roles: tuple[str, ...]
    unit: str | None
    status: str
    locked_until: datetime | None


def add_user(engine: Engine, actor: Actor, user_id: str, password: str, roles: Iterable[str] = (),
             unit: str | None = None, now: datetime | None = None) -> None:
    """A local account: operator roles, or none for an inspector whose roles the directory holds."""
    require(access.may_admin(actor))
    roles = tuple(roles)
    if breaches := access.account_breaches(user_id, roles, unit) + access.password_breaches(password):
        raise Invalid(breaches)
    if not users.add(engine, user_id, _hasher.hash(password), roles, unit, _now(now)):
        raise UserExists("user-exists", f"user {user_id} exists")


def _set_status(engine: Engine, actor: Actor, user_id: str, status: str, now: datetime | None) -> None:
    require(access.may_admin(actor))
    if not users.set_status(engine, user_id, status, _now(now)):
        raise UnknownUser("unknown-user", f"no user {user_id}")


def disable_user(engine: Engine, actor: Actor, user_id: str, now: datetime | None = None) -> None:
    """The user can do nothing from now on: their tokens stop working at the next request."""
    _set_status(engine, actor, user_id, "disabled", now)


def enable_user(engine: Engine, actor: Actor, user_id: str, now: datetime | None = None) -> None:
    _set_status(engine, actor, user_id, "active", now)


def reset_password(engine: Engine, actor: Actor, user_id: str, password: str, now: datetime | None = None) -> None:
    """A new password; it also lifts a lockout."""
    require(access.may_admin(actor))
    _valid_password(password)
    if not users.set_password(engine, user_id, _hasher.hash(password), _now(now)):
        raise UnknownUser("unknown-user", f"no user {user_id}")


def list_users(engine: Engine, actor: Actor) -> list[UserView]:
    require(access.may_admin(actor))
    return [UserView(a.user_id, a.roles, a.unit, a.status, a.locked_until) for a in users.accounts(engine)]


# --- who is acting --------------------------------------------------------------------------------
def actor_for(engine: Engine, user_id: str, method: str) -> Actor | None:
    """The user's roles and unit at this moment; None when they may do nothing.

    A field-role user is the directory's inspector of the same id: roles and unit from its current
    record. Operator roles come from the account. A disabled account or an inactive inspector gets
    nothing, whatever else they hold.
    """
    account = users.account(engine, user_id)
    person = users.directory_person(engine, user_id)
    if (account and account.status != "active") or (person and person.status != "active"):
        return None
    roles = set(account.roles if account else ()) | (set(person.roles) & access.FIELD_ROLES if person else set())
    if not roles:
        return None
    return Actor(id=user_id, roles=frozenset(roles), unit=person.unit if person else account.unit, method=method)


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_FAILED = "unknown user or wrong password"


def authenticate(engine: Engine, username: str, password: str, *, client: str | None = None,
                 policy: LoginPolicy = LoginPolicy(), now: datetime | None = None) -> Actor:
    """A password login. Whatever fails, the answer and the time it takes are the same: an unknown
    name is checked against a dummy hash, so neither tells an attacker which accounts exist."""
    now = _now(now)
    # Counted before anything is checked, for names that exist or not alike; each key counts every attempt.
    limits = {f"user:{username[:64]}": policy.per_user}
    if client is not None:
        limits[f"client:{client[:64]}"] = policy.per_client
    if not all([users.count_attempt(engine, key, now, limit, policy.window) for key, limit in limits.items()]):
        raise TooManyAttempts("rate-limit", "too many login attempts: wait a minute")
    account = users.account(engine, username) if access.USER_ID.fullmatch(username) else None
    matches = _verify(account.password_hash if account else _dummy_hash(), password)
    if account is None or access.locked(account.locked_until, now):
        raise AuthenticationFailed("credentials", _FAILED)
    if not matches:
        users.record_failure(engine, account.user_id, now, policy)
        raise AuthenticationFailed("credentials", _FAILED)
    users.record_success(engine, account.user_id)
    if _hasher.check_needs_rehash(account.password_hash):
        users.rehash(engine, account.user_id, account.password_hash, _hasher.hash(password))
    actor = actor_for(engine, account.user_id, "password")
    if actor is None:  # disabled, an inactive inspector, or no role at all
        raise AuthenticationFailed("credentials", _FAILED)
    return actor


# --- bearer tokens --------------------------------------------------------------------------------
class TokenRejected(AuthenticationFailed):
    """401: the rule names what was wrong (expired, audience, issuer, signature, unknown-key, ...)."""


@dataclass(frozen=True)
class LocalTokens:
    """Short-lived access tokens for local accounts after a password login, HS256 with a configured secret."""

    secret: bytes = field(repr=False)
    ttl: timedelta = timedelta(minutes=15)
    issuer: str = "spotcheck"

    def __post_init__(self) -> None:
        if len(self.secret) < 32:  # RFC 7518 3.2: an HS256 key at least as long as the hash
            raise ValueError("the access-token secret needs at least 32 bytes")


@dataclass(frozen=True)
class Oidc:
    """The bureau's OpenID Connect provider: its JWKS document (as data), issuer, our audience, and the
    claim that carries the user id."""

    jwks: Mapping[str, Any] = field(repr=False)
    issuer: str
    audience: str
    user_claim: str = "preferred_username"
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")  # asymmetric only: never HS256 or none
    leeway: timedelta = timedelta(seconds=30)  # clock skew between the provider and us


_REJECTIONS: list[tuple[type[Exception], str]] = [  # subclasses before their bases
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not-yet-valid"),
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.InvalidSignatureError, "signature"),
    (jwt.MissingRequiredClaimError, "missing-claim"),
    (jwt.InvalidAlgorithmError, "algorithm"),
]


def _rejected(error: jwt.PyJWTError) -> TokenRejected:
    rule = next((rule for kind, rule in _REJECTIONS if isinstance(error, kind)), "malformed")
    return TokenRejected(rule, f"bearer token rejected ({rule}): {error}")


def issue_access_token(user_id: str, settings: LocalTokens, now: datetime | None = None) -> tuple[str, int]:
    """(token, seconds until it expires) for a user who has just authenticated with their password."""
    now = _now(now)
    claims = {"iss": settings.issuer, "sub": user_id, "iat": now, "exp": now + settings.ttl}
    return jwt.encode(claims, settings.secret, algorithm="HS256"), int(settings.ttl.total_seconds())


def actor_from_access_token(engine: Engine, token: str, settings: LocalTokens, method: str = "password") -> Actor:
    """The actor of a request carrying a local access token, as they stand now; `method`: how the token was
    presented (the API's bearer token after a password login, or the CLI's stored login, `cli-local`)."""
    try:
        claims = jwt.decode(token, settings.secret, algorithms=["HS256"], issuer=settings.issuer,
                            options={"require": ["exp", "iat", "iss", "sub"]})
    except jwt.PyJWTError as error:
        raise _rejected(error) from None
    return _current(engine, claims["sub"], method)


def oidc_user_id(token: str, settings: Oidc) -> str:
    """The user id a provider's token names, once its signature, issuer, audience and expiry hold."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        keys = jwt.PyJWKSet.from_dict(dict(settings.jwks))
    except jwt.PyJWTError as error:
        raise _rejected(error) from None
    try:
        key = keys[kid]
    except KeyError:
        raise TokenRejected("unknown-key", f"bearer token rejected (unknown-key): no key {kid!r} in the JWKS") from None
    if key.algorithm_name not in settings.algorithms:
        raise TokenRejected("algorithm", f"bearer token rejected (algorithm): key {kid!r} is {key.algorithm_name}")
    try:
        claims = jwt.decode(token, key, algorithms=[key.algorithm_name], audience=settings.audience,
                            issuer=settings.issuer, leeway=settings.leeway,
                            options={"require": ["exp", "iss", "aud", settings.user_claim]})
    except jwt.PyJWTError as error:
        raise _rejected(error) from None
    user_id = claims[settings.user_claim]
    if not isinstance(user_id, str) or not access.USER_ID.fullmatch(user_id):
        raise TokenRejected("user-claim", f"bearer token rejected (user-claim): {settings.user_claim} is not a user id")
    return user_id


def actor_from_oidc_token(engine: Engine, token: str, settings: Oidc) -> Actor:
    return _current(engine, oidc_user_id(token, settings), "oidc")


def _current(engine: Engine, user_id: str, method: str) -> Actor:
    actor = actor_for(engine, user_id, method)
    if actor is None:
        raise TokenRejected("no-access", f"{user_id} may do nothing now (disabled, inactive or without a role)")
    return actor
