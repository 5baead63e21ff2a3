"""What every activity shares: its workflow's id, the non-retryable "not found", and failures no retry cures."""
from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from store.common import NotFound, Unstorable, refusals
from store.targets import record_alert

# Temporal refuses a payload over 2 MB, and the activity would then be retried for ever; a result over this budget
# fails at once instead. Every message is bounded far below it (domain/messages, domain/plan.py caps).
PAYLOAD_BUDGET = 1_000_000  # bytes of JSON


def not_found(what: str) -> ApplicationError:
    return ApplicationError(f"{what} not found", type="NotFound", non_retryable=True)


@contextmanager
def found() -> Iterator[None]:
    """A store's NotFound, raised inside, as the non-retryable failure the workflows expect."""
    try:
        yield
    except NotFound as missing:
        raise not_found(missing.what) from missing


def no_retry_cures(method):
    """An activity method whose deterministic failures (the database refuses its row; its result is over the
    payload budget) fail the step at once, non-retryable, and leave an alert an operator sees and repairs,
    where a retry would fail the same way for ever. `self._engine` records the alert."""

    @functools.wraps(method)
    def run(self, arg):
        try:
            with refusals():
                result = method(self, arg)
        except Unstorable as refused:
            raise _failed(self._engine, arg, "Unstorable", f"the database refuses it: {refused}") from refused
        size = len(result.model_dump_json()) if isinstance(result, BaseModel) else 0
        if size > PAYLOAD_BUDGET:
            raise _failed(self._engine, arg, "PayloadTooLarge",
                          f"its result is {size} bytes; the budget is {PAYLOAD_BUDGET} bytes")
        return result

    return run


def _failed(engine, arg, kind: str, why: str) -> ApplicationError:
    """The alert of a failed step (its own transaction), and the non-retryable failure the workflow sees."""
    info = activity.info()
    step = getattr(arg, "step", None) or info.activity_type
    details = f"step {step} ({info.activity_type}) failed and is not retried: {why}"[:2000]
    with engine.begin() as connection:
        record_alert(connection, workflow_id=info.workflow_id or "", step=f"failed-{step}"[:64], kind="failure",
                     task_id=getattr(arg, "task_id", None), uscc=getattr(arg, "uscc", None),
                     at=datetime.now(timezone.utc), details=details)
    return ApplicationError(details, type=kind, non_retryable=True)


def workflow_id() -> str:
    return activity.info().workflow_id
