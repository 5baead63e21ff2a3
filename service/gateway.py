"""How the command service reaches a workflow: one update path, one idempotency key, errors as sentences.

Every door sends human steps through here, so a command is named the same way (domain/commands.py)
whether it came from the CLI, the API or the demo, and a refusal reads the same everywhere.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable

from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from domain.text import FORBIDDEN, for_terminal
from service.errors import Invalid, NotFound, Refused

WORKFLOW_ID_CAP = 255  # characters; every id the project makes (plan, task, target) is far shorter


def reasons(failure: BaseException | None) -> str:
    """The messages along a failure's cause chain: "Failed decoding arguments" alone names nothing."""
    messages: list[str] = []
    while failure is not None:
        message = getattr(failure, "message", None) or str(failure)
        if message and message not in messages:
            messages.append(message)
        failure = failure.__cause__ or getattr(failure, "cause", None)
    return ": ".join(messages)


def build(model: type[BaseModel], **fields: Any) -> Any:
    """A command record from a door's fields; a malformed one is refused naming every bad field."""
    try:
        return model(**fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise Invalid(f"invalid input: {problems}") from error


async def update(handle: WorkflowHandle, method: Callable, command: BaseModel, *, what: str,
                 update_id: str | None = None) -> str:
    """Send one update; a refusal by the workflow's validator, a closed or a missing workflow reads as a sentence."""
    _exists(handle, what)
    try:
        return await handle.execute_update(method, command, id=update_id)
    except WorkflowUpdateFailedError as error:
        raise Refused(reasons(error.cause)) from error
    except RPCError as error:
        raise missing(error, what) from error


async def query(handle: WorkflowHandle, method: Callable, *args: Any, what: str) -> Any:
    _exists(handle, what)
    try:
        return await handle.query(method, *args)
    except RPCError as error:
        raise missing(error, what) from error


async def signal(handle: WorkflowHandle, method: Callable, arg: BaseModel, *, what: str) -> None:
    _exists(handle, what)
    try:
        await handle.signal(method, arg)
    except RPCError as error:
        raise missing(error, what) from error


def _named(what: str) -> str:
    """What a sentence names, typed by someone: its escapes shown, a huge one cut."""
    return for_terminal(what if len(what) <= 120 else f"{what[:120]}…")


def _exists(handle: WorkflowHandle, what: str) -> None:
    """An id no workflow of the project can have is not sent: the server would fail on it (a huge id breaks
    the gRPC call) instead of answering that it does not exist."""
    if len(handle.id) > WORKFLOW_ID_CAP or FORBIDDEN.search(handle.id):
        raise NotFound(f"no {_named(what)} is running")


def missing(error: RPCError, what: str) -> Exception:
    """NOT_FOUND and a closed workflow are the sender's mistake; anything else is the server's failure."""
    if error.status == RPCStatusCode.NOT_FOUND:
        text = error.message.lower()
        if "completed" in text or "closed" in text or "finished" in text:
            return Refused(f"{_named(what)} has closed and takes no more commands")
        return NotFound(f"no {_named(what)} is running")
    return error


def keyed(request_key: str) -> str:
    """What a command records of a door's idempotency key (the API's, scoped to its user): enough to know its
    retry, nothing of the key itself."""
    return hashlib.sha256(request_key.encode()).hexdigest()[:16]


async def started_with(client: Client, handle: WorkflowHandle, model: type[BaseModel]) -> Any:
    """The input a workflow (running or closed) was started with; None when there is no such workflow."""
    try:
        history = await handle.fetch_history()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    [run] = await client.data_converter.decode(started, [model])
    return run


def client_handle(client: Client, run: Callable, workflow_id: str) -> WorkflowHandle:
    return client.get_workflow_handle_for(run, workflow_id)
