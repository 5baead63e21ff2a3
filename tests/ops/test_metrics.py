"""The workers' Prometheus endpoint, live: `worker.py` with SPOTCHECK_METRICS_ADDRESS on the dev server,
scraped; every series the example alerts read (deploy/prometheus/alerts.yml) is served, and the
projection gauges and the refusal counter say what happened."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.worker import Worker

from db import schema
from runtime.telemetry import RefusalMetrics, metrics_runtime, next_address
from store.outbox import enqueue
from tests.conftest import own_schema
from tests.integration.devserver import ROOT
from tests.ops.gate import CategoryGate
from tests.ops.scrape import alert_expressions, free_port_pair, names, scrape, series_in, value
from workflows.common import HEAVY_TASK_QUEUE, TASK_QUEUE

pytestmark = pytest.mark.postgres


async def scraped_until(address: str, wanted: set[str], timeout: float = 60.0) -> dict[str, float]:
    """The endpoint's samples once every name in `wanted` is served."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            samples = await asyncio.to_thread(scrape, address)
        except OSError:
            samples = {}
        if wanted <= names(samples) or loop.time() > deadline:
            return samples
        await asyncio.sleep(0.5)


async def test_every_alert_reads_a_live_series(env, postgres_url, tmp_path):
    alerts = alert_expressions((ROOT / "deploy/prometheus/alerts.yml").read_text())
    wanted = set().union(*(series_in(expr) for expr in alerts.values()))
    assert {"temporal_workflow_task_execution_failed", "spotcheck_outbox_backlog"} <= wanted
    now = datetime.now(timezone.utc)
    with own_schema(postgres_url) as db:
        with db.engine.begin() as connection:  # one undelivered effect, one overdue target
            enqueue(connection, "task/T-1/target/X", "follow-up", "order", {"lead": 1}, now)
            connection.execute(schema.targets.insert().values(
                task_id="T-1", uscc="91110000000000000X", workflow_id="task/T-1/target/X", kind="random",
                stage="dispatched", overdue=True, updated_at=now))
        address = f"127.0.0.1:{free_port_pair()}"
        worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env={
            **os.environ, "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": env.client.namespace, "DATABASE_URL": db.url,
            "SPOTCHECK_DATA_DIR": str(tmp_path), "SPOTCHECK_METRICS_ADDRESS": address})
        try:
            # A start whose input no longer decodes: its workflow task fails, and is retried, for ever.
            handle = await env.client.start_workflow("AnnualPlanWorkflow", {"not": "a plan run"},
                                                     id=f"broken-{uuid.uuid4().hex[:8]}", task_queue=TASK_QUEUE)
            samples = await scraped_until(address, wanted)
            await handle.terminate("test over")
            heavy = await scraped_until(next_address(address), {"temporal_num_pollers"})
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
    for alert, expr in alerts.items():
        assert series_in(expr) <= names(samples), f"{alert}: {series_in(expr) - names(samples)} not served"
    assert value(samples, "spotcheck_outbox_backlog") == 1
    assert value(samples, "spotcheck_targets_overdue") == 1
    assert value(samples, "spotcheck_targets", stage="dispatched") == 1
    assert value(samples, "spotcheck_outbox_oldest_seconds") >= 0
    assert value(samples, "temporal_workflow_task_execution_failed", workflow_type="AnnualPlanWorkflow") >= 1
    assert value(heavy, "temporal_num_pollers", task_queue=HEAVY_TASK_QUEUE) >= 1, "the heavy queue's own endpoint"


async def test_refusals_counted_by_rule(env):
    address = f"127.0.0.1:{free_port_pair()}"
    client = await Client.connect(env.client.service_client.config.target_host, namespace=env.client.namespace,
                                  runtime=metrics_runtime(address))
    queue = f"refusals-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[CategoryGate], interceptors=[RefusalMetrics()]):
        handle = await client.start_workflow(CategoryGate.run, id=f"gate-{queue}", task_queue=queue)
        assert await handle.execute_update(CategoryGate.enter, "no_issue") == "no_issue"
        for _ in range(2):
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update(CategoryGate.enter, "bogus")
        samples = await scraped_until(address, {"spotcheck_refusals"})
        await handle.terminate("test over")
    assert value(samples, "spotcheck_refusals") == 2
    assert value(samples, "spotcheck_refusals", rule="known_category", update="enter") == 2
