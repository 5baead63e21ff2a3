"""The field app: a mobile-first static web app under /app for inspectors, reviewers and supervisors, served by
`spotcheck api` on the same HTTP API (no second back end, no front-end build). Offline capture lives in the
browser: an IndexedDB outbox, each entry with its Idempotency-Key fixed when the person pressed the button."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from domain.categories import CATEGORIES

STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI, path: str = "/app") -> None:
    @app.get(f"{path}/categories.json", include_in_schema=False)
    async def categories() -> list[dict]:
        """The result categories as the rules know them, so the app holds no copy of the list."""
        return [{"code": c.code, "name": c.name_zh, "needs_note": c.needs_note} for c in CATEGORIES.values()]

    app.mount(path, StaticFiles(directory=STATIC, html=True), name="field")
