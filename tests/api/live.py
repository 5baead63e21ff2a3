"""`spotcheck …` in a process of its own, as the live-API tests run the API and the worker: started in its own
session (so the process and whatever it starts are one group), waited for, stopped or killed."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def process(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, how: signal.Signals = signal.SIGTERM) -> None:
    """The process we started and its own group (the worker starts its heavy queue's process in it)."""
    if proc.poll() is None:
        os.killpg(proc.pid, how)
        proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
