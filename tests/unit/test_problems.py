"""Temporal's transient failures reach an API caller as 503 with Retry-After (send it again under its key),
anything else Temporal says as the 500 every unexpected error is; never a stack trace."""
import httpx
import pytest
from fastapi import FastAPI
from temporalio.service import RPCError, RPCStatusCode

from api import observe, problems


async def _get(error: Exception) -> httpx.Response:
    app = FastAPI()
    app.state.metrics = observe.metrics()
    problems.install(app)
    observe.install(app)

    @app.get("/boom")
    async def boom():
        raise error
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.get("/boom")


@pytest.mark.parametrize("status, message", [
    (RPCStatusCode.DEADLINE_EXCEEDED, "context deadline exceeded"),
    (RPCStatusCode.UNAVAILABLE, "connection refused"),
    (RPCStatusCode.RESOURCE_EXHAUSTED, "namespace rate limit exceeded"),
    (RPCStatusCode.CANCELLED, "Timeout expired"),  # the client's own deadline on a query to a busy worker
])
async def test_a_transient_temporal_failure_is_503_with_retry_after(status, message):
    answer = await _get(RPCError(message, status, b""))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    body = answer.json()
    assert body["status"] == 503 and body["type"].endswith("/unavailable") and "Idempotency-Key" in body["detail"]


@pytest.mark.parametrize("status, message", [
    (RPCStatusCode.INVALID_ARGUMENT, "bad request"),
    (RPCStatusCode.CANCELLED, "cancelled by the caller"),
])
async def test_another_temporal_failure_is_a_500_naming_the_request(status, message):
    answer = await _get(RPCError(message, status, b""))
    assert answer.status_code == 500 and answer.json()["status"] == 500 and answer.headers["X-Request-ID"]
    assert message not in answer.text
