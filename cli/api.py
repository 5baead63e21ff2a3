"""`spotcheck api [--host H] [--port P]`: the HTTP API (api.md) on uvicorn."""
from __future__ import annotations

import json
import os
from pathlib import Path

from cli.common import UsageError, Verbs
from runtime import config
from service.identity import LocalTokens, Oidc


def _oidc() -> Oidc | None:
    """The provider when SPOTCHECK_OIDC_JWKS (a JWKS file), _ISSUER and _AUDIENCE are set."""
    jwks = os.environ.get("SPOTCHECK_OIDC_JWKS")
    if not jwks:
        return None
    issuer, audience = os.environ.get("SPOTCHECK_OIDC_ISSUER"), os.environ.get("SPOTCHECK_OIDC_AUDIENCE")
    if not issuer or not audience:
        raise UsageError("SPOTCHECK_OIDC_JWKS needs SPOTCHECK_OIDC_ISSUER and SPOTCHECK_OIDC_AUDIENCE")
    return Oidc(jwks=json.loads(Path(jwks).read_text()), issuer=issuer, audience=audience,
                user_claim=os.environ.get("SPOTCHECK_OIDC_USER_CLAIM", "preferred_username"))


def cmd_api(args, ctx):
    import uvicorn

    from api.app import create_app
    from api.auth import Auth
    from runtime import logs

    logs.configure()
    try:
        tokens = LocalTokens(secret=config.token_secret(ctx.settings.data_dir))
    except ValueError as error:
        raise UsageError(f"SPOTCHECK_API_SECRET: {error}") from None
    app = create_app(lambda: ctx, auth_settings=Auth(tokens=tokens, oidc=_oidc()))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def register(verbs: Verbs) -> None:
    p = verbs.add(None, "api", cmd_api, "the HTTP API for inspectors, reviewers, supervisors and the public",
                  json_flag=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
