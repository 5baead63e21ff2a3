"""The public site's pages under /public: the same files `spotcheck public build` writes (public.site.files), for
anyone, without a login. Only the built files are served, by their names (no file system path is read), so
nothing but what the public register shows can be reached here.

The site is made from the whole register at once, so it is kept for `max_age` seconds and made again on the
first request after: a page is at most that much behind the register (a built site is behind until rebuilt).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from api.problems import Problem
from public.site import files, notice_public_keys

MAX_AGE = 60  # seconds
TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".txt": "text/plain; charset=utf-8"}


@dataclass
class _Cache:
    max_age: float
    made_at: float = float("-inf")
    files: dict[str, str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, request: Request) -> dict[str, str]:
        async with self.lock:  # one rebuild at a time; the requests that waited for it take its result
            if time.monotonic() - self.made_at >= self.max_age:
                self.files = await asyncio.to_thread(self._make, request.app.state.ctx)
                self.made_at = time.monotonic()
            return self.files

    @staticmethod
    def _make(ctx) -> dict[str, str]:
        keys = notice_public_keys()
        with ctx.engine().connect() as connection:
            return files(connection, keys)


def mount(app: FastAPI, path: str = "/public", max_age: float = MAX_AGE) -> None:
    cache = _Cache(max_age)

    @app.get(path, include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{path}/", status_code=308)  # the pages' links are relative to the folder

    @app.get(f"{path}/{{name:path}}", include_in_schema=False)
    async def page(request: Request, name: str) -> Response:
        name = name or "index.html"
        text = (await cache.get(request)).get(name)
        if text is None:
            raise Problem(404, f"no public page {name[:200]!r}", rule="not-found")
        return Response(text, media_type=TYPES[name[name.rfind("."):]],
                        headers={"Cache-Control": f"public, max-age={int(max_age)}",
                                 "X-Content-Type-Options": "nosniff"})
