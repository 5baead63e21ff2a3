"""What every activity shares: its workflow's id and the non-retryable "not found"."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError

from store.common import NotFound


def not_found(what: str) -> ApplicationError:
    return ApplicationError(f"{what} not found", type="NotFound", non_retryable=True)


@contextmanager
def found() -> Iterator[None]:
    """A store's NotFound, raised inside, as the non-retryable failure the workflows expect."""
    try:
        yield
    except NotFound as missing:
        raise not_found(missing.what) from missing


def workflow_id() -> str:
    return activity.info().workflow_id
