"""What bench/throughput.py and bench/memory.py share: a database of their own, a dispatched task seeded by
SQL, workers in processes of their own, history counting.

    .venv/bin/python bench/harness.py worker --kind real|bare --address HOST:PORT --queue Q ...

runs one worker process (the benches start it, without PYTHONDONTWRITEBYTECODE so that its modules have
bytecode as an installed worker's do; it writes its pid to --ready-file once polling). `real` is
runtime.client.build_worker as worker.py builds it (ThreadPoolExecutor(16), LoggingInterceptor,
JsonlReceiver); `bare` registers bench/bare.py on its own queue. --instrument FILE adds (through a
client interceptor, so build_worker is unchanged) per-activity wall time and per-activity SQL
statement / pool checkout / commit counts, written to FILE as JSON at SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from sqlalchemy import create_engine, event, func, insert, select, text  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402

from db import schema  # noqa: E402
from db.engine import make_engine, migrate, normalize_url  # noqa: E402
from read.timeline import execution_chain  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
UNIT = "360202-SCJ"  # the demo plan's first task: item GS-001, review required
STUB_QUEUE = "bench-plan-stub"


# --- the database ------------------------------------------------------------------------------
def create_database(admin_url: str) -> tuple[str, str]:
    """A database of our own on the shared server: (url, name). Never touches any other database."""
    base = normalize_url(admin_url)
    name = f"spotcheck_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name, name


def drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def xact_commits(admin_url: str, name: str) -> int:
    """Committed transactions of our database so far (pg_stat_database; refreshed within ~0.5 s)."""
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text("SELECT pg_stat_clear_snapshot()"))
        n = c.execute(text("SELECT xact_commit FROM pg_stat_database WHERE datname = :n"), {"n": name}).scalar()
    admin.dispose()
    return int(n or 0)


def prepare_directories(engine, entities: int, examples: bool = True) -> list[str]:
    """The example directories (units, items, inspectors, entities; unless imported already) plus `entities`
    synthetic entities in force."""
    from domain.uscc import make_uscc
    from service.imports import import_examples

    now = datetime.now(timezone.utc)
    if examples:
        import_examples(engine, now=now - timedelta(days=2))
    usccs = [make_uscc(f"93360202{i:09d}") for i in range(entities)]
    rows = [dict(uscc=u, name=f"景德镇市昌江区压测合作社第{i}号", subject_type="cooperative", region="360202",
                 industry="A0111", risk_class="B", status="active", address=f"昌江区压测路{i}号", labels="",
                 valid_from=now - timedelta(days=1), valid_to=None, batch_id=0)
            for i, u in enumerate(usccs)]
    with engine.begin() as c:
        existing = {r.uscc for r in c.execute(select(schema.entities.c.uscc).where(schema.entities.c.uscc.in_(usccs)))}
        fresh = [r for r in rows if r["uscc"] not in existing]
        for start in range(0, len(fresh), 5000):
            c.execute(insert(schema.entities), fresh[start:start + 5000])
    return sorted(usccs)


def seed_task(engine, usccs: list[str], tag: str, teams_out: dict | None = None) -> tuple[str, str, int]:
    """A plan with one task, in the state the dispatch activity leaves it: a draw, one target row and one
    team of two per entity. (plan_code, task_id, plan_year); each target's team into `teams_out`."""
    from store.directory import people_with_role
    from runtime.examples import shifted_plan
    from store.plans import load_plan
    from workflows.common import task_workflow_id

    today = datetime.now(timezone.utc).date()
    plan = json.loads(shifted_plan(today, window_days=60))
    code = f"BENCH-{tag}"
    plan["plan_code"] = code
    task = plan["tasks"][0]
    assert task["unit"] == UNIT
    task["task_id"] = f"{code}-T1"
    plan["tasks"] = [task]
    loaded, _ = load_plan(engine, json.dumps(plan, ensure_ascii=False).encode(), f"{code}.json")
    task_id = loaded.tasks[0].task_id
    now = datetime.now(timezone.utc)
    wf = task_workflow_id(task_id)
    with engine.begin() as c:
        inspectors = people_with_role(c, UNIT, "inspector", now)
        assert len(inspectors) >= 2, inspectors
        c.execute(insert(schema.draws).values(
            task_id=task_id, draw_seq=1, state="drawn", commitment="0" * 64, nonce="0" * 64, population_salt=None,
            entropy_source="none", entropy=None, frozen_at=now, drawn_at=now, record="{}", workflow_id=wf,
            step="announce-1"))
        targets, teams = [], []
        for n, u in enumerate(usccs):
            a, b = inspectors[n % len(inspectors)], inspectors[(n + 1) % len(inspectors)]
            if teams_out is not None:
                teams_out[u] = [a, b]
            targets.append(dict(task_id=task_id, uscc=u, workflow_id="", kind="random", stage="drawn",
                                overdue=False, updated_at=now))
            teams.append(dict(task_id=task_id, uscc=u, unit_code=UNIT, inspectors=f"{a};{b}", source="draw",
                              reason=None, assigned_by=None, at=now, workflow_id=wf, step="dispatch"))
        for start in range(0, len(targets), 5000):
            c.execute(insert(schema.targets), targets[start:start + 5000])
            c.execute(insert(schema.teams), teams[start:start + 5000])
    return code, task_id, today.year


def task_outcome(engine, task_id: str) -> dict:
    """What the real run left in the database, to check that it did the whole job."""
    t, p, f, o = schema.targets, schema.publications, schema.follow_ups, schema.outbox
    with engine.connect() as c:
        stages = dict(c.execute(select(t.c.stage, func.count()).where(t.c.task_id == task_id).group_by(t.c.stage)).all())
        published = c.execute(select(func.count()).select_from(p).where(p.c.task_id == task_id, p.c.kind == "result")).scalar()
        leads = dict(c.execute(select(f.c.state, func.count()).where(f.c.task_id == task_id).group_by(f.c.state)).all())
        undelivered = c.execute(select(func.count()).select_from(o).where(
            o.c.workflow_id.like(f"target/{task_id}/%"), o.c.delivered_at.is_(None))).scalar()
    return {"stages": stages, "published": published, "leads": leads, "undelivered": undelivered}


# --- histories ---------------------------------------------------------------------------------
# Workflow-task bookkeeping: batching, tasks timed out or failed (a signal racing a continue-as-new) on a busy machine.
WFT = ("EVENT_TYPE_WORKFLOW_TASK_SCHEDULED", "EVENT_TYPE_WORKFLOW_TASK_STARTED", "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
       "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT", "EVENT_TYPE_WORKFLOW_TASK_FAILED")
# One of each per run of a continue-as-new chain (the waiting task also upserts its stage once per run).
PER_RUN = ("EVENT_TYPE_WORKFLOW_EXECUTION_STARTED", "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
           "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES")


# The task's counts of its targets (the activity, and the last target's waking signal): as many as the task
# was woken, and whether the last signal comes before the count that sees all closed is a matter of timing.
RECOUNTS = {"finished_targets", "bare_count", "targets_finished"}
RECOUNT = " (recount)"


def event_counts(events) -> Counter:
    """Counts by event type of one run's events, the recounts' events under their type + RECOUNT."""
    counts: Counter = Counter()
    activity_of: dict[int, str] = {}
    for e in events:
        name = EventType.Name(e.event_type)
        if e.HasField("activity_task_scheduled_event_attributes"):
            kind = activity_of[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif e.HasField("activity_task_started_event_attributes"):
            kind = activity_of.get(e.activity_task_started_event_attributes.scheduled_event_id)
        elif e.HasField("activity_task_completed_event_attributes"):
            kind = activity_of.get(e.activity_task_completed_event_attributes.scheduled_event_id)
        elif e.HasField("workflow_execution_signaled_event_attributes"):
            kind = e.workflow_execution_signaled_event_attributes.signal_name
        else:
            kind = None
        counts[name + RECOUNT if kind in RECOUNTS else name] += 1
    return counts


async def chain_counts(client, workflow_id: str) -> list[Counter]:
    """Event counts by type of each run of the workflow id's latest continue-as-new chain, first to last."""
    return [event_counts(events) for events in await execution_chain(client, workflow_id)]


async def chain_lengths(client, workflow_id: str) -> list[int]:
    """History length of each run of the workflow id's latest continue-as-new chain, first to last."""
    return [sum(c.values()) for c in await chain_counts(client, workflow_id)]


# --- processes ---------------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def dev_server_pid(port: str) -> int | None:
    """The `temporal server start-dev --port PORT` process start_local launched."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"start-dev" in cmd and b"--port" in cmd and cmd[cmd.index(b"--port") + 1] == port.encode():
            return int(proc.name)
    return None


def pg_backends(admin_url: str, name: str) -> list[int]:
    """The server processes serving connections to our database (the workers' pools)."""
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        pids = [r[0] for r in c.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": name})]
    admin.dispose()
    return pids


class CpuMeter:
    """CPU seconds spent by named processes between start() and stop()."""

    def __init__(self, pids: dict[str, int], admin_url: str = "", db_name: str = "") -> None:
        self.pids, self.admin_url, self.db_name = pids, admin_url, db_name

    def _snapshot(self) -> dict[str, float]:
        snap = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        snap["bench"] = time.process_time()
        if self.db_name:
            self._pg = {pid: cpu_seconds(pid) for pid in pg_backends(self.admin_url, self.db_name)}
        return snap

    def start(self) -> None:
        self._before = self._snapshot()
        self._pg_before = getattr(self, "_pg", {})

    def stop(self) -> dict[str, float]:
        after = self._snapshot()
        used = {name: after[name] - self._before[name] for name in after}
        if self.db_name:
            used["postgres"] = sum(t - self._pg_before.get(pid, 0.0) for pid, t in self._pg.items())
        return used


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def start_worker(kind: str, address: str, queue: str, log: Path, *, database_url: str = "", outbox: Path | None = None,
                 max_cached: int | None = None, instrument: Path | None = None, metrics_port: int | None = None,
                 wrap: list[str] | None = None, sandboxed_target: bool = False, timeout: float = 120.0) -> subprocess.Popen:
    ready = log.with_suffix(".ready")
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", "--kind", kind, "--address", address,
           "--queue", queue, "--ready-file", str(ready)]
    if database_url:
        cmd += ["--database-url", database_url]
    if outbox:
        cmd += ["--outbox", str(outbox)]
    if max_cached is not None:
        cmd += ["--max-cached", str(max_cached)]
    if instrument:
        cmd += ["--instrument", str(instrument)]
    if metrics_port:
        cmd += ["--metrics-port", str(metrics_port)]
    # Bytecode as an installed worker has it (pip compiles at install): under PYTHONDONTWRITEBYTECODE with no .pyc,
    # the sandbox would compile each workflow's module from source for every workflow it creates.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "SPOTCHECK_STRICT_SANDBOX")}
    if sandboxed_target:  # as the tests run it (runtime/client.workflow_runners): what the sandbox costs
        env["SPOTCHECK_STRICT_SANDBOX"] = "1"
    proc = subprocess.Popen([*(wrap or []), *cmd], cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} worker exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError(f"{kind} worker not ready in {timeout:.0f} s; see {log}")
        time.sleep(0.1)
    proc.worker_pid = int(ready.read_text().strip())  # type: ignore[attr-defined] - differs under a wrapper
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM to the process we started (and its own group), then wait; SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def stub_worker(client):
    from temporalio.worker import Worker

    from bare import PlanStub
    return Worker(client, task_queue=STUB_QUEUE, workflows=[PlanStub])


# --- the worker process ------------------------------------------------------------------------
class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter = Counter()
        self.seconds: defaultdict = defaultdict(float)
        self.statements: Counter = Counter()
        self.checkouts: Counter = Counter()
        self.commits: Counter = Counter()
        self.sql_seconds: defaultdict = defaultdict(float)

    def dump(self) -> dict:
        with self.lock:
            return {name: {"calls": self.calls[name], "wall_ms_avg": 1000 * self.seconds[name] / max(1, self.calls[name]),
                           "statements": self.statements[name] / max(1, self.calls[name]),
                           "checkouts": self.checkouts[name] / max(1, self.calls[name]),
                           "commits": self.commits[name] / max(1, self.calls[name]),
                           "sql_ms_avg": 1000 * self.sql_seconds[name] / max(1, self.calls[name])}
                    for name in sorted(self.calls)}


def _activity_name() -> str:
    from temporalio import activity
    try:
        return activity.info().activity_type
    except RuntimeError:
        return "(outside activities)"


def _instrument_engine(engine, stats: _Stats) -> None:
    started = threading.local()

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        started.t = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        name = _activity_name()
        with stats.lock:
            stats.statements[name] += 1
            stats.sql_seconds[name] += time.perf_counter() - getattr(started, "t", time.perf_counter())

    @event.listens_for(engine, "commit")
    def _commit(conn):
        name = _activity_name()
        with stats.lock:
            stats.commits[name] += 1

    @event.listens_for(engine.pool, "checkout")
    def _checkout(dbapi_conn, record, proxy):
        name = _activity_name()
        with stats.lock:
            stats.checkouts[name] += 1


def _timing_interceptor(stats: _Stats):
    from temporalio import activity, client as tclient
    from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

    class _Timed(ActivityInboundInterceptor):
        async def execute_activity(self, input: ExecuteActivityInput):
            t0 = time.perf_counter()
            try:
                return await super().execute_activity(input)
            finally:
                name = activity.info().activity_type
                with stats.lock:
                    stats.calls[name] += 1
                    stats.seconds[name] += time.perf_counter() - t0

    class Timing(tclient.Interceptor, Interceptor):
        def intercept_activity(self, next):
            return _Timed(next)

    return Timing()


async def _serve(args) -> None:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
    from temporalio.worker import Worker

    from runtime import logs

    logs.configure()
    stats = _Stats()
    interceptors = [_timing_interceptor(stats)] if args.instrument else []
    runtime = None
    if args.metrics_port:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{args.metrics_port}")))
    connect = dict(data_converter=pydantic_data_converter, interceptors=interceptors)
    if runtime:
        connect["runtime"] = runtime
    client = await Client.connect(args.address, **connect)
    options = {}
    if args.max_cached is not None:
        options["max_cached_workflows"] = args.max_cached
    executor = ThreadPoolExecutor(max_workers=16)  # as worker.py
    if args.kind == "real":
        from activities.handoff import JsonlReceiver
        from domain.workdays import Deadlines, calendar_from_env
        from runtime.client import build_worker

        engine = make_engine(args.database_url)
        migrate(engine)
        if args.instrument:
            _instrument_engine(engine, stats)
        worker = build_worker(client, args.queue, engine, Deadlines(calendar_from_env()), JsonlReceiver(Path(args.outbox)),
                              executor, **options)
    else:
        from bare import BareTargetWorkflow, BareTaskWorkflow, bare_count, bare_finish, bare_noop, bare_page
        from runtime.client import workflow_runners
        worker = Worker(client, task_queue=args.queue, workflows=[BareTaskWorkflow, BareTargetWorkflow],
                        activities=[bare_noop, bare_page, bare_finish, bare_count], activity_executor=executor,
                        **workflow_runners() | options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        Path(args.ready_file).write_text(str(os.getpid()))
        await stop.wait()
    if args.instrument:
        Path(args.instrument).write_text(json.dumps(stats.dump(), indent=1))
    executor.shutdown(wait=False, cancel_futures=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/harness.py")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--kind", choices=["real", "bare"], required=True)
    w.add_argument("--address", required=True)
    w.add_argument("--queue", required=True)
    w.add_argument("--ready-file", required=True)
    w.add_argument("--database-url", default="")
    w.add_argument("--outbox", default="/tmp/bench-outbox.jsonl")
    w.add_argument("--max-cached", type=int)
    w.add_argument("--instrument")
    w.add_argument("--metrics-port", type=int)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
