"""The workers' Prometheus endpoint (docs/operations.md): the SDK's own runtime metrics and ours, on
one port per worker process.

SPOTCHECK_METRICS_ADDRESS=host:port turns it on (unset: no endpoint, the default, so that two
workers on one machine, or the tests' many, never fight over a port). `spotcheck worker` serves the
workflow queue's metrics there and the heavy draw queue's child process on the next port.

Ours, besides the SDK's `temporal_*` series:
- gauges from the projection tables (store/ops.py), refreshed every REFRESH_SECONDS by the
  workflow-queue process: spotcheck_targets{stage}, spotcheck_targets_overdue,
  spotcheck_follow_ups_overdue, spotcheck_outbox_backlog, spotcheck_outbox_oldest_seconds;
- spotcheck_refusals{rule, update}: commands an update validator refused, by the domain rule
  (the function in domain/ that raised) and the update. Counted through the workflow's metric
  meter, which records nothing during replay, so a refusal counts once.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import structlog
from temporalio import workflow
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import HandleUpdateInput, Interceptor, WorkflowInboundInterceptor, WorkflowInterceptorClassInput

from db.engine import Engine
from store.ops import watch

log = structlog.get_logger()
REFRESH_SECONDS = 15.0


def next_address(address: str) -> str:
    """host:port+1, where the heavy queue's process serves its metrics."""
    host, port = address.rsplit(":", 1)
    return f"{host}:{int(port) + 1}"


def metrics_runtime(address: str) -> Runtime:
    # Durations in seconds, as Prometheus conventions and the example alerts expect.
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)))


async def publish_projection_gauges(runtime: Runtime, engine: Engine, stop: asyncio.Event) -> None:
    """Set the projection gauges now and every REFRESH_SECONDS until `stop`. A stage that empties reads 0."""
    meter = runtime.metric_meter
    by_stage = meter.create_gauge("spotcheck_targets", "targets by stage")
    gauges = {name: meter.create_gauge(f"spotcheck_{name}", text) for name, text in [
        ("targets_overdue", "targets flagged overdue"),
        ("follow_ups_overdue", "open follow-ups past their due date"),
        ("outbox_backlog", "external effects not yet delivered")]}
    oldest = meter.create_gauge_float("spotcheck_outbox_oldest_seconds", "age of the oldest undelivered effect")
    seen: set[str] = set()
    while not stop.is_set():
        try:
            with engine.connect() as connection:
                now = watch(connection, datetime.now(timezone.utc))
        except Exception as error:  # noqa: BLE001 - a database hiccup must not stop the worker
            log.warning("projection gauges not refreshed", error=str(error))
        else:
            seen |= set(now.targets_by_stage)
            for stage in seen:
                by_stage.set(now.targets_by_stage.get(stage, 0), {"stage": stage})
            for name, gauge in gauges.items():
                gauge.set(getattr(now, name))
            oldest.set(now.outbox_oldest_seconds)
        try:
            await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)
        except asyncio.TimeoutError:
            pass


def refusing_rule(error: BaseException) -> str:
    """The domain rule that refused: the innermost function of domain/ in the traceback."""
    rule, frame = "unknown", error.__traceback__
    while frame is not None:
        module = frame.tb_frame.f_globals.get("__name__", "")
        if module.startswith("domain."):
            rule = frame.tb_frame.f_code.co_name
        frame = frame.tb_next
    return rule


class _CountRefusals(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        try:
            super().handle_update_validator(input)
        except Exception as error:
            workflow.metric_meter().create_counter("spotcheck_refusals", "commands refused, by rule").add(
                1, {"rule": refusing_rule(error), "update": input.update})
            raise


class RefusalMetrics(Interceptor):
    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _CountRefusals


__all__ = ["metrics_runtime", "next_address", "publish_projection_gauges", "RefusalMetrics", "REFRESH_SECONDS"]
