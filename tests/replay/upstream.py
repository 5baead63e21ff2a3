"""A replay failure that is the SDK's, not our workflow code's (temporalio 1.35, its sdk-core).

Seen in the chaos test: a timer fires, its workflow task goes to the sticky queue of a worker that
was just killed and times out, and an update arrives before the next workflow task starts. The new
worker ran the timer's continuation first and the update's handler after it, and the history
records that order: the task's first commands come before the update's acceptance. On replay
sdk-core skips the task that did not complete, delivers the timer and the update in one activation,
and the Python SDK runs updates first: the commands come in another order and replay fails with
"Update machine does not handle this event" at that first command. The workflow itself completed on
the worker that had it cached; a worker that must replay it (a query of the closed workflow, a
restart while it is open) cannot.

Upstream: sdk-core's handling of an update accepted after a skipped (timed-out or failed) workflow
task: temporalio/sdk-rust #943 (same symptom: a worker restart, an update, and on replay the
acceptance and the other commands "the other way around"), the fix proposed for it in sdk-rust #961
(whose test skips a failed task), and the open sdk-rust #1146 on inconsistent collapsing of workflow
tasks before an update.

The events between the skipped task and the update's are whatever the outage left there: the timer
may fire before the task times out or after it, and the task may time out before it started (its
worker was already dead), after (killed while running it), or fail. Killing a worker at different
moments on the dev server gave the first three orders; with the task's commands before the
acceptance, each fails replay the same way (test_upstream.py builds them from the captured history).
The shape is recognised whatever they are, and only for the failure that names the first command of
the task that accepted the update: the same message anywhere else (an update after a task that
completed, or at another event) is counted as ours.
"""
from __future__ import annotations

import re

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

SIGNATURE = "Update machine does not handle this event"
_FAILED_AT = re.compile(re.escape(SIGNATURE) + r": HistoryEvent\(id: (\d+),")

_STARTED = EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
_SKIPPED = {EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED}
_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED


def upstream_stops(history: WorkflowHistory) -> set[int]:
    """The events where this bug stops a replay: for each update accepted in the first workflow task
    after a skipped one, that task's first command, when it was recorded before the acceptance."""
    events = list(history.events)
    by_id = {event.event_id: event for event in events}
    stops = set()
    for accepted in events:
        if accepted.event_type != _ACCEPTED:
            continue
        sequenced = accepted.workflow_execution_update_accepted_event_attributes.accepted_request_sequencing_event_id
        started = next((e.event_id for e in events if e.event_type == _STARTED and e.event_id > sequenced), None)
        if started is None or getattr(by_id.get(started + 1), "event_type", None) != _COMPLETED:
            continue
        outcomes = [e.event_type for e in events if e.event_id < started and e.event_type in _SKIPPED | {_COMPLETED}]
        first_command = started + 2
        if outcomes and outcomes[-1] in _SKIPPED and first_command < accepted.event_id:
            stops.add(first_command)
    return stops


def known_upstream(history: WorkflowHistory, failure: Exception | None) -> bool:
    """A replay failure with this bug's message, stopped where this bug stops a replay of this history."""
    found = _FAILED_AT.search(str(failure)) if failure is not None else None
    return found is not None and int(found.group(1)) in upstream_stops(history)
