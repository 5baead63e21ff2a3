"""What the API tells its operators: a request id on every answer, Prometheus metrics."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass(frozen=True)
class Metrics:
    """One registry per app, so that apps built side by side (tests) count apart."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    refusals: Counter
    logins: Counter


def metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        requests=Counter("spotcheck_api_requests", "HTTP requests answered", ["method", "route", "status"],
                         registry=registry),
        latency=Histogram("spotcheck_api_request_seconds", "time to answer", ["method", "route"], registry=registry),
        refusals=Counter("spotcheck_api_refusals", "refused or forbidden requests, by rule", ["rule", "status"],
                         registry=registry),
        logins=Counter("spotcheck_api_logins", "password logins, by outcome", ["outcome"], registry=registry),
    )


_REQUEST_ID = "X-Request-ID"


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def _observe(request: Request, call_next):
        given = request.headers.get(_REQUEST_ID, "")
        # A client's id is kept when it is short and plain (it goes into the log); else ours.
        request.state.request_id = given if 0 < len(given) <= 64 and given.isascii() and given.isprintable() \
            else uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = route.path if route is not None else "unmatched"  # templates, not ids: bounded labels
        m: Metrics = request.app.state.metrics
        m.requests.labels(request.method, path, str(response.status_code)).inc()
        m.latency.labels(request.method, path).observe(time.perf_counter() - started)
        response.headers[_REQUEST_ID] = request.state.request_id
        return response
