"""Who is asking: a bearer token (ours after a password login, or the bureau's OpenID Connect provider's)
turned into the actor as the directory stands now, on every request."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import jwt
from fastapi import APIRouter, Depends, Form, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.problems import Problem, from_error
from domain.access import Actor, LoginPolicy
from service import identity
from service.identity import LocalTokens, Oidc


@dataclass(frozen=True)
class Auth:
    tokens: LocalTokens
    oidc: Oidc | None = None
    policy: LoginPolicy = LoginPolicy()


_bearer = HTTPBearer(auto_error=False)
router = APIRouter()


def _actor_of(request: Request, token: str) -> Actor:
    auth: Auth = request.app.state.auth
    engine = request.app.state.ctx.engine()
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        raise Problem(401, "bearer token rejected (malformed)", rule="malformed",
                      headers={"WWW-Authenticate": "Bearer"}) from None
    if algorithm == "HS256" or auth.oidc is None:  # ours; a provider's tokens are never HS256 (Oidc.algorithms)
        return identity.actor_from_access_token(engine, token, auth.tokens)
    return identity.actor_from_oidc_token(engine, token, auth.oidc)


async def actor(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Actor:
    """The authenticated caller; 401 without a valid token, or for a user who may do nothing now."""
    if credentials is None:
        raise Problem(401, "a bearer token is needed: POST /api/v1/auth/token", rule="no-credentials",
                      headers={"WWW-Authenticate": "Bearer"})
    try:
        who = await asyncio.to_thread(_actor_of, request, credentials.credentials)
    except identity.IdentityError as error:
        raise from_error(error) from None
    request.state.actor = who
    return who


@router.post("/auth/token", tags=["identity"], summary="OAuth2 password grant")
async def token(request: Request, username: str = Form(max_length=256), password: str = Form(max_length=1024),
                grant_type: str = Form("password", pattern="^password$")) -> dict:
    auth: Auth = request.app.state.auth
    client = request.client.host if request.client else None
    try:
        who = await asyncio.to_thread(identity.authenticate, request.app.state.ctx.engine(), username, password,
                                      client=client, policy=auth.policy)
    except identity.IdentityError as error:
        request.app.state.metrics.logins.labels("refused" if isinstance(error, identity.TooManyAttempts)
                                                else "failed").inc()
        raise from_error(error) from None
    request.app.state.metrics.logins.labels("ok").inc()
    access_token, expires_in = identity.issue_access_token(who.id, auth.tokens)
    return {"access_token": access_token, "token_type": "bearer", "expires_in": expires_in}
