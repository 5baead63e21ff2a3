"""A replay failure that is the SDK's, not our workflow code's (temporalio 1.35, its sdk-core).

Seen in the chaos test: a target's timer fires, the workflow task carrying it goes to the sticky
queue of a worker that was just killed and times out (schedule-to-start), and an update arrives
before the next workflow task, sequenced at it. The new worker ran the timer's continuation first
and the update's handler after it, and the history records that order. On replay sdk-core collapses
the timed-out task into the next one and hands the timer and the update over in one activation, and
the Python SDK runs updates first: the commands come in another order and replay fails with
"Update machine does not handle this event". The workflow itself completed on the worker that had
it cached; a worker that must replay it (a query of the closed workflow, a restart while it is open)
cannot. Upstream: the WFT-collapsing issues of sdk-core (temporalio/sdk-rust #943, #1146).
"""
from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

SIGNATURE = "Update machine does not handle this event"


def update_after_timed_out_task(history: WorkflowHistory) -> bool:
    """Whether an accepted update was sequenced at a workflow task scheduled after a timed-out one."""
    by_id = {event.event_id: event for event in history.events}
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            continue
        sequenced = event.workflow_execution_update_accepted_event_attributes.accepted_request_sequencing_event_id
        before = by_id.get(sequenced - 1)
        if before is not None and before.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            return True
    return False


def known_upstream(history: WorkflowHistory, failure: Exception | None) -> bool:
    """A replay failure with this bug's message on a history of this bug's shape."""
    return failure is not None and SIGNATURE in str(failure) and update_after_timed_out_task(history)
