"""The app factory: `create_app(ctx_factory, auth=...)`, every endpoint of api.md under /api/v1."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import auth, field, observe, people, problems, public, public_site, register, targets
from api.auth import Auth
from runtime.context import Context

BASE = "/api/v1"
MAX_EVIDENCE_BYTES = 50 * 1024 * 1024  # a few minutes of phone video


def create_app(ctx_factory: Callable[[], Context], *, auth_settings: Auth, evidence_dir: Path | None = None,
               max_evidence_bytes: int = MAX_EVIDENCE_BYTES) -> FastAPI:
    """`ctx_factory`: the Context the app serves with (database and Temporal opened on first use); evidence is stored
    by content hash in `evidence_dir` (default: the data dir's `evidence/`)."""
    ctx = ctx_factory()

    app = FastAPI(title="spotcheck", version="1",
                  description="双随机、一公开 inspections: the people's door (shared/spec/api.md).")
    app.state.ctx = ctx
    app.state.auth = auth_settings
    app.state.evidence_dir = evidence_dir or ctx.settings.data_dir / "evidence"
    app.state.max_evidence_bytes = max_evidence_bytes
    app.state.metrics = observe.metrics()
    problems.install(app)
    observe.install(app)
    for router in (auth.router, people.router, targets.router, register.router, public.router):
        app.include_router(router, prefix=BASE)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    field.mount(app)  # the field app at /app
    public_site.mount(app)  # the public site's pages at /public, as `public build` writes them

    return app
