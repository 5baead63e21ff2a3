"""The demo's door (cli/demo_api.py): `spotcheck api` as a child process on a free port, its people logging
in over real HTTP, and the process gone when the block ends, also when it ends in an error; a step resent
under its Idempotency-Key after a 5xx, and a new login after a 401."""
from __future__ import annotations

import httpx
import pytest

from cli.demo_api import ApiFailed, People, api_server
from domain.access import Actor
from service import identity

ADMIN = Actor(id="root", roles=frozenset({"admin"}), unit=None, method="cli-local")
PASSWORD = "correct horse battery staple"


class Boom(Exception):
    pass


async def test_the_demo_api_logs_people_in_answers_as_them_and_stops_even_on_failure(sqlite_engine, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    identity.add_user(sqlite_engine, ADMIN, "ops.audit", PASSWORD, roles=["auditor"])
    lines: list[str] = []
    with pytest.raises(Boom):
        async with api_server(tmp_path, lines.append) as base:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                assert (await http.get("/healthz")).json() == {"status": "ok"}
                people = People(http, PASSWORD, lines.append)
                # Logged in with the password, then judged as that user: an auditor may not accept a target.
                with pytest.raises(ApiFailed, match="accept on U1 in T1 by ops.audit: 403"):
                    await people.act("ops.audit", "T1", "U1", "accept", key="k-1")
                assert set(people.tokens) == {"ops.audit"}
                with pytest.raises(ApiFailed, match="nobody could not log in: 401"):
                    await People(http, PASSWORD, lines.append).act("nobody", "T1", "U1", "accept", key="k-2")
            raise Boom
    assert len(lines) == 1 and lines[0].startswith(f"API serving at {base} (pid ")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz", timeout=2)


async def test_a_step_is_resent_under_its_key_after_a_5xx_and_a_person_logs_in_again_after_a_401():
    seen: list[tuple[str, str | None, str | None]] = []
    answers = {"/api/v1/auth/token": [200, 200], "/api/v1/tasks/T1/targets/U1/check": [500, 401, 200]}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("Idempotency-Key"), request.headers.get("Authorization")))
        status = answers[request.url.path].pop(0)
        if request.url.path.endswith("/token"):
            return httpx.Response(status, json={"access_token": f"token-{len(answers['/api/v1/auth/token'])}"})
        return httpx.Response(status, json={"detail": "busy"} if status >= 400 else {"accepted": True})

    lines: list[str] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://api") as http:
        answer = await People(http, PASSWORD, lines.append).act("I1", "T1", "U1", "check", "k-1", {"members": ["I1"]})
    assert answer == {"accepted": True}
    assert seen == [("/api/v1/auth/token", None, None),
                    ("/api/v1/tasks/T1/targets/U1/check", "k-1", "Bearer token-1"),  # 500: the same again
                    ("/api/v1/tasks/T1/targets/U1/check", "k-1", "Bearer token-1"),  # 401: log in again
                    ("/api/v1/auth/token", None, None),
                    ("/api/v1/tasks/T1/targets/U1/check", "k-1", "Bearer token-0")]
    assert lines == ["  (check by I1: 500 busy; sending it again)"]
