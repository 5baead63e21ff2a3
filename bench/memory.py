"""Worker memory with 10,000 real inspections in its cache, and the longest task history in events.

    .venv/bin/python bench/memory.py [--targets 10000] [--small 1000] [--max-cached 12000] [--concurrency 50]
                                     [--server-db FILE]

Setup as bench/throughput.py (a dev server from start_local, a PostgreSQL database of our own, the task
seeded by SQL in the state dispatch leaves it). One `real` worker process (runtime.client.build_worker,
as worker.py builds it) with max_cached_workflows=--max-cached and Prometheus metrics, so the SDK's own
sticky-cache gauge says how many workflows it holds.

Phase 1: the real InspectionTaskWorkflow starts --targets real TargetInspectionWorkflow children (page
by page, continue-as-new every 500 starts); the bench records each target's check (the record_check
update, with the team the seed dispatched), so every target is open, checked and waiting on result entry
(its publication timer pending, in the third run of its chain: workflows/target.py continues as new where
its long waits begin). Real activities against PostgreSQL throughout: no stand-in. Then the
worker's RSS (VmRSS now, VmHWM peak, from /proc) against its RSS before the first workflow, per
workflow held in the cache.

Phase 2: the task is cancelled (its `cancel` signal, as a plan adjustment sends it): it tells every
target, page by page across continue-as-new; all 10,000 stop at once, each records its final stage,
the last one signals the task, which counts them and closes. Each run of its continue-as-new chain
is counted in events. Phase 3: the same for a task of --small targets. --sandboxed-target runs the target workflow
in the sandbox as the tests do (production runs it outside: workflows/target.py): what the sandbox costs.

The last line is one line of key=value figures.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import harness  # noqa: E402  (puts the project root on sys.path)

from temporalio.client import Client, WorkflowUpdateFailedError  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.service import RPCError  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from bare import PlanStub  # noqa: E402
from db.engine import make_engine, migrate  # noqa: E402
from domain.messages.target import CheckRecord
from domain.messages.task import TaskProgress, TaskRun
from domain.stages import Stage
from workflows.common import SEARCH_ATTRIBUTES, plan_workflow_id, target_workflow_id, task_workflow_id  # noqa: E402
from workflows.target import TargetInspectionWorkflow  # noqa: E402
from workflows.task import InspectionTaskWorkflow  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(port: int, name: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = [float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)]
    return sum(values) if values else None


async def check_target(client: Client, task_id: str, uscc: str, team: list[str]) -> None:
    """The inspectors record the check as soon as the target takes it (an update refused while the
    target is still opening is retried; the team is the one the seed dispatched)."""
    handle = client.get_workflow_handle_for(TargetInspectionWorkflow.run, target_workflow_id(task_id, uscc))
    check = CheckRecord(inspectors=sorted(team), method="document")
    for _ in range(1200):
        try:
            await handle.execute_update(TargetInspectionWorkflow.record_check, check, id=f"check-{uscc}")
            return
        except (WorkflowUpdateFailedError, RPCError):
            await asyncio.sleep(1.0)  # not started, or still opening
    raise AssertionError(f"{uscc}: the check was never taken")


async def bounded(n: int, factories, label: str) -> None:
    semaphore = asyncio.Semaphore(n)
    done = 0
    total = len(factories)
    t0 = time.perf_counter()

    async def one(factory):
        nonlocal done
        async with semaphore:
            await factory()
        done += 1
        if done % 1000 == 0 or done == total:
            print(f"  {label}: {done}/{total} ({time.perf_counter() - t0:.0f} s)", flush=True)

    await asyncio.gather(*(one(f) for f in factories))


async def task_phase(client: Client, engine, usccs: list[str], queue: str, args, label: str) -> tuple[str, object]:
    """Start the task, take every target to 'checked' (waiting on result entry); the task's id and handle."""
    teams: dict[str, list[str]] = {}
    code, task_id, year = harness.seed_task(engine, usccs, f"{label}-{uuid.uuid4().hex[:6]}", teams)
    await client.start_workflow(PlanStub.run, 1, id=plan_workflow_id(code), task_queue=harness.STUB_QUEUE)
    run = TaskRun(task_id=task_id, plan_code=code, plan_year=year, unit=harness.UNIT,
                  progress=TaskProgress(stage=Stage.DISPATCHED, targets_total=len(usccs)))
    t0 = time.perf_counter()
    handle = await client.start_workflow(InspectionTaskWorkflow.run, run, id=task_workflow_id(task_id), task_queue=queue)
    await bounded(args.concurrency, [lambda u=u: check_target(client, task_id, u, teams[u]) for u in usccs],
                  f"{label} checked")
    print(f"{label}: {len(usccs)} targets open and checked in {time.perf_counter() - t0:.0f} s", flush=True)
    return task_id, handle


async def finish_phase(client: Client, task_id: str, handle, args, label: str) -> list[int]:
    """Cancel the task: every target stops; then the task's chain of runs in events."""
    t0 = time.perf_counter()
    await client.get_workflow_handle(task_workflow_id(task_id)).signal(InspectionTaskWorkflow.cancel, "bench: withdrawn")
    assert await asyncio.wait_for(handle.result(), timeout=args.timeout) == "cancelled"
    print(f"{label}: cancelled, every target stopped, task closed in {time.perf_counter() - t0:.0f} s", flush=True)
    return await harness.chain_lengths(client, task_workflow_id(task_id))


async def main_async(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    db_url, db_name = harness.create_database(args.admin_url)
    worker = None
    try:
        engine = make_engine(db_url)
        migrate(engine)
        usccs = harness.prepare_directories(engine, max(args.targets, args.small))
        server = dict(data_converter=pydantic_data_converter, search_attributes=list(SEARCH_ATTRIBUTES),
                      dev_server_existing_path=str(Path(sys.executable).parent / "temporal"))
        if args.server_db:
            server["dev_server_database_filename"] = args.server_db
        async with await WorkflowEnvironment.start_local(**server) as env:
            client = env.client
            address = client.service_client.config.target_host
            queue = f"bench-mem-{uuid.uuid4().hex[:6]}"
            port = free_port()
            worker = harness.start_worker("real", address, queue, tmp / "worker.log", database_url=db_url,
                                          outbox=tmp / "outbox.jsonl", max_cached=args.max_cached, metrics_port=port,
                                          sandboxed_target=args.sandboxed_target)
            pid = worker.worker_pid
            await asyncio.sleep(2)
            rss0, _ = harness.rss_kb(pid)
            print(f"worker pid {pid}, max_cached_workflows={args.max_cached}, "
                  f"{'target SANDBOXED (as in the tests), ' if args.sandboxed_target else ''}RSS before any workflow "
                  f"{rss0 / 1024:.0f} MB; logs in {tmp}", flush=True)
            async with harness.stub_worker(client):
                big_id, big = await task_phase(client, engine, usccs[: args.targets], queue, args, "big")
                await asyncio.sleep(5)  # let the last activations settle
                rss, hwm = harness.rss_kb(pid)
                cached = metric(port, "temporal_sticky_cache_size")
                per_wf = (rss - rss0) / args.targets
                print(f"with {args.targets} targets waiting on result entry: worker RSS {rss / 1024:.0f} MB, "
                      f"peak {hwm / 1024:.0f} MB, growth {(rss - rss0) / 1024:.0f} MB = {per_wf:.1f} KB per workflow; "
                      f"sticky cache holds {cached if cached is None else int(cached)} workflows", flush=True)
                big_chain = await finish_phase(client, big_id, big, args, "big")
                print(f"task of {args.targets}: {len(big_chain)} runs, events per run {big_chain}", flush=True)
                small_chain = []
                if args.small:
                    small_id, small = await task_phase(client, engine, usccs[: args.small], queue, args, "small")
                    small_chain = await finish_phase(client, small_id, small, args, "small")
                    print(f"task of {args.small}: {len(small_chain)} runs, events per run {small_chain}", flush=True)
                _, hwm_end = harness.rss_kb(pid)
            harness.stop_process(worker)
        engine.dispose()
    finally:
        if worker is not None:
            harness.stop_process(worker)
        harness.drop_database(args.admin_url, db_name)
    print(f"goals: peak RSS < 1024 MB ({'met' if hwm < 1024 * 1024 else 'NOT met'}), "
          f"longest task run < 10000 events ({'met' if max(big_chain + small_chain) < 10000 else 'NOT met'})")
    print(f"peak_rss_mb={hwm / 1024:.0f} kb_per_workflow={per_wf:.1f} workflows={args.targets} "
          f"cached={cached if cached is None else int(cached)} baseline_rss_mb={rss0 / 1024:.0f} "
          f"task_max_events_{args.targets}={max(big_chain)} task_runs_{args.targets}={len(big_chain)} "
          + (f"task_max_events_{args.small}={max(small_chain)} task_runs_{args.small}={len(small_chain)} " if small_chain else "")
          + f"peak_rss_end_mb={hwm_end / 1024:.0f} target_sandboxed={'yes' if args.sandboxed_target else 'no'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/memory.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000, help="targets of the second task (0: none)")
    parser.add_argument("--max-cached", type=int, default=12_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--server-db", help="SQLite file for the dev server (default: in memory)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--sandboxed-target", action="store_true",
                        help="run the target workflow in the sandbox, as the tests do: what the sandbox costs per workflow")
    args = parser.parse_args(argv)
    if args.max_cached < args.targets:
        parser.error("--max-cached must hold every target (and the task)")
    args.admin_url = os.environ.get("BENCH_DATABASE_URL", harness.DEFAULT_ADMIN_URL)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
