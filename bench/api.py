"""The HTTP API's cost: inspectors entering check and result through `spotcheck api`, against the same
commands sent straight to Temporal through the command service, in the same run.

    .venv/bin/python bench/api.py [--targets 200] [--runs 2] [--concurrency 50] [--warmup 20]

Setup (not timed): a dev server (WorkflowEnvironment.start_local, in-memory SQLite), a PostgreSQL database
of our own on BENCH_DATABASE_URL's server (created, migrated, the example directories imported, dropped at
the end), the real worker in a process of its own (bench/harness.py), `spotcheck api` on uvicorn in a
process of its own, and each inspector of the unit a local account that logs in once (POST /auth/token).

One run of either kind: a task seeded by SQL as the dispatch leaves it (N targets, a team of two each),
its InspectionTaskWorkflow started at stage DISPATCHED; once every target waits for its check (untimed),
--concurrency inspectors at once take the targets in turn and, as the team's leader, record the check and
enter the result: `api` with httpx (async, one connection pool) POSTing .../check and .../result with the
leader's bearer token; `direct` calling service.targets.record_check and enter_result with the leader's
Actor, as the API itself does after its door (auth, scope, Idempotency-Key, problem details). Timed from
the first command to the last; every command must be accepted.

Runs interleave after one warm-up of each: api, direct, api, direct, ... The last line is one line of
key=value figures: ratio_vs_direct = median api commands/s / median direct commands/s (the goal: >= 0.8),
and the p50 / p99 latency of one command of each kind, over all timed runs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import harness  # noqa: E402  (puts the project root on sys.path)

import httpx  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from bare import PlanStub  # noqa: E402
from db.engine import make_engine, migrate  # noqa: E402
from domain.access import Actor  # noqa: E402
from domain.messages.task import TaskProgress, TaskRun  # noqa: E402
from domain.stages import Stage  # noqa: E402
from runtime import config  # noqa: E402
from runtime.context import Context  # noqa: E402
from service import identity, targets  # noqa: E402
from store.directory import people_with_role  # noqa: E402
from throughput import Retries, wait_for_check  # noqa: E402
from workflows.common import SEARCH_ATTRIBUTES, plan_workflow_id, target_workflow_id, task_workflow_id  # noqa: E402
from workflows.target import TargetInspectionWorkflow  # noqa: E402
from workflows.task import InspectionTaskWorkflow  # noqa: E402

PASSWORD = "bench-inspector-password"
BOOTSTRAP = Actor(id="bench", roles=frozenset({"admin"}), unit=None, method="cli-local")
CATEGORY = "pending_investigation"  # no order: nothing waits for a re-check


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the API process ---------------------------------------------------------------------------------
def start_api(address: str, database_url: str, tmp: Path, port: int, timeout: float = 60.0) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "TEMPORAL_ADDRESS": address, "SPOTCHECK_DATA_DIR": str(tmp),
           "SPOTCHECK_API_SECRET": uuid.uuid4().hex * 2}
    log = (tmp / "api.log").open("ab")
    proc = subprocess.Popen([sys.executable, str(harness.ROOT / "starter.py"), "api", "--port", str(port)],
                            cwd=harness.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            harness.stop_process(proc)
            raise RuntimeError(f"the API did not come up; see {tmp / 'api.log'}")
        time.sleep(0.2)


async def log_in(http: httpx.AsyncClient, inspectors: list[str]) -> dict[str, dict]:
    """Each inspector's bearer header, after one password login."""
    headers = {}
    for inspector in inspectors:
        answer = await http.post("/api/v1/auth/token", data={"username": inspector, "password": PASSWORD})
        answer.raise_for_status()
        headers[inspector] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    return headers


# --- one run ---------------------------------------------------------------------------------------
async def dispatched_task(client, engine, n: int, usccs: list[str], queue: str, label: str):
    """A task whose n targets all wait for their check: (task_id, {uscc: (team, checklist)})."""
    teams: dict[str, list[str]] = {}
    code, task_id, year = harness.seed_task(engine, usccs[:n], f"{label}-{uuid.uuid4().hex[:6]}", teams)
    await client.start_workflow(PlanStub.run, 1, id=plan_workflow_id(code), task_queue=harness.STUB_QUEUE)
    run = TaskRun(task_id=task_id, plan_code=code, plan_year=year, unit=harness.UNIT,
                  progress=TaskProgress(stage=Stage.DISPATCHED, targets_total=n))
    await client.start_workflow(InspectionTaskWorkflow.run, run, id=task_workflow_id(task_id), task_queue=queue)
    retries = Retries()
    semaphore = asyncio.Semaphore(50)

    async def ready(uscc: str):
        async with semaphore:
            handle = client.get_workflow_handle_for(TargetInspectionWorkflow.run, target_workflow_id(task_id, uscc))
            await wait_for_check(handle, retries)
            return uscc, (teams[uscc], (await handle.query(TargetInspectionWorkflow.status)).checklist)
    return task_id, dict(await asyncio.gather(*(ready(u) for u in usccs[:n])))


async def timed(kind: str, work: dict, concurrency: int, command) -> dict:
    """--concurrency inspectors taking the targets in turn, each sending check then result; per-command latency."""
    queue: asyncio.Queue = asyncio.Queue()
    for item in work.items():
        queue.put_nowait(item)
    latencies: list[float] = []

    async def inspector():
        while not queue.empty():
            uscc, (team, checklist) = queue.get_nowait()
            for verb in ("check", "result"):
                t0 = time.perf_counter()
                await command(verb, uscc, team, checklist)
                latencies.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    await asyncio.gather(*(inspector() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    return {"kind": kind, "commands": len(latencies), "seconds": seconds, "per_s": len(latencies) / seconds,
            "latencies": latencies}


def via_api(http: httpx.AsyncClient, tokens: dict[str, dict], task_id: str):
    async def command(verb: str, uscc: str, team: list[str], checklist: list[str]) -> None:
        body = {"members": team, "method": "document"} if verb == "check" else \
            {"category": CATEGORY, "findings": {p: "pass" for p in checklist}, "note": "bench"}
        answer = await http.post(f"/api/v1/tasks/{task_id}/targets/{uscc}/{verb}", json=body, headers=tokens[team[0]])
        if answer.status_code != 200 or answer.json()["already_recorded"]:
            raise SystemExit(f"FAILED: api {verb} of {uscc}: {answer.status_code} {answer.text[:300]}")
    return command


def via_service(ctx: Context, task_id: str):
    async def command(verb: str, uscc: str, team: list[str], checklist: list[str]) -> None:
        leader = Actor(id=team[0], roles=frozenset({"inspector"}), unit=harness.UNIT, method="password")
        if verb == "check":
            outcome = await targets.record_check(ctx, leader, task_id, uscc, members=team, method="document",
                                                 certificates_shown=False, evidence=[])
        else:
            outcome = await targets.enter_result(ctx, leader, task_id, uscc, category=CATEGORY, note="bench",
                                                 findings={p: "pass" for p in checklist})
        if not outcome.accepted or outcome.already_recorded:
            raise SystemExit(f"FAILED: direct {verb} of {uscc}: {outcome}")
    return command


async def one_run(kind: str, n: int, env, engine, usccs, queue, http, tokens, ctx, args, label: str) -> dict:
    task_id, work = await dispatched_task(env.client, engine, n, usccs, queue, f"{kind}-{label}")
    command = via_api(http, tokens, task_id) if kind == "api" else via_service(ctx, task_id)
    return await timed(kind, work, args.concurrency, command)


async def main_async(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    db_url, db_name = harness.create_database(args.admin_url)
    processes = []
    try:
        engine = make_engine(db_url)
        migrate(engine)
        usccs = harness.prepare_directories(engine, max(args.targets, args.warmup))
        with engine.connect() as c:
            inspectors = people_with_role(c, harness.UNIT, "inspector", datetime.now(timezone.utc))
        for inspector in inspectors:
            identity.add_user(engine, BOOTSTRAP, inspector, PASSWORD)
        server = dict(data_converter=pydantic_data_converter, search_attributes=list(SEARCH_ATTRIBUTES),
                      dev_server_existing_path=str(Path(sys.executable).parent / "temporal"))
        async with await WorkflowEnvironment.start_local(**server) as env:
            address = env.client.service_client.config.target_host
            queue = f"bench-api-{uuid.uuid4().hex[:6]}"
            worker = harness.start_worker("real", address, queue, tmp / "worker.log", database_url=db_url,
                                          outbox=tmp / "outbox.jsonl")
            processes.append(worker)
            api = start_api(address, db_url, tmp, args.port)
            processes.append(api)
            ctx = Context(config.load(tmp), engine=engine, client=env.client)
            print(f"dev server {address}; database {db_name}; worker pid {worker.worker_pid}, api pid {api.pid} "
                  f"on :{args.port}; {len(inspectors)} inspectors; logs in {tmp}", flush=True)
            limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
            async with harness.stub_worker(env.client), httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{args.port}", limits=limits, timeout=120) as http:
                tokens = await log_in(http, inspectors)
                common = (env, engine, usccs, queue, http, tokens, ctx, args)
                if args.warmup:
                    for kind in ("api", "direct"):
                        r = await one_run(kind, args.warmup, *common, "warm")
                        print(f"warm-up {kind}: {r['commands']} commands in {r['seconds']:.1f} s", flush=True)
                runs: dict[str, list[dict]] = {"api": [], "direct": []}
                for i in range(args.runs):
                    for kind in ("api", "direct"):
                        r = await one_run(kind, args.targets, *common, f"r{i}")
                        runs[kind].append(r)
                        print(f"run {i + 1} {kind}: {r['commands']} commands in {r['seconds']:.1f} s = "
                              f"{r['per_s']:.1f}/s, p50 {1000 * percentile(r['latencies'], 0.5):.0f} ms, "
                              f"p99 {1000 * percentile(r['latencies'], 0.99):.0f} ms, load {os.getloadavg()[0]:.1f}",
                              flush=True)
        engine.dispose()
    finally:
        for proc in processes:
            harness.stop_process(proc)
        harness.drop_database(args.admin_url, db_name)
    per_s = {kind: statistics.median(r["per_s"] for r in rs) for kind, rs in runs.items()}
    latency = {kind: [x for r in rs for x in r["latencies"]] for kind, rs in runs.items()}
    figures = {"ratio_vs_direct": f"{per_s['api'] / per_s['direct']:.2f}",
               "api_per_s": f"{per_s['api']:.1f}", "direct_per_s": f"{per_s['direct']:.1f}",
               **{f"{kind}_{name}_ms": f"{1000 * percentile(latency[kind], q):.0f}"
                  for kind in ("api", "direct") for name, q in (("p50", 0.5), ("p99", 0.99))},
               "targets": args.targets, "runs": args.runs, "concurrency": args.concurrency}
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/api.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=200, help="targets per run (two commands each)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50, help="inspectors sending at once")
    parser.add_argument("--warmup", type=int, default=20, help="targets in one untimed run of each kind first (0: none)")
    parser.add_argument("--port", type=int, default=18000)
    args = parser.parse_args(argv)
    args.admin_url = os.environ.get("BENCH_DATABASE_URL", harness.DEFAULT_ADMIN_URL)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
