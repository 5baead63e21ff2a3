"""What every activity shares: its workflow's id and the non-retryable "not found"."""
from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError


def not_found(what: str) -> ApplicationError:
    return ApplicationError(f"{what} not found", type="NotFound", non_retryable=True)


def workflow_id() -> str:
    return activity.info().workflow_id
