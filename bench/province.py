"""Province scale (issue 14): N entities (default 4,000,000), one task over all of them, freeze and draw.

    .venv/bin/python bench/province.py [--entities N] [--admin-url URL] [--keep] [--dispatch [--max-cached M] [--probes P]]

In a fresh PostgreSQL database of its own: the example directories, then N synthetic entities
(valid USCCs, the demo's class mix) imported through the CLI's import path
(service.imports.import_directory, as `spotcheck import entities` runs it); one task over all of
them, ratios A 3% B 5% C 10% D 20% U 5%. Then, in this process, the heavy activities as the
heavy worker runs them (announce, freeze, draw: activities/draws.py), timed, with their heartbeats
counted, and `draw verify` (read.audit_package.verify_against_database) and `draw export`.
Beside them, in the same run: the byte-ordered stream floor (COPY of uscc, stratum in byte order
to /dev/null) and a naive, unverifiable SQL draw (row_number() OVER (PARTITION BY class ORDER BY
random())). Reported: each time, the ratio of freeze + draw to the naive draw, peak RSS of this
process (the activities' worker), the bytes a draw stores (its draw_selection rows and indexes)
beside the entities table's size. Last line key=value.

--dispatch adds the dispatch of the drawn targets (the dispatch activity, timed in this process, its
heartbeats counted) and their workflows' start on one dev server (WorkflowEnvironment.start_local), first
through one real worker process (bench/harness.py: runtime.client.build_worker, max_cached_workflows=
--max-cached, default 10,000; give fewer than the targets), then a task of as many targets (or
--two-workers-targets) seeded as the dispatch leaves one (harness.seed_task) through two worker processes on a
fresh queue; the dev server keeps its state in a file and runs with the embedded server's dynamic config
(runtime/server.py). The task workflow started where dispatch leaves it starts its targets by activities in
shards. Reported per phase: targets
started per second (the task's start to its status saying all started), targets opened per second (to
every target's projection row naming its workflow: its first run done), the runs of the task's chain and
the longest in events, the workers' peak RSS, CPU milliseconds per target of the dev server, the workers
and PostgreSQL (what bounds the rate); for one worker, p50/p99 of an update (a re-check no order waits
for, refused by the validator: no event) sent to the --probes targets opened first, long evicted, then at
once to the same ones, now cached; and two workers' opened/s over one's (`two_workers_speedup`).

Not measured here: the task's own announce-to-dispatch path on a server (its working-day windows).
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from temporalio.testing import ActivityEnvironment  # noqa: E402

from activities.draws import DrawActivities  # noqa: E402
from bench import harness  # noqa: E402
from bench.harness import DEFAULT_ADMIN_URL, create_database, drop_database  # noqa: E402
from db.engine import make_engine, migrate  # noqa: E402
from domain.messages.task import TaskProgress, TaskRun, TaskStep  # noqa: E402
from domain.stages import Stage  # noqa: E402
from domain.uscc import ALPHABET, make_uscc  # noqa: E402
from domain.workdays import SHANGHAI  # noqa: E402
from read.audit_package import export_draw, verify_against_database  # noqa: E402
from runtime.examples import shifted_plan  # noqa: E402
from service.imports import import_directory, import_examples  # noqa: E402
from store.plans import load_plan  # noqa: E402

RATIOS = {"A": "0.03", "B": "0.05", "C": "0.1", "D": "0.2", "U": "0.05"}
CLASSES = [("A", 0.25), ("B", 0.40), ("C", 0.20), ("D", 0.12), ("U", 0.03)]
ENTROPY = "3D-2025091 538"
# The dev server's SQLite file: write-ahead log, synced at checkpoints (a killed server loses nothing; a
# machine crash may lose the last commits: a bench's server only).
SQLITE_WAL = ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


def write_entities(path: Path, n: int, seed: int = 14) -> None:
    """N active entities with valid, distinct USCCs, in the entities.csv format (examples/)."""
    rng = random.Random(seed)
    classes, weights = zip(*CLASSES)
    seen: set[str] = set()
    with open(path, "w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["uscc", "name", "subject_type", "region", "industry", "risk_class", "status", "address",
                      "labels"])
        while len(seen) < n:
            uscc = make_uscc("91" + "360202" + "".join(rng.choices(ALPHABET, k=9)))
            if uscc in seen:
                continue
            seen.add(uscc)
            risk = rng.choices(classes, weights)[0]
            out.writerow([uscc, f"景德镇市合成企业{len(seen)}有限公司", "enterprise", "360202", "F5211",
                          "" if risk == "U" else risk, "active", f"江西省景德镇市珠山区合成路{len(seen)}号", ""])


def plan_over_everything(code: str) -> bytes:
    plan = json.loads(shifted_plan(datetime.now(SHANGHAI).date(), window_days=60))
    task = plan["tasks"][0]
    task.update(task_id=f"{code}-T1", filter={}, ratios=RATIOS, entropy_source="福彩3D开奖号码", frequency_cap=1)
    plan.update(plan_code=code, tasks=[task])
    return json.dumps(plan, ensure_ascii=False).encode()


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def stream_floor(engine) -> float:
    """COPY of (uscc, stratum) of the current directory in byte order: what any byte-ordered draw must read."""
    with engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()
        with open("/dev/null", "wb") as sink:
            start = time.perf_counter()
            cursor.copy_expert("COPY (SELECT uscc, CASE WHEN risk_class = '' THEN 'U' ELSE risk_class END "
                               "FROM entities WHERE valid_to IS NULL AND status = 'active' "
                               'ORDER BY uscc COLLATE "C") TO STDOUT', sink)
            return time.perf_counter() - start


def naive_draw(engine) -> float:
    """The unverifiable draw: random() per row, a window per class; the selection counted, not kept."""
    quotas = " ".join(f"WHEN '{s}' THEN {r}" for s, r in RATIOS.items())
    with engine.connect() as connection:
        start = time.perf_counter()
        connection.execute(text(
            "SELECT count(*) FROM (SELECT uscc, stratum, row_number() OVER (PARTITION BY stratum ORDER BY random()) AS n,"
            " count(*) OVER (PARTITION BY stratum) AS size FROM (SELECT uscc, CASE WHEN risk_class = '' THEN 'U' "
            "ELSE risk_class END AS stratum FROM entities WHERE valid_to IS NULL AND status = 'active') p) r "
            f"WHERE n <= ceil(size * (CASE stratum {quotas} END)::numeric)")).scalar()
        return time.perf_counter() - start


async def start_phase(env, url: str, run: TaskRun, workers: int, max_cached: int, folder: Path, probes: int) -> dict:
    """The task workflow, from where dispatch leaves it, through `workers` real worker processes on one queue:
    until its status says every target is started, and until every target has opened (its projection row
    names its workflow). Then, with `probes` > 0, the update latencies of targets long evicted and just touched."""
    from sqlalchemy import text as sql

    from workflows.common import task_workflow_id
    from workflows.task import InspectionTaskWorkflow

    engine = make_engine(url)
    total = run.progress.targets_total
    queue = f"province-{uuid.uuid4().hex[:6]}"
    procs = [harness.start_worker("real", env.client.service_client.config.target_host, queue,
                                  folder / f"worker-{queue}-{n}.log", database_url=url,
                                  outbox=folder / "outbox.jsonl", max_cached=max_cached) for n in range(workers)]
    opened_sql = sql("SELECT count(*) FROM targets WHERE task_id = :t AND workflow_id <> ''")
    server = harness.dev_server_pid(env.client.service_client.config.target_host.rsplit(":", 1)[1])
    meter = harness.CpuMeter({"server": server, **{f"worker{n}": p.worker_pid for n, p in enumerate(procs)}},
                             DEFAULT_ADMIN_URL, url.rsplit("/", 1)[1])
    try:
        meter.start()
        start = time.perf_counter()
        handle = await env.client.start_workflow(InspectionTaskWorkflow.run, run, id=task_workflow_id(run.task_id),
                                                 task_queue=queue)
        start_s = open_s = None
        shown = asked = 0.0
        while open_s is None:
            await asyncio.sleep(1)
            if start_s is None and time.perf_counter() - asked >= 5:  # a query is a task for the worker: not too often
                asked = time.perf_counter()
                try:  # a query may meet a run that is just continuing as new: asked again
                    if (await env.client.get_workflow_handle(handle.id).query(InspectionTaskWorkflow.status)).started >= total:
                        start_s = time.perf_counter() - start
                except Exception:  # noqa: BLE001
                    pass
            with engine.connect() as connection:
                opened = connection.execute(opened_sql, {"t": run.task_id}).scalar()
            elapsed = time.perf_counter() - start
            if opened >= total and start_s is not None:
                open_s = elapsed
            elif elapsed - shown >= 30:  # progress on a long run: opened so far, and the rate
                shown = elapsed
                rss = ", ".join(f"{harness.rss_kb(p.worker_pid)[0] // 1024} MB" for p in procs)
                print(f"  {elapsed:.0f} s: {opened}/{total} opened ({opened / elapsed:.1f}/s), worker RSS {rss}"
                      f"{'' if start_s is None else f', all started at {start_s:.0f} s'}", flush=True)
        cpu = meter.stop()
        latencies = await update_latencies(env.client, engine, run.task_id, probes) if probes else {}
        runs = await harness.chain_lengths(env.client, handle.id)
        peak = max(harness.rss_kb(proc.worker_pid)[1] for proc in procs)
    finally:
        for proc in procs:
            harness.stop_process(proc)
        engine.dispose()
    return dict(targets=total, start_s=round(start_s, 1), started_per_s=round(total / start_s, 1),
                open_s=round(open_s, 1), opened_per_s=round(total / open_s, 1), task_runs=len(runs),
                task_max_events=max(runs), worker_peak_rss_mb=round(peak / 1024),
                # where the time goes: CPU per target opened, of the dev server, the workers, PostgreSQL
                server_cpu_ms=round(1000 * cpu["server"] / total, 1),
                workers_cpu_ms=round(1000 * sum(v for k, v in cpu.items() if k.startswith("worker")) / total, 1),
                postgres_cpu_ms=round(1000 * cpu["postgres"] / total, 1), **latencies)


async def update_latencies(client, engine, task_id: str, probes: int) -> dict:
    """p50/p99 of an update answered by a target's validator (a re-check no order waits for: refused, no
    event): first to the `probes` targets opened earliest, long evicted from a cache smaller than the open
    targets (each answered after a replay of its short run), then at once to the same ones, now cached."""
    from temporalio.client import WorkflowUpdateFailedError

    from domain.messages.target import Recheck
    from workflows.common import target_workflow_id
    from workflows.target import TargetInspectionWorkflow

    with engine.connect() as connection:
        earliest = [r.uscc for r in connection.execute(text(
            "SELECT uscc FROM targets WHERE task_id = :t ORDER BY updated_at, uscc LIMIT :n"), {"t": task_id, "n": probes})]

    async def probe(uscc: str) -> float:
        handle = client.get_workflow_handle(target_workflow_id(task_id, uscc))
        begin = time.perf_counter()
        try:
            await handle.execute_update(TargetInspectionWorkflow.record_recheck, Recheck(inspector="probe", passed=True))
            raise AssertionError(f"{uscc}: a re-check with no order was accepted")
        except WorkflowUpdateFailedError:
            return time.perf_counter() - begin

    def quantiles(name: str, seconds: list[float]) -> dict:
        ordered = sorted(seconds)
        pick = lambda q: round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)  # noqa: E731
        return {f"{name}_p50_ms": pick(0.5), f"{name}_p99_ms": pick(0.99)}

    evicted = [await probe(uscc) for uscc in earliest]
    cached = [await probe(uscc) for uscc in earliest]
    return {**quantiles("evicted_update", evicted), **quantiles("cached_update", cached)}


async def start_targets(url: str, drawn: TaskRun, seeded: TaskRun, max_cached: int, folder: Path, probes: int) -> dict:
    """One dev server: the drawn task through one worker process (with the update probes), then a task of as
    many targets seeded as dispatch leaves one (bench/harness.seed_task) through two: the speed-up."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from runtime.server import dynamic_config_flags
    from workflows.common import SEARCH_ATTRIBUTES

    async with await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter, search_attributes=list(SEARCH_ATTRIBUTES),
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            # In a file: in memory it held 21.6 GB at 83,000 targets and stopped answering (persistence
            # deadlines exceeded) on this 23 GB machine. Write-ahead, without a sync per commit: with SQLite's
            # default rollback journal, synced at each commit, the 120,741-target start ran at 10.4/s.
            dev_server_database_filename=str(folder / "temporal.db"),
            dev_server_extra_args=[*dynamic_config_flags(), *SQLITE_WAL]) as env:
        one = await start_phase(env, url, drawn, 1, max_cached, folder, probes)
        print(f"one worker: {one}", flush=True)
        two = await start_phase(env, url, seeded, 2, max_cached, folder, 0)
        print(f"two workers: {two}", flush=True)
    return {**{f"start_{k}": v for k, v in one.items()}, "two_workers_opened_per_s": two["opened_per_s"],
            "two_workers_started_per_s": two["started_per_s"], "two_workers_peak_rss_mb": two["worker_peak_rss_mb"],
            "two_workers_targets": two["targets"],
            "two_workers_speedup": round(two["opened_per_s"] / one["opened_per_s"], 2), "max_cached": max_cached}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=4_000_000)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database (default: dropped at the end)")
    parser.add_argument("--dispatch", action="store_true", help="dispatch the drawn targets and start their workflows")
    parser.add_argument("--max-cached", type=int, default=10_000, help="the worker's max_cached_workflows (--dispatch)")
    parser.add_argument("--probes", type=int, default=100, help="targets probed by an update, evicted then cached")
    parser.add_argument("--two-workers-targets", type=int,
                        help="targets of the two-worker phase (--dispatch; default: as many as were drawn)")
    args = parser.parse_args(argv)
    url, name = create_database(args.admin_url)
    engine = make_engine(url)
    try:
        migrate(engine)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "entities.csv"
            _, generated = timed(write_entities, path, args.entities)
            yesterday = datetime.now(timezone.utc) - timedelta(days=1)
            import_examples(engine, now=yesterday - timedelta(hours=1))
            summary, imported = timed(import_directory, engine, "entities", path, now=yesterday)
            print(f"generated {args.entities} entities in {generated:.1f} s, imported in {imported:.1f} s "
                  f"({summary.added} added)", flush=True)
            code = f"PROV-{uuid.uuid4().hex[:6].upper()}"
            plan, _ = load_plan(engine, plan_over_everything(code), "plan.json")
            task_id = plan.tasks[0].task_id
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))

            beats: list = []
            env = ActivityEnvironment()
            env.info = dataclasses.replace(ActivityEnvironment.default_info(), workflow_id=f"task/{task_id}")
            env.on_heartbeat = lambda *details: beats.append(details)
            activities = DrawActivities(engine)
            step = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY)
            env.run(activities.announce, step)
            freeze, freeze_s = timed(env.run, activities.freeze, step)
            freeze_beats, beats[:] = len(beats), []
            drawn, draw_s = timed(env.run, activities.draw, step)
            draw_beats = len(beats)
            print(f"freeze {freeze_s:.2f} s ({freeze.population} entities, {freeze_beats} heartbeats), "
                  f"draw {draw_s:.2f} s ({drawn.selected} selected, {draw_beats} heartbeats)", flush=True)

            report, verify_s = timed(verify_against_database, engine, task_id)
            assert report.ok, str(report)
            _, export_s = timed(export_draw, engine, task_id, record_path=Path(folder) / "r.json",
                                population_path=Path(folder) / "p.csv")
            floor_s = stream_floor(engine)
            naive_s = naive_draw(engine)
            with engine.connect() as connection:
                stored = connection.execute(text("SELECT pg_total_relation_size('draw_selection')")).scalar()
                directory = connection.execute(text("SELECT pg_total_relation_size('entities')")).scalar()
                population_rows = connection.execute(text("SELECT pg_total_relation_size('draw_population')")).scalar()
            started = {}
            if args.dispatch:
                beats[:] = []
                dispatched, dispatch_s = timed(env.run, activities.dispatch, step)
                print(f"dispatch {dispatch_s:.2f} s ({dispatched.teams} teams, {dispatched.unstaffed} unstaffed)",
                      flush=True)
                total = drawn.selected + drawn.targeted
                second = args.two_workers_targets or total
                run = TaskRun(task_id=task_id, plan_code=plan.plan_code, plan_year=plan.year, unit=plan.tasks[0].unit,
                              progress=TaskProgress(stage=Stage.DISPATCHED, targets_total=total))
                code2, task2, year2 = harness.seed_task(engine, harness.prepare_directories(engine, second, examples=False),
                                                        uuid.uuid4().hex[:6].upper())
                seeded = TaskRun(task_id=task2, plan_code=code2, plan_year=year2, unit=harness.UNIT,
                                 progress=TaskProgress(stage=Stage.DISPATCHED, targets_total=second))
                started = asyncio.run(start_targets(url, run, seeded, args.max_cached, Path(folder), args.probes))
                started = dict(dispatch_s=round(dispatch_s, 2), dispatch_heartbeats=len(beats), **started)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures = dict(
            entities=args.entities, population=freeze.population, selected=drawn.selected,
            import_s=round(imported, 2), freeze_s=round(freeze_s, 2), draw_s=round(draw_s, 2),
            verify_s=round(verify_s, 2), export_s=round(export_s, 2), floor_s=round(floor_s, 2),
            naive_s=round(naive_s, 2), freeze_draw_vs_naive=round((freeze_s + draw_s) / naive_s, 2),
            verify_vs_naive=round(verify_s / naive_s, 2), heartbeats=freeze_beats + draw_beats,
            peak_rss_mb=round(peak_mb), draw_bytes=stored, directory_bytes=directory,
            draw_share=round(stored / directory, 4), population_table_bytes=population_rows, **started,
        )
        print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    finally:
        engine.dispose()
        if not args.keep:
            drop_database(args.admin_url, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
