"""The demo's door for its people: `spotcheck api` as a child process on a free local port, and the people
at it, each logged in with their own password and sending their own steps, so the histories name who
authenticated (method `password`) exactly as they would for a person in the field."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from service.errors import Refused

STARTER = Path(__file__).resolve().parent.parent / "starter.py"
START_TIMEOUT = 60.0  # seconds for the API process to answer /healthz
RETRIES = 8  # a step without an answer, or with a 5xx, is sent again under the same Idempotency-Key


class DemoStopped(RuntimeError):
    """The demo cannot go on; the message says why (`spotcheck demo` prints it, no traceback)."""


class ApiFailed(DemoStopped):
    pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@asynccontextmanager
async def api_server(data_dir: Path, out) -> AsyncIterator[str]:
    """`spotcheck api` on 127.0.0.1 for the block: its base URL; stopped when the block ends, however it ends."""
    log = (data_dir / "api.log").open("ab")
    env = {**os.environ, "SPOTCHECK_DATA_DIR": str(data_dir)}
    process = None
    try:
        for _ in range(3):  # another process may take the probed port before the API binds it
            port = _free_port()
            process = subprocess.Popen([sys.executable, str(STARTER), "api", "--host", "127.0.0.1", "--port", str(port)],
                                       stdout=log, stderr=log, env=env, start_new_session=True)
            base = f"http://127.0.0.1:{port}"
            if await _healthy(base, process):
                break
        else:
            raise ApiFailed(f"the API did not start (see {data_dir / 'api.log'})")
        out(f"API serving at {base} (pid {process.pid}, log {data_dir / 'api.log'})")
        yield base
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        log.close()


async def _healthy(base: str, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    if process.poll() is None:
        process.terminate()
        await asyncio.to_thread(process.wait)
    return False


class People:
    """The demo's people at the API. Each logs in once (POST /auth/token with the password the demo set)
    and again when the short-lived token has expired; every step carries an Idempotency-Key."""

    def __init__(self, http: httpx.AsyncClient, password: str, out) -> None:
        self.http, self.password, self.out = http, password, out
        self.tokens: dict[str, str] = {}
        self._logging_in: dict[str, asyncio.Lock] = {}

    async def _token(self, person: str) -> str:
        async with self._logging_in.setdefault(person, asyncio.Lock()):
            if person not in self.tokens:
                self.tokens[person] = await self._login(person)
            return self.tokens[person]

    async def _login(self, person: str) -> str:
        while True:
            answer = await self.http.post("/api/v1/auth/token", data={"username": person, "password": self.password})
            if answer.status_code != 429:
                break
            # The API's login rate limit holds for the demo too: this person waits, the others play on.
            wait = float(answer.headers.get("Retry-After", "5"))
            self.out(f"  ({person}: too many logins from this address, waiting {wait:.0f} s)")
            await asyncio.sleep(wait)
        if answer.status_code != 200:
            raise ApiFailed(f"{person} could not log in: {answer.status_code} {_detail(answer)}")
        return answer.json()["access_token"]

    async def act(self, person: str, task_id: str, uscc: str, step: str, key: str, body: dict | None = None) -> dict:
        """POST the step as `person`. A 409 (the workflow's rules) or 404 (not yet in the person's scope) is
        Refused: the caller looks again. No answer or a 5xx (Temporal slow to answer on a busy machine) is
        retried with backoff. Anything else stops the demo, naming it."""
        url = f"/api/v1/tasks/{task_id}/targets/{uscc}/{step}"
        for attempt in range(RETRIES):
            headers = {"Authorization": f"Bearer {await self._token(person)}", "Idempotency-Key": key}
            try:
                answer = await self.http.post(url, json=body, headers=headers)
            except httpx.TransportError as error:
                await self._backoff(attempt, f"{step} by {person}: {type(error).__name__}")
                continue
            if answer.status_code == 401:  # the access token expired: log in again
                self.tokens.pop(person, None)
                continue
            if answer.status_code >= 500:
                await self._backoff(attempt, f"{step} by {person}: {answer.status_code} {_detail(answer)}")
                continue
            if answer.status_code in (404, 409):
                raise Refused(f"{step} by {person}: {_detail(answer)}")
            if answer.status_code >= 400:
                raise ApiFailed(f"{step} on {uscc} in {task_id} by {person}: {answer.status_code} {_detail(answer)}")
            return answer.json()
        raise ApiFailed(f"{step} on {uscc} in {task_id} by {person}: no answer after {RETRIES} attempts "
                        "(see .data/api.log)")

    async def _backoff(self, attempt: int, what: str) -> None:
        self.out(f"  ({what}; sending it again)")
        await asyncio.sleep(min(2 ** attempt, 15))


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail") or answer.text)
    except ValueError:
        return answer.text[:200]
