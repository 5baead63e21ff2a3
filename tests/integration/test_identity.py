"""service/identity.py on PostgreSQL: accounts, password logins, lockout and throttle, tokens, the directory's say."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import jwt
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import insert, update

from db import schema
from domain.access import Actor, LoginPolicy
from service import identity
from service.identity import AuthenticationFailed, LocalTokens, Oidc, TokenRejected

pytestmark = pytest.mark.postgres

UNIT = "360202-SCJ"
T0 = datetime(2025, 4, 1, 1, tzinfo=timezone.utc)
PASSWORD = "correct horse battery staple"
ADMIN = Actor(id="root", roles=frozenset({"admin"}), unit=None, method="cli-local")
TOKENS = LocalTokens(secret=b"s" * 32)


@pytest.fixture
def engine(fresh_pg_engine):
    return fresh_pg_engine


@pytest.fixture(autouse=True)
def cheap_argon2id(monkeypatch):
    """argon2id at its lowest cost: the production parameters take seconds a hash on a busy test machine."""
    monkeypatch.setattr(identity, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    identity._dummy_hash.cache_clear()
    yield
    identity._dummy_hash.cache_clear()


def directory_inspector(engine, inspector_id: str, roles: str, status: str = "active", at: datetime = T0) -> None:
    """A new version of the inspector's directory record from `at`, as an import writes it."""
    i = schema.inspectors
    with engine.begin() as connection:
        connection.execute(update(i).where(i.c.inspector_id == inspector_id, i.c.valid_to.is_(None))
                           .values(valid_to=at))
        connection.execute(insert(i).values(
            inspector_id=inspector_id, name="张三", unit_code=UNIT, region="360202", qualifications="registration",
            expertise="", recusal="", cert_no="C-1", cert_expiry=date(2027, 12, 31), status=status, roles=roles,
            valid_from=at, valid_to=None, batch_id=1,
        ))


def test_an_operator_account_authenticates_with_its_roles_and_unit(engine):
    identity.add_user(engine, ADMIN, "ops.plan", PASSWORD, roles=["planner"], unit=UNIT, now=T0)
    actor = identity.authenticate(engine, "ops.plan", PASSWORD, now=T0)
    assert actor == Actor(id="ops.plan", roles=frozenset({"planner"}), unit=UNIT, method="password")
    [view] = identity.list_users(engine, ADMIN)
    assert (view.id, view.roles, view.unit, view.status) == ("ops.plan", ("planner",), UNIT, "active")
    assert not hasattr(view, "password_hash")


def test_only_an_admin_manages_users_and_accounts_keep_their_rules(engine):
    planner = Actor(id="ops.plan", roles=frozenset({"planner"}), unit=UNIT, method="password")
    with pytest.raises(identity.Forbidden) as refused:
        identity.add_user(engine, planner, "ops.x", PASSWORD, now=T0)
    assert refused.value.rule == "role"
    with pytest.raises(identity.Invalid) as invalid:
        identity.add_user(engine, ADMIN, "ops.x", "short", roles=["supervisor"], now=T0)
    assert [b.rule for b in invalid.value.breaches] == ["field-role", "password"]
    identity.add_user(engine, ADMIN, "ops.x", PASSWORD, roles=["auditor"], now=T0)
    with pytest.raises(identity.UserExists):
        identity.add_user(engine, ADMIN, "ops.x", PASSWORD, roles=["admin"], now=T0)
    with pytest.raises(identity.UnknownUser):
        identity.disable_user(engine, ADMIN, "nobody", now=T0)
    assert [v.roles for v in identity.list_users(engine, ADMIN)] == [("auditor",)]


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer_and_the_same_work(engine, monkeypatch):
    identity.add_user(engine, ADMIN, "ops.audit", PASSWORD, roles=["auditor"], now=T0)
    verified = []
    real_verify = identity._verify
    monkeypatch.setattr(identity, "_verify", lambda h, p: verified.append(h) or real_verify(h, p))
    answers = []
    for username in ("ops.audit", "nobody", "not a user id!"):
        with pytest.raises(AuthenticationFailed) as failed:
            identity.authenticate(engine, username, "wrong password here", now=T0)
        answers.append((type(failed.value), failed.value.rule, str(failed.value)))
    assert len(set(answers)) == 1
    # Each attempt ran one argon2id verification: the unknown names against the dummy hash.
    assert len(verified) == 3 and all(h.startswith("$argon2id$") for h in verified)
    assert verified[1] == verified[2] == identity._dummy_hash() != verified[0]


def test_lockout_after_failures_in_a_row_then_the_password_works_again(engine):
    policy = LoginPolicy(max_failures=3, lockout=timedelta(minutes=15))
    identity.add_user(engine, ADMIN, "ops.plan", PASSWORD, roles=["planner"], unit=UNIT, now=T0)
    for n in range(3):
        with pytest.raises(AuthenticationFailed):
            identity.authenticate(engine, "ops.plan", f"wrong password {n}", policy=policy, now=T0)
    with pytest.raises(AuthenticationFailed):  # locked: even the right password
        identity.authenticate(engine, "ops.plan", PASSWORD, policy=policy, now=T0 + timedelta(minutes=14))
    assert identity.authenticate(engine, "ops.plan", PASSWORD, policy=policy, now=T0 + timedelta(minutes=15))
    [view] = identity.list_users(engine, ADMIN)
    assert view.locked_until == T0 + timedelta(minutes=15)


def test_a_success_restarts_the_count_and_a_reset_password_lifts_a_lockout(engine):
    policy = LoginPolicy(max_failures=2)
    identity.add_user(engine, ADMIN, "ops.plan", PASSWORD, roles=["planner"], unit=UNIT, now=T0)
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            identity.authenticate(engine, "ops.plan", "wrong password!", policy=policy, now=T0)
        identity.authenticate(engine, "ops.plan", PASSWORD, policy=policy, now=T0)
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            identity.authenticate(engine, "ops.plan", "wrong password!", policy=policy, now=T0)
    identity.reset_password(engine, ADMIN, "ops.plan", "a brand new password", now=T0)
    assert identity.authenticate(engine, "ops.plan", "a brand new password", policy=policy, now=T0)


def test_attempts_are_throttled_per_user_name_and_per_client(engine):
    policy = LoginPolicy(per_user=2, per_client=3, window=timedelta(minutes=1))
    identity.add_user(engine, ADMIN, "ops.plan", PASSWORD, roles=["planner"], unit=UNIT, now=T0)
    for _ in range(2):
        identity.authenticate(engine, "ops.plan", PASSWORD, client="10.0.0.1", policy=policy, now=T0)
    with pytest.raises(identity.TooManyAttempts):
        identity.authenticate(engine, "ops.plan", PASSWORD, client="10.0.0.2", policy=policy, now=T0)
    # 10.0.0.1 has had 2 attempts: one more (for a name that does not exist), then it is throttled too.
    with pytest.raises(AuthenticationFailed):
        identity.authenticate(engine, "ghost", PASSWORD, client="10.0.0.1", policy=policy, now=T0)
    with pytest.raises(identity.TooManyAttempts):
        identity.authenticate(engine, "ghost2", PASSWORD, client="10.0.0.1", policy=policy, now=T0)
    later = T0 + timedelta(minutes=1)
    assert identity.authenticate(engine, "ops.plan", PASSWORD, client="10.0.0.1", policy=policy, now=later)


def test_disabling_a_user_cuts_off_their_token_at_once(engine):
    identity.add_user(engine, ADMIN, "ops.audit", PASSWORD, roles=["auditor"], now=T0)
    actor = identity.authenticate(engine, "ops.audit", PASSWORD)
    token, expires_in = identity.issue_access_token(actor.id, TOKENS)
    assert expires_in == 900
    assert identity.actor_from_access_token(engine, token, TOKENS) == actor
    identity.disable_user(engine, ADMIN, "ops.audit")
    with pytest.raises(TokenRejected) as rejected:
        identity.actor_from_access_token(engine, token, TOKENS)
    assert rejected.value.rule == "no-access"
    with pytest.raises(AuthenticationFailed):
        identity.authenticate(engine, "ops.audit", PASSWORD)
    identity.enable_user(engine, ADMIN, "ops.audit")
    assert identity.actor_from_access_token(engine, token, TOKENS) == actor


def test_local_tokens_expire_and_cannot_be_forged(engine):
    identity.add_user(engine, ADMIN, "ops.audit", PASSWORD, roles=["auditor"], now=T0)
    expired, _ = identity.issue_access_token("ops.audit", TOKENS, now=datetime.now(timezone.utc) - timedelta(hours=1))
    forged, _ = identity.issue_access_token("ops.audit", LocalTokens(secret=b"x" * 32))
    for token, rule in [(expired, "expired"), (forged, "signature"), ("not.a.token", "malformed")]:
        with pytest.raises(TokenRejected) as rejected:
            identity.actor_from_access_token(engine, token, TOKENS)
        assert rejected.value.rule == rule


def test_an_inspector_is_whatever_the_directory_says_now(engine):
    directory_inspector(engine, "I01", "inspector;reviewer")
    identity.add_user(engine, ADMIN, "I01", PASSWORD, now=T0)  # a password, no roles of its own
    actor = identity.authenticate(engine, "I01", PASSWORD)
    assert (actor.roles, actor.unit) == (frozenset({"inspector", "reviewer"}), UNIT)
    token, _ = identity.issue_access_token("I01", TOKENS)

    directory_inspector(engine, "I01", "inspector;supervisor", at=T0 + timedelta(days=1))
    assert identity.actor_from_access_token(engine, token, TOKENS).roles == frozenset({"inspector", "supervisor"})

    directory_inspector(engine, "I01", "inspector;supervisor", status="inactive", at=T0 + timedelta(days=2))
    with pytest.raises(TokenRejected) as rejected:  # the token is still within its lifetime
        identity.actor_from_access_token(engine, token, TOKENS)
    assert rejected.value.rule == "no-access"
    with pytest.raises(AuthenticationFailed):
        identity.authenticate(engine, "I01", PASSWORD)
    assert identity.actor_for(engine, "I01", "oidc") is None


def test_an_account_without_roles_outside_the_directory_can_do_nothing(engine):
    identity.add_user(engine, ADMIN, "I99", PASSWORD, now=T0)
    with pytest.raises(AuthenticationFailed):
        identity.authenticate(engine, "I99", PASSWORD)


# --- OpenID Connect ---------------------------------------------------------------------------------
ISSUER, AUDIENCE = "https://sso.example.gov.cn/realms/scj", "spotcheck"


@pytest.fixture(scope="module")
def provider():
    """The provider's signing key and its JWKS document, and a second key it never published."""
    key, stranger = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks = {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    return key, stranger, Oidc(jwks=jwks, issuer=ISSUER, audience=AUDIENCE, user_claim="preferred_username")


def oidc_token(key, *, kid="k1", lifetime=timedelta(minutes=5), **claims) -> str:
    now = datetime.now(timezone.utc)
    body = {"iss": ISSUER, "aud": AUDIENCE, "preferred_username": "I01", "iat": now, "exp": now + lifetime,
            **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def test_a_good_oidc_token_names_a_directory_inspector(engine, provider):
    key, _, settings = provider
    directory_inspector(engine, "I01", "inspector")  # no local account needed
    actor = identity.actor_from_oidc_token(engine, oidc_token(key), settings)
    assert actor == Actor(id="I01", roles=frozenset({"inspector"}), unit=UNIT, method="oidc")


@pytest.mark.parametrize("make, rule", [
    (lambda key, stranger: oidc_token(key, lifetime=timedelta(minutes=-5)), "expired"),
    (lambda key, stranger: oidc_token(key, aud="another-app"), "audience"),
    (lambda key, stranger: oidc_token(key, iss="https://evil.example.com"), "issuer"),
    (lambda key, stranger: oidc_token(stranger), "signature"),
    (lambda key, stranger: oidc_token(stranger, kid="k9"), "unknown-key"),
    (lambda key, stranger: oidc_token(key, preferred_username=None), "missing-claim"),
    (lambda key, stranger: oidc_token(key, preferred_username="not an id!"), "user-claim"),
    (lambda key, stranger: jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "preferred_username": "I01"},
                                      "a shared secret of 32 bytes......", algorithm="HS256",
                                      headers={"kid": "k1"}), "algorithm"),
], ids=["expired", "wrong-audience", "wrong-issuer", "bad-signature", "unknown-kid", "no-user-claim",
        "bad-user-claim", "hs256-with-the-public-kid"])
def test_a_bad_oidc_token_is_rejected_by_name(engine, provider, make, rule):
    key, stranger, settings = provider
    directory_inspector(engine, "I01", "inspector")
    with pytest.raises(TokenRejected) as rejected:
        identity.actor_from_oidc_token(engine, make(key, stranger), settings)
    assert rejected.value.rule == rule


def test_an_oidc_token_of_a_disabled_account_does_nothing(engine, provider):
    key, _, settings = provider
    directory_inspector(engine, "I01", "inspector")
    identity.add_user(engine, ADMIN, "I01", PASSWORD, now=T0)
    identity.disable_user(engine, ADMIN, "I01", now=T0)
    with pytest.raises(TokenRejected) as rejected:
        identity.actor_from_oidc_token(engine, oidc_token(key), settings)
    assert rejected.value.rule == "no-access"
