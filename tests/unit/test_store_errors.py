"""A row the store does not find reaches the workflow as the non-retryable `NotFound` failure."""
from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.draws import DrawActivities
from domain.messages.task import TaskStep


@pytest.mark.parametrize("method", ["announce", "freeze", "supersede_draw"])
def test_an_unknown_task_or_draw_fails_without_retries(sqlite_engine, method):
    activities = DrawActivities(sqlite_engine)
    with pytest.raises(ApplicationError) as failure:
        ActivityEnvironment().run(getattr(activities, method), TaskStep(task_id="NO-SUCH-TASK", draw_seq=1))
    assert failure.value.type == "NotFound" and failure.value.non_retryable
    assert "NO-SUCH-TASK" in str(failure.value)
