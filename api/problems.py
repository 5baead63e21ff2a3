"""RFC 9457 problem details: every error the API answers, never a stack trace."""
from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from temporalio.service import RPCError, RPCStatusCode

from service import errors, identity

TYPE = "https://spotcheck.invalid/problems/"  # problem types are named, not dereferenced
TITLES = {400: "malformed request", 401: "not authenticated", 403: "forbidden", 404: "not found",
          405: "method not allowed", 409: "conflict", 413: "too large", 415: "unsupported media type",
          422: "invalid fields", 429: "too many attempts", 500: "internal error",
          503: "temporarily unavailable"}
# Temporal busy or unreachable for the moment: the request may be sent again as it was (under its key).
_TRANSIENT = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.RESOURCE_EXHAUSTED)


def _transient(error: RPCError) -> bool:
    """The client's own deadline lapsing reads CANCELLED "Timeout expired" (a query to a busy worker does)."""
    return error.status in _TRANSIENT or (error.status == RPCStatusCode.CANCELLED
                                          and "timeout expired" in error.message.lower())
_log = structlog.get_logger("api")


class Problem(Exception):
    """An answer other than success; `rule` names the rule that refused, `errors` each bad field."""

    def __init__(self, status: int, detail: str, *, rule: str | None = None, errors: list[dict] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.rule, self.errors, self.headers = status, detail, rule, errors, headers

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": TYPE + (self.rule or str(self.status)), "title": TITLES.get(self.status, "error"),
                                "status": self.status, "detail": self.detail}
        if self.rule:
            body["rule"] = self.rule
        if self.errors:
            body["errors"] = self.errors
        return body

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers,
                            media_type="application/problem+json")


def from_error(error: Exception) -> Problem:
    """The command service's and the identity service's errors as problems; anything else is not ours to say."""
    match error:
        case Problem():
            return error
        case errors.Invalid():
            return Problem(422, str(error), rule="invalid", errors=_fields(str(error)))
        case errors.NotFound():
            return Problem(404, str(error), rule="not-found")
        case errors.Refused(breaches=[]):
            return Problem(409, str(error), rule="workflow-rule")
        case errors.Refused(breaches=[one]):
            return Problem(409, str(error), rule=one.rule, errors=[{"rule": one.rule, "message": one.reason}])
        case errors.Refused():
            return Problem(409, str(error), rule="draw-rules",
                           errors=[{"rule": b.rule, "message": b.reason} for b in error.breaches])
        case identity.TooManyAttempts():
            return Problem(429, error.reason, rule=error.rule, headers={"Retry-After": "60"})
        case identity.AuthenticationFailed():
            return Problem(401, error.reason, rule=error.rule, headers={"WWW-Authenticate": "Bearer"})
        case identity.Forbidden():
            return Problem(403, error.reason, rule=error.rule)
        case identity.Invalid():
            return Problem(422, error.reason, rule=error.rule,
                           errors=[{"field": b.rule, "message": b.reason} for b in error.breaches])
        case identity.UserExists():
            return Problem(409, error.reason, rule=error.rule)
        case identity.UnknownUser():
            return Problem(404, error.reason, rule=error.rule)
        case RPCError() if _transient(error):
            return Problem(503, "the workflow service did not answer in time; send the request again (under the "
                           "same Idempotency-Key it takes effect once)", rule="unavailable",
                           headers={"Retry-After": "5"})
    raise error


def _fields(message: str) -> list[dict]:
    """gateway.build's "invalid input: field: message; field: message" as one entry a field."""
    text = message.removeprefix("invalid input: ")
    return [{"field": part.split(": ", 1)[0], "message": part.split(": ", 1)[-1]} for part in text.split("; ")]


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, error: Problem):
        audit(request, error)
        return error.response()

    @app.exception_handler(errors.CommandError)
    @app.exception_handler(identity.IdentityError)
    async def _service(request: Request, error: Exception):
        return await _problem(request, from_error(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        fields = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in error.errors()]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return await _problem(request, Problem(422, detail, rule="invalid", errors=fields))

    @app.exception_handler(RPCError)
    async def _temporal(request: Request, error: RPCError):
        return await (_service(request, error) if _transient(error) else _crash(request, error))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException):
        return await _problem(request, Problem(error.status_code, str(error.detail), headers=error.headers))

    @app.exception_handler(Exception)
    async def _crash(request: Request, error: Exception):
        _log.exception("api.error", request_id=request.state.request_id, path=request.url.path)
        return Problem(500, "the server failed; the request id names it in the log",
                       headers={"X-Request-ID": request.state.request_id}).response()


def audit(request: Request, problem: Problem) -> None:
    """Every refused or forbidden request in the log, with user, rule and request id; counted by rule."""
    if problem.status in (401, 403, 404, 409, 413, 422, 429):
        actor = getattr(request.state, "actor", None)
        _log.info("api.refused", request_id=getattr(request.state, "request_id", None), status=problem.status,
                  rule=problem.rule, user=actor.id if actor else None, method=request.method, path=request.url.path)
        request.app.state.metrics.refusals.labels(rule=problem.rule or str(problem.status),
                                                  status=str(problem.status)).inc()
