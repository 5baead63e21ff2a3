"""Throughput of whole inspections against a bare workflow with the same history shape.

    .venv/bin/python bench/throughput.py [--targets 1000] [--runs 3] [--concurrency 50] [--warmup 20]
                                         [--category pending_investigation] [--server-db FILE]
                                         [--profile DIR] [--profile-targets N]

Setup (not timed): a dev server from WorkflowEnvironment.start_local (in-memory SQLite unless
--server-db), a PostgreSQL database of our own on BENCH_DATABASE_URL's server (created, migrated, the
example directories imported, dropped at the end), two worker processes: `real` (runtime.client.
build_worker, as worker.py builds it) and `bare` (bench/bare.py on a queue of its own).

One real run: a task seeded by SQL in the state dispatch leaves it (N targets, a team of two each;
the draw itself is bench/draw.py's subject), the real InspectionTaskWorkflow started at stage
DISPATCHED, which starts the N TargetInspectionWorkflow children page by page (continue-as-new every
500); the bench is the inspectors and reviewers: --concurrency clients at once, each taking a target
through service.targets.send (query + update, as the CLI does) for check, result and review; each
target then publishes, hands off credit feedback and a case lead, closes and signals the task. Timed
from the task's start to the end of its continue-as-new chain. The database is checked afterwards:
N targets closed, N results published, N leads closed, no outbox row undelivered.

One bare run: the same with BareTaskWorkflow / BareTargetWorkflow (no-op activities, updates that set
flags) and the same client pattern (a status query, then query + update per command).

Runs interleave after one small warm-up of each: real, bare, real, bare, ... After the first pair, each
run of one real target and one bare target (neither its task's last to close: only that one signals the
task), and the real and the bare task chains summed over their runs, must have the same count of every
event type but the workflow-task ones (printed; the bench fails if they differ). --profile DIR adds one more real run (--profile-targets) after the timed ones, with
py-spy (the dev extra) attached to the real worker and SQL/activity counters in it.

CPU seconds of the workers, the dev server, our database's PostgreSQL backends and the bench itself are
read from /proc around each run. The last line is one line of key=value figures: ratio_vs_bare = median
real targets/s / median bare/s (the goal: >= 0.7); cpu_ratio = median CPU per bare target / per real
target, all those processes together (what the throughput ratio would be if our processes had the two
cores to themselves: on a shared machine it is the steadier figure).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import harness  # noqa: E402  (puts the project root on sys.path)

from temporalio.client import Client, WorkflowUpdateFailedError  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.service import RPCError  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from bare import BareTaskWorkflow, PlanStub, bare_target_id  # noqa: E402
from bare_types import BareTaskRun  # noqa: E402
from db.engine import make_engine, migrate  # noqa: E402
from domain.categories import ORDER_KINDS, category  # noqa: E402
from domain.messages.target import CheckRecord, ResultEntry, Review
from domain.messages.task import TaskProgress, TaskRun
from domain.stages import Stage
from service.targets import send  # noqa: E402
from workflows.common import SEARCH_ATTRIBUTES, plan_workflow_id, target_workflow_id, task_workflow_id  # noqa: E402
from workflows.target import TargetInspectionWorkflow  # noqa: E402
from workflows.task import InspectionTaskWorkflow  # noqa: E402

POLL = 0.5  # seconds between describe calls while a target is not waiting for its check yet


class Retries:
    def __init__(self) -> None:
        self.n = 0


# --- the people: one coroutine per target, --concurrency at once ------------------------------------
async def wait_for_check(handle, retries: Retries) -> None:
    """Until the target waits for its check: started, opened, team notified, nothing pending (describe: no
    activity, no workflow task). A person checks days after the notice; a bench that sent the check while
    the notice activity still ran would skip the reminder timer, and the real history would change shape
    with the timing."""
    while True:
        try:
            d = (await handle.describe()).raw_description
            if (d.workflow_execution_info.history_length > 4 and not d.pending_activities
                    and not d.HasField("pending_workflow_task")):
                return
        except RPCError:
            pass  # not started yet
        retries.n += 1
        await asyncio.sleep(POLL)


async def drive_real(client: Client, task_id: str, uscc: str, category_code: str, retries: Retries) -> None:
    handle = client.get_workflow_handle_for(TargetInspectionWorkflow.run, target_workflow_id(task_id, uscc))
    await wait_for_check(handle, retries)
    status = await handle.query(TargetInspectionWorkflow.status)
    assert status.stage == Stage.DISPATCHED and status.teams and status.checklist, status
    team = sorted({i for t in status.teams for i in t.inspectors})
    for verb, command in (
        ("check", CheckRecord(inspectors=team, method="document")),
        ("result", ResultEntry(inspector=team[0], category=category_code, note="bench",
                               findings={p: "pass" for p in status.checklist})),
        ("review", Review(reviewer=status.reviewers[0], approve=True)),
    ):
        outcome = await send(client, task_id, uscc, verb, command)
        assert outcome.accepted and not outcome.already_recorded, (uscc, verb, outcome)


async def drive_bare(client: Client, task_id: str, key: str, retries: Retries) -> None:
    handle = client.get_workflow_handle(bare_target_id(task_id, key))
    await wait_for_check(handle, retries)
    status = await handle.query("status")
    assert status["opened"] and status["stage"] == "dispatched", status
    for verb, update in (("check", "record_check"), ("result", "enter_result"), ("review", "review_result")):
        status = await handle.query("status")  # as service.targets.send: status first, then the update
        update_id = f"{verb}-{status['commands']}-{hashlib.sha256(verb.encode()).hexdigest()[:16]}"
        try:
            await handle.execute_update(update, {"by": "bench"}, id=update_id, result_type=str)
        except WorkflowUpdateFailedError as error:
            raise AssertionError(f"bare {key} {verb} refused: {error.cause}") from error


async def gated(semaphore: asyncio.Semaphore, coro_factory):
    async with semaphore:
        await coro_factory()


# --- one run of each kind --------------------------------------------------------------------------
async def real_run(client: Client, engine, usccs: list[str], args, queue: str, label: str) -> dict:
    code, task_id, year = harness.seed_task(engine, usccs, f"{label}-{uuid.uuid4().hex[:6]}")
    stub = await client.start_workflow(PlanStub.run, 1, id=plan_workflow_id(code), task_queue=harness.STUB_QUEUE)
    retries = Retries()
    semaphore = asyncio.Semaphore(args.concurrency)
    run = TaskRun(task_id=task_id, plan_code=code, plan_year=year, unit=harness.UNIT,
                  progress=TaskProgress(stage=Stage.DISPATCHED, targets_total=len(usccs)))
    commits0 = harness.xact_commits(args.admin_url, args.db_name)
    meter = harness.CpuMeter(args.pids, args.admin_url, args.db_name)
    meter.start()
    t0 = time.perf_counter()
    handle = await client.start_workflow(InspectionTaskWorkflow.run, run, id=task_workflow_id(task_id), task_queue=queue)
    people = [asyncio.create_task(gated(semaphore, lambda u=u: drive_real(client, task_id, u, args.category, retries)))
              for u in usccs]
    await asyncio.gather(*people)
    outcome = await asyncio.wait_for(handle.result(), timeout=args.timeout)
    seconds = time.perf_counter() - t0
    cpu = meter.stop()
    await stub.result()
    await asyncio.sleep(1.0)  # pg_stat_database is refreshed every ~0.5 s
    commits = harness.xact_commits(args.admin_url, args.db_name) - commits0
    db = harness.task_outcome(engine, task_id)
    n = len(usccs)
    ok = (outcome == Stage.CLOSED.value and db["stages"] == {"closed": n} and db["published"] == n
          and db["leads"] == ({"closed": n} if args.follow_up else {}) and db["undelivered"] == 0)
    if not ok:
        raise SystemExit(f"FAILED: the real run did not finish its job: outcome={outcome} db={db}")
    chain = await harness.chain_counts(client, task_workflow_id(task_id))
    return {"kind": "real", "targets": n, "seconds": seconds, "per_s": n / seconds, "poll_retries": retries.n,
            "load": os.getloadavg()[0],
            "task_id": task_id, "samples": [target_workflow_id(task_id, u) for u in usccs[n // 2:n // 2 + 2]],
            "task_chain": [sum(c.values()) for c in chain], "task_counts": sum(chain, Counter()),
            "pg_commits_per_target": commits / n, "cpu_ms": {k: 1000 * v / n for k, v in cpu.items()}}


async def bare_run(client: Client, n: int, args, queue: str, label: str) -> dict:
    task_id = f"BARE-{label}-{uuid.uuid4().hex[:6]}"
    plan_wf = f"bare-plan/{task_id}"
    stub = await client.start_workflow(PlanStub.run, 1, id=plan_wf, task_queue=harness.STUB_QUEUE)
    retries = Retries()
    semaphore = asyncio.Semaphore(args.concurrency)
    meter = harness.CpuMeter(args.pids)
    meter.start()
    t0 = time.perf_counter()
    handle = await client.start_workflow(
        BareTaskWorkflow.run, BareTaskRun(task_id=task_id, plan_wf=plan_wf, total=n, follow_up=args.follow_up),
        id=f"bare-task/{task_id}", task_queue=queue)
    keys = [f"{i:06d}" for i in range(n)]
    people = [asyncio.create_task(gated(semaphore, lambda k=k: drive_bare(client, task_id, k, retries))) for k in keys]
    await asyncio.gather(*people)
    await asyncio.wait_for(handle.result(), timeout=args.timeout)
    seconds = time.perf_counter() - t0
    cpu = meter.stop()
    await stub.result()
    chain = await harness.chain_counts(client, f"bare-task/{task_id}")
    return {"kind": "bare", "targets": n, "seconds": seconds, "per_s": n / seconds, "poll_retries": retries.n,
            "load": os.getloadavg()[0],
            "task_id": task_id, "samples": [bare_target_id(task_id, k) for k in keys[n // 2:n // 2 + 2]],
            "task_chain": [sum(c.values()) for c in chain], "task_counts": sum(chain, Counter()),
            "cpu_ms": {k: 1000 * v / n for k, v in cpu.items()}}


def compare(title: str, real_counts: Counter, bare_counts: Counter, not_compared: dict[str, str]) -> bool:
    """Print both counts by event type; True when they are equal but for the types in `not_compared` (type: why)."""
    print(f"{title}: {sum(real_counts.values())} events real, {sum(bare_counts.values())} bare")
    print(f"  {'event type':52s} {'real':>5s} {'bare':>5s}")
    equal = True
    for full in sorted(set(real_counts) | set(bare_counts)):
        r, b = real_counts.get(full, 0), bare_counts.get(full, 0)
        note = ""
        if r != b:
            if full in not_compared:
                note = f"  ({not_compared[full]}: not compared)"
            else:
                note, equal = "  <-- DIFFERS", False
        print(f"  {full.removeprefix('EVENT_TYPE_'):52s} {r:5d} {b:5d}{note}")
    return equal


async def ordinary_target(client: Client, candidates: list[str]) -> tuple[str, list[Counter]]:
    """The first of two targets that was not its task's last to close (that one alone signals the task,
    and which one it is depends on timing), with its runs' event counts."""
    for workflow_id in candidates:
        runs = await harness.chain_counts(client, workflow_id)
        if not runs[-1]["EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED"]:
            return workflow_id, runs
    raise SystemExit(f"FAILED: {' and '.join(candidates)} both signalled their task")


async def compare_shapes(client: Client, real: dict, bare: dict) -> None:
    """Each run of one target of each kind, and each kind's whole task chain summed over its runs, must have
    the same count of every event type but the workflow-task bookkeeping (batched by timing, not by the code).
    In the task chain, a child's completion is recorded only if the run that started it is still open (so
    it depends on how fast children finish), and the waiting task continues as new when the server suggests
    it, after a number of events that the bookkeeping changes: child completions are not compared, nor the
    per-run events if the two chains have a different number of runs, nor the task's recounts of its targets
    (harness.RECOUNTS: how often it was woken)."""
    bookkeeping = dict.fromkeys(harness.WFT, "workflow-task bookkeeping")
    real_sample, real_runs = await ordinary_target(client, real["samples"])
    bare_sample, bare_runs = await ordinary_target(client, bare["samples"])
    targets = len(real_runs) == len(bare_runs)
    if not targets:
        print(f"targets {real_sample} and {bare_sample}: {len(real_runs)} and {len(bare_runs)} runs  <-- DIFFERS")
    for n, (real_counts, bare_counts) in enumerate(zip(real_runs, bare_runs), 1):
        targets &= compare(f"run {n} of {real_sample} and {bare_sample}", real_counts, bare_counts, bookkeeping)
    runs = (len(real["task_chain"]), len(bare["task_chain"]))
    per_run = {} if runs[0] == runs[1] else dict.fromkeys(harness.PER_RUN, f"runs {runs[0]} and {runs[1]}")
    recounts = {t: "timing" for t in set(real["task_counts"]) | set(bare["task_counts"]) if t.endswith(harness.RECOUNT)}
    tasks = compare(f"task chains {real['task_id']} and {bare['task_id']}, summed over their runs",
                    real["task_counts"], bare["task_counts"],
                    {**bookkeeping, **per_run, **recounts, "EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED": "timing"})
    if not (targets and tasks):
        raise SystemExit("FAILED: the bare workflows' histories do not have the real ones' shape (see above)")
    print("history shapes equal (every event type but workflow-task bookkeeping)")


# --- profile --------------------------------------------------------------------------------------
async def profile_run(env, engine, usccs, args, address, tmp: Path) -> None:
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    queue = f"bench-real-prof-{uuid.uuid4().hex[:6]}"
    counters = out / "activity-sql.json"
    worker = harness.start_worker("real", address, queue, tmp / "worker-prof.log", database_url=args.db_url,
                                  outbox=tmp / "outbox-prof.jsonl", instrument=counters)
    spy_bin = Path(sys.executable).parent / "py-spy"
    spies = []
    try:
        pid = str(worker.worker_pid)
        args.pids = {**args.pids, "real_worker": worker.worker_pid}
        for name, extra in (("wall", ["--idle"]), ("gil", ["--gil"])):
            spies.append(subprocess.Popen(
                [str(spy_bin), "record", "--pid", pid, "--rate", "97", "--format", "raw",
                 "-o", str(out / f"py-spy-{name}.txt"), "--nonblocking", *extra],
                stdout=(out / f"py-spy-{name}.log").open("w"), stderr=subprocess.STDOUT))
        await asyncio.sleep(2)
        result = await real_run(env.client, engine, usccs[: args.profile_targets], args, queue, "prof")
        print(f"profile run: {json.dumps(result, default=dict)}")
    finally:
        for spy in spies:
            spy.send_signal(2)  # SIGINT: py-spy writes its file
        for spy in spies:
            try:
                spy.wait(timeout=120)
            except subprocess.TimeoutExpired:
                spy.kill()
        harness.stop_process(worker)
    print(f"profile written to {out}: py-spy-wall.txt / py-spy-gil.txt (collapsed stacks), activity-sql.json")
    if counters.exists():
        print(counters.read_text())


# --- main -----------------------------------------------------------------------------------------
async def main_async(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    args.db_url, args.db_name = harness.create_database(args.admin_url)
    workers = []
    try:
        engine = make_engine(args.db_url)
        migrate(engine)
        usccs = harness.prepare_directories(engine, max(args.targets, args.warmup, args.profile_targets))
        server = dict(data_converter=pydantic_data_converter, search_attributes=list(SEARCH_ATTRIBUTES),
                      dev_server_existing_path=str(Path(sys.executable).parent / "temporal"))
        if args.server_db:
            server["dev_server_database_filename"] = args.server_db
        async with await WorkflowEnvironment.start_local(**server) as env:
            address = env.client.service_client.config.target_host
            real_q, bare_q = f"bench-real-{uuid.uuid4().hex[:6]}", f"bench-bare-{uuid.uuid4().hex[:6]}"
            real_w = harness.start_worker("real", address, real_q, tmp / "worker-real.log", database_url=args.db_url,
                                          outbox=tmp / "outbox.jsonl")
            workers.append(real_w)
            bare_w = harness.start_worker("bare", address, bare_q, tmp / "worker-bare.log")
            workers.append(bare_w)
            args.pids = {"real_worker": real_w.worker_pid, "bare_worker": bare_w.worker_pid,
                         "dev_server": harness.dev_server_pid(address.rsplit(":", 1)[1]) or 0}
            print(f"dev server {address} ({args.server_db or 'in-memory SQLite'}); database {args.db_name}; "
                  f"workers: real pid {real_w.worker_pid}, bare pid {bare_w.worker_pid}; logs in {tmp}")
            async with harness.stub_worker(env.client):
                if args.warmup:
                    for result in (await real_run(env.client, engine, usccs[: args.warmup], args, real_q, "warm"),
                                   await bare_run(env.client, args.warmup, args, bare_q, "warm")):
                        print(f"warm-up {result['kind']}: {result['targets']} in {result['seconds']:.1f} s")
                reals, bares = [], []
                for i in range(args.runs):
                    r = await real_run(env.client, engine, usccs[: args.targets], args, real_q, f"r{i}")
                    reals.append(r)
                    print(f"run {i + 1} real: {r['targets']} targets in {r['seconds']:.1f} s = {r['per_s']:.2f}/s "
                          f"(task chain events per run {r['task_chain']}, PG commits/target "
                          f"{r['pg_commits_per_target']:.1f}, poll retries {r['poll_retries']}, load {r['load']:.1f})", flush=True)
                    b = await bare_run(env.client, args.targets, args, bare_q, f"b{i}")
                    bares.append(b)
                    print(f"run {i + 1} bare: {b['targets']} targets in {b['seconds']:.1f} s = {b['per_s']:.2f}/s "
                          f"(task chain events per run {b['task_chain']}, poll retries {b['poll_retries']}, load {b['load']:.1f})",
                          flush=True)
                    for x in (r, b):
                        print(f"    {x['kind']} CPU ms per target: " + ", ".join(f"{k} {v:.0f}" for k, v in x["cpu_ms"].items()),
                              flush=True)
                    if i == 0:
                        await compare_shapes(env.client, r, b)
                real_rss = harness.rss_kb(real_w.worker_pid)
                bare_rss = harness.rss_kb(bare_w.worker_pid)
                print(f"worker peak RSS: real {real_rss[1] / 1024:.0f} MB, bare {bare_rss[1] / 1024:.0f} MB")
                if args.profile:
                    harness.stop_process(real_w)
                    await profile_run(env, engine, usccs, args, address, tmp)
            for w in workers:
                harness.stop_process(w)
        engine.dispose()
    finally:
        for w in workers:
            harness.stop_process(w)
        harness.drop_database(args.admin_url, args.db_name)
    real_ps = statistics.median(r["per_s"] for r in reals)
    bare_ps = statistics.median(b["per_s"] for b in bares)
    real_list = ", ".join(f"{r['per_s']:.2f}" for r in reals)
    bare_list = ", ".join(f"{b['per_s']:.2f}" for b in bares)
    print(f"real targets/s per run: {real_list}; bare: {bare_list}")
    print(f"median: real {real_ps:.2f} targets/s, bare {bare_ps:.2f}/s, ratio {real_ps / bare_ps:.2f} (goal >= 0.7)")
    longest = max(max(r["task_chain"]) for r in reals)
    real_cpu = statistics.median(r["cpu_ms"]["real_worker"] for r in reals)
    bare_cpu = statistics.median(b["cpu_ms"]["bare_worker"] for b in bares)
    real_all = statistics.median(sum(r["cpu_ms"].values()) for r in reals)
    bare_all = statistics.median(sum(b["cpu_ms"].values()) for b in bares)
    print(f"median worker CPU per target: real {real_cpu:.0f} ms, bare {bare_cpu:.0f} ms "
          f"(ratio {bare_cpu / real_cpu:.2f}: the throughput ratio if the worker alone were the bottleneck)")
    print(f"median CPU per target of all our processes (workers, dev server, PostgreSQL backends, bench): real "
          f"{real_all:.0f} ms, bare {bare_all:.0f} ms (ratio {bare_all / real_all:.2f}: the throughput ratio if the "
          f"machine's two cores were the bottleneck)")
    print(f"ratio_vs_bare={real_ps / bare_ps:.2f} targets_per_s={real_ps:.2f} bare_per_s={bare_ps:.2f} "
          f"targets={args.targets} runs={args.runs} concurrency={args.concurrency} "
          f"pg_commits_per_target={statistics.median(r['pg_commits_per_target'] for r in reals):.1f} "
          f"worker_cpu_ms_real={real_cpu:.0f} worker_cpu_ms_bare={bare_cpu:.0f} "
          f"cpu_ms_real={real_all:.0f} cpu_ms_bare={bare_all:.0f} cpu_ratio={bare_all / real_all:.2f} "
          f"task_max_events={longest}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/throughput.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50, help="targets driven at once by the bench's clients")
    parser.add_argument("--warmup", type=int, default=20, help="targets in one untimed run of each kind first (0: none)")
    parser.add_argument("--category", default="pending_investigation",
                        help="result category entered for every target (no order categories: no re-check is driven)")
    parser.add_argument("--server-db", help="SQLite file for the dev server (default: in memory)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--profile", help="directory: one more real run with py-spy and SQL counters")
    parser.add_argument("--profile-targets", type=int, default=200)
    args = parser.parse_args(argv)
    kind = category(args.category).follow_up
    if kind in ORDER_KINDS:
        parser.error(f"{args.category}: an order follow-up waits for a re-check the bench does not drive")
    args.follow_up = kind is not None
    args.admin_url = os.environ.get("BENCH_DATABASE_URL", harness.DEFAULT_ADMIN_URL)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
