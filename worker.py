"""`spotcheck worker` / `python worker.py`: run the workers.

By default both task queues run: the workflow queue in this process and the heavy draw queue in a
child process of its own, so CPU-bound draws never block the workflow event loop (the SDK's
2-second deadlock detector). `--queue` runs one.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import structlog

from db.engine import make_engine, migrate
from runtime import config, logs
from runtime.client import build_worker, connect, deadlines_for, receiver_for
from runtime.telemetry import metrics_runtime, next_address, publish_projection_gauges
from service.archive import SCHEDULE_ID, ensure_archive_schedule
from workflows.common import HEAVY_TASK_QUEUE, TASK_QUEUE

log = structlog.get_logger()


async def serve(queue: str, settings: config.Settings) -> None:
    engine = make_engine(settings.database_url)
    migrate(engine)  # the schema is current before the worker serves
    address = settings.metrics_address
    if address and queue == HEAVY_TASK_QUEUE:
        address = next_address(address)  # the workflow queue's process has the configured port
    runtime = metrics_runtime(address) if address else None
    client = await connect(settings, runtime)
    if queue == TASK_QUEUE and await ensure_archive_schedule(client):
        log.info("history archive schedule created", schedule=SCHEDULE_ID)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    gauges = None
    if runtime is not None:
        log.info("metrics served", address=f"http://{address}/metrics")
        if queue == TASK_QUEUE:  # one process computes the projection gauges
            gauges = asyncio.create_task(publish_projection_gauges(runtime, engine, stop))
    with ThreadPoolExecutor(max_workers=16) as executor:
        worker = build_worker(client, queue, engine, deadlines_for(settings), receiver_for(settings), executor)
        log.info("worker serving", queue=queue, temporal=settings.temporal_address, namespace=settings.namespace)
        async with worker:
            await stop.wait()
    if gauges is not None:
        await gauges
    log.info("worker stopped", queue=queue)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spotcheck worker", description="Run the spotcheck workers.")
    parser.add_argument("--queue", choices=[TASK_QUEUE, HEAVY_TASK_QUEUE], help="run only this task queue")
    args = parser.parse_args(argv)
    logs.configure()
    settings = config.load()
    if args.queue:
        asyncio.run(serve(args.queue, settings))
        return 0
    heavy = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--queue", HEAVY_TASK_QUEUE])
    try:
        asyncio.run(serve(TASK_QUEUE, settings))
    finally:
        heavy.terminate()
        heavy.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
