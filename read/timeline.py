"""A task's timeline (`task history`), read from the event histories — a projection, not a kept log.

The task workflow's history (every run of its continue-as-new chain) and its target children's
histories are fetched and mapped event by event to domain events:

- an activity counts once it completed (its failed attempts leave no event: the server retries
  them); one that failed for good, or timed out for good, shows as "failed" with the error;
- an accepted update is the human command it carries (its validator held the rules; a refused
  command leaves no event); the update's completion tells whether its handler succeeded;
- signals (field signals, a finished target, a cancellation), fired timers ("deadline passed",
  with the timer's summary) and started children.

Payloads are decoded with the client's data converter and read as plain JSON (no model classes):
histories are kept for years and must stay readable after the models change. Every item is
`{"at", "event", "actor", "target", "details"}` (contract.md, `task history`), sorted by time.

A history Temporal no longer has (past the namespace retention, or deleted) is read from the history
archive when one is given (read/archive.py): the same events, so the same timeline.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from domain.messages.target import Team, team_notice
from store.projection import started_targets
from workflows.common import target_workflow_id, task_workflow_id

if TYPE_CHECKING:
    from db.engine import Engine
    from read.archive import HistoryArchive

FETCH_CONCURRENCY = 16  # target histories fetched at once

# Activities whose completion is a domain event. The others (targets_page, working_days_later, the
# other record_*) compute or persist what an update already shows; they appear only when they fail for good.
ACTIVITY_EVENTS = {
    "announce": "announced",
    "freeze": "frozen",
    "draw": "drawn",
    "dispatch": "dispatched",
    "open_target": "target opened",
    "publish_result": "published",
    "open_follow_up": "follow-up opened",
    "deliver": "handed off",
    "close_follow_up": "follow-up closed",
    "close_task": "task closed",
    "supersede_draw": "draw superseded",
    "record_stage": "target closed",  # or "target cancelled"
    "finish": "target closed",  # or "target cancelled"; since the task counts its targets
    # "alert": named by its kind (reminder, escalation, notice)
}

Event = dict[str, Any]


async def timeline(client: Client, task_id: str, uscc: str | None = None,
                   archive: HistoryArchive | None = None, engine: Engine | None = None) -> list[Event]:
    """The domain timeline of a task, or of one of its targets when `uscc` is given, in time order.

    With `archive`, runs Temporal no longer has are read from the history archive. With `engine`, the targets
    the projection names as started join the task's children: a task since patch targets-started-in-shards
    starts its targets by activities, and its history names none of them.
    Raises LookupError when there is no such task (or no such target of it).
    """
    decoder = _Decoder(client)
    try:
        task_runs = await execution_chain(client, task_workflow_id(task_id), archive)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            where = "Temporal or the history archive" if archive is not None else "Temporal"
            raise LookupError(f"no task {task_id} in {where} ({error.message})") from error
        raise
    items: list[tuple[datetime, Event]] = []
    children: dict[str, str] = {}  # workflow id -> uscc, in start order
    for events in task_runs:
        items += await _project(events, decoder, target=None)
        for event in events:
            if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                a = event.start_child_workflow_execution_initiated_event_attributes
                child_uscc = (await decoder.first(a.input.payloads)).get("uscc") or a.workflow_id.rsplit("/", 1)[-1]
                children.setdefault(a.workflow_id, child_uscc)
    if engine is not None:
        for _, started in await asyncio.to_thread(started_targets, engine, [task_id]):
            children.setdefault(target_workflow_id(task_id, started), started)
    known = True
    if uscc is not None:
        wanted = target_workflow_id(task_id, uscc)
        known = wanted in children
        children = {wanted: children.get(wanted, uscc)}  # the id is fixed: also tried when not in the history

    semaphore = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def child_items(workflow_id: str, child_uscc: str) -> list[tuple[datetime, Event]]:
        async with semaphore:
            try:
                runs = await execution_chain(client, workflow_id, archive)
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    return []  # never started (the task was cancelled first) or past retention
                raise
        out: list[tuple[datetime, Event]] = []
        for events in runs:
            out += await _project(events, decoder, target=child_uscc)
        return out

    for found in await asyncio.gather(*(child_items(w, u) for w, u in children.items())):
        items += found
    if uscc is not None:
        items = [item for item in items if item[1]["target"] == uscc]
        if not items and not known:
            raise LookupError(f"{uscc} is not a target of task {task_id}")
    items.sort(key=lambda item: item[0])  # stable: the task first, then the targets in start order
    return [event for _, event in items]


# --- histories -----------------------------------------------------------------------------------
async def execution_chain(client: Client, workflow_id: str,
                 archive: HistoryArchive | None = None) -> list[Sequence[HistoryEvent]]:
    """Every run of a workflow's latest execution chain, oldest first.

    The latest run comes from the id alone; each run's started event names the run it continued
    (continue-as-new or retry), so the chain is walked back from there. Runs already past the
    namespace retention are read from the archive when given, else simply missing from the front;
    when Temporal has no run of the id at all, the whole chain comes from the archive.
    """
    try:
        latest = await client.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND and archive is not None:
            archived = await archive.chain(workflow_id)
            if archived:
                return archived
        raise
    runs = [latest.events]
    seen = {latest.run_id}
    previous = _started(latest.events).continued_execution_run_id if latest.events else ""
    while previous and previous not in seen:
        seen.add(previous)
        try:
            events = (await client.get_workflow_handle(workflow_id, run_id=previous).fetch_history()).events
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            events = await archive.run(workflow_id, previous) if archive is not None else None
            if events is None:
                break
        runs.append(events)
        previous = _started(events).continued_execution_run_id if events else ""
    runs.reverse()
    return runs


def _started(events: Sequence[HistoryEvent]):
    return events[0].workflow_execution_started_event_attributes


# --- decoding ------------------------------------------------------------------------------------
@dataclass
class _Decoder:
    """The client's data converter. A codec error (a key this client lacks) is raised, naming the key:
    a timeline with its payloads silently blanked would mislead. A payload the converter cannot read
    (an older shape, an unknown encoding) only blanks its own details."""

    client: Client

    async def all(self, payloads: Iterable[Payload]) -> list[Any]:
        payloads = list(payloads)
        if not payloads:
            return []
        converter = self.client.data_converter
        if converter.payload_codec is not None:
            payloads = await converter.payload_codec.decode(payloads)
        _refuse_encrypted(payloads)
        try:
            return converter.payload_converter.from_payloads(payloads)
        except Exception:  # noqa: BLE001 - one unreadable payload must not hide the rest of the timeline
            return [None] * len(payloads)

    async def first(self, payloads: Iterable[Payload]) -> dict[str, Any]:
        values = await self.all(payloads)
        value = values[0] if values else None
        return value if isinstance(value, dict) else {}

    async def text(self, payload: Payload) -> str:
        values = await self.all([payload])
        return "" if values[0] is None else str(values[0])

    async def failure(self, failure: Failure) -> str:
        """The root cause's type and message (an activity or update error wraps what went wrong)."""
        converter = self.client.data_converter
        copy = Failure()
        copy.CopyFrom(failure)  # decoding works in place
        if converter.payload_codec is not None:
            await converter.payload_codec.decode_failure(copy)
        elif copy.HasField("encoded_attributes"):
            _refuse_encrypted([copy.encoded_attributes])
        try:
            error: BaseException = converter.failure_converter.from_failure(copy, converter.payload_converter)
        except Exception:  # noqa: BLE001
            return copy.message
        while error.__cause__ is not None:
            error = error.__cause__
        message = str(error) or copy.message
        kind = getattr(error, "type", None)
        return f"{kind}: {message}" if kind and kind not in message else message


def _refuse_encrypted(payloads: Iterable[Payload]) -> None:
    """Still encrypted after decoding: this client has no codec. Blank details would mislead (a
    cancelled task would read as closed), so say what is missing instead."""
    if any(p.metadata.get("encoding", b"").startswith(b"binary/encrypted") for p in payloads):
        raise ValueError("the histories are encrypted and this client has no codec key: "
                         "set SPOTCHECK_CODEC_KEYS (runtime/codec.py)")


# --- projection ----------------------------------------------------------------------------------
@dataclass
class _Projection:
    decoder: _Decoder
    target: str | None
    items: list[tuple[datetime, Event]] = field(default_factory=list)

    def add(self, event: HistoryEvent, name: str, actor: str | None = None, details: str = "",
            target: str | None = None) -> None:
        at = event.event_time.ToDatetime(tzinfo=timezone.utc)
        self.items.append((at, {"at": at.isoformat(), "event": name, "actor": actor,
                                "target": target if target is not None else self.target, "details": details}))


async def _project(events: Sequence[HistoryEvent], decoder: _Decoder, target: str | None) -> list[tuple[datetime, Event]]:
    """One run's history as domain events, in history order."""
    out = _Projection(decoder, target)
    by_id = {event.event_id: event for event in events}
    # An update's completion names its accepted event (the Java test server leaves that 0) and its id.
    update_outcomes: dict[int | str, HistoryEvent] = {}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            a = e.workflow_execution_update_completed_event_attributes
            update_outcomes[a.meta.update_id] = e
            if a.accepted_event_id:
                update_outcomes[a.accepted_event_id] = e
    children_started = {
        e.child_workflow_execution_started_event_attributes.initiated_event_id: e
        for e in events if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    }
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            a = event.activity_task_completed_event_attributes
            scheduled = by_id.get(a.scheduled_event_id)
            if scheduled is not None:
                await _activity(out, event, scheduled, a.result.payloads)
        elif kind in (EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT):
            a = (event.activity_task_failed_event_attributes if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                 else event.activity_task_timed_out_event_attributes)
            scheduled = by_id.get(a.scheduled_event_id)
            name = scheduled.activity_task_scheduled_event_attributes.activity_type.name if scheduled else "activity"
            out.add(event, "failed", details=f"{name}: {await decoder.failure(a.failure)}")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            accepted = event.workflow_execution_update_accepted_event_attributes
            await _update(out, event, update_outcomes.get(event.event_id)
                          or update_outcomes.get(accepted.accepted_request.meta.update_id or accepted.protocol_instance_id))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            await _signal(out, event)
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            started = by_id.get(event.timer_fired_event_attributes.started_event_id)
            summary = ""
            if started is not None and started.HasField("user_metadata") and started.user_metadata.HasField("summary"):
                summary = await decoder.text(started.user_metadata.summary)
            out.add(event, "deadline passed", details=summary or f"timer {event.timer_fired_event_attributes.timer_id}")
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            started = children_started.get(event.event_id)  # a failed start (already started) is no event
            if started is not None:
                a = event.start_child_workflow_execution_initiated_event_attributes
                child = await decoder.first(a.input.payloads)
                out.add(started, "target started", details=a.workflow_id,
                        target=child.get("uscc") or a.workflow_id.rsplit("/", 1)[-1])
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED and target is not None:
            a = event.workflow_execution_started_event_attributes
            # A target started by its task's activities, not as its child (patch targets-started-in-shards):
            # its own first run says so, where a child's start is the task's event above.
            if not a.HasField("parent_workflow_execution") and not a.continued_execution_run_id:
                run = await decoder.first(a.input.payloads)
                out.add(event, "target started", details=target_workflow_id(run["task_id"], run["uscc"]))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            out.add(event, "failed", details=await decoder.failure(event.workflow_execution_failed_event_attributes.failure))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            a = event.workflow_execution_terminated_event_attributes
            out.add(event, "terminated", details=" ".join(filter(None, [a.reason, f"({a.identity})" if a.identity else ""])))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
            out.add(event, "timed out")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
            out.add(event, "cancelled")
    return out.items


def _alert_details(alert: dict) -> str:
    return "; ".join(filter(None, [f"{alert.get('details', '')} ({alert.get('step', '')})",
                                   f"notify {', '.join(alert.get('notify') or [])}" if alert.get("notify") else ""]))


async def _activity(out: _Projection, completed: HistoryEvent, scheduled: HistoryEvent,
                    result_payloads: Sequence[Payload]) -> None:
    name = scheduled.activity_task_scheduled_event_attributes.activity_type.name
    if name != "alert" and name not in ACTIVITY_EVENTS:
        return
    given = await out.decoder.first(scheduled.activity_task_scheduled_event_attributes.input.payloads)
    result = await out.decoder.first(result_payloads)
    event, details = ACTIVITY_EVENTS.get(name, name), ""
    if name == "announce":
        details = f"commitment {result.get('commitment')}; entropy {result.get('entropy_source')}"
        if (given.get("draw_seq") or 1) > 1:
            details += f"; draw {given.get('draw_seq')} (redraw: {given.get('reason') or ''})"
    elif name == "supersede_draw":
        details = f"draw {given.get('draw_seq')}: {given.get('reason') or ''}; approved by {given.get('approver') or ''}"
    elif name in ("record_stage", "finish"):
        stage = str(given.get("stage") or "")
        if stage not in ("closed", "cancelled"):
            return
        event = f"target {stage}"
    elif name == "freeze":
        # Never the strata: they are credit-risk classes (R29).
        details = f"population {result.get('population')}; digest {result.get('population_digest')}"
    elif name == "draw":
        details = (f"selected {result.get('selected')} (+{result.get('targeted', 0)} targeted); "
                   f"selection digest {result.get('selection_digest')}")
    elif name == "dispatch":
        details = f"{result.get('teams')} teams; {result.get('unstaffed')} unstaffed"
    elif name == "open_target":
        teams = "; ".join(f"{t.get('unit')}: {', '.join(t.get('inspectors') or [])}" for t in result.get("teams") or [])
        unstaffed = ", ".join(result.get("unstaffed_units") or [])
        details = "; ".join(filter(None, [f"{result.get('kind', '')} target".strip(), f"team {teams}" if teams else "",
                                          f"unstaffed {unstaffed}" if unstaffed else ""]))
        if result.get("team_notified"):  # told in the same step (since patch target-opens-in-one-run)
            out.add(completed, event, details=details)
            notice = team_notice(given.get("task_id"), given.get("uscc"), given.get("at"),
                                 [Team(**t) for t in result.get("teams") or []])
            event, details = notice.kind, _alert_details(notice.model_dump())
    elif name == "publish_result":
        details = f"due {given.get('due_at')}" if given.get("due_at") else ""
    elif name == "open_follow_up":
        details = "; ".join(filter(None, [f"{given.get('kind')} ({given.get('step')})", f"lead {result.get('lead_id')}",
                                          f"due {result.get('due_at')}" if result.get("due_at") else ""]))
    elif name == "deliver":
        details = str(given.get("step") or "")
    elif name == "close_follow_up":
        details = f"lead {given.get('lead_id')}: {given.get('closed_by')}"
    elif name == "alert":
        event, details = str(given.get("kind") or "alert"), _alert_details(given)
    elif name == "close_task":
        if given.get("cancelled"):
            details = f"cancelled: {given['reason']}" if given.get("reason") else "cancelled"
        else:
            details = "closed"
    out.add(completed, event, details=details)


async def _update(out: _Projection, accepted: HistoryEvent, completed: HistoryEvent | None) -> None:
    request = accepted.workflow_execution_update_accepted_event_attributes.accepted_request
    name = request.input.name
    command = await out.decoder.first(request.input.args.payloads)
    actor: str | None = None
    target: str | None = None
    event, details = name, ""
    if name == "record_check":
        inspectors = list(command.get("inspectors") or [])
        actor, event = (inspectors[0] if inspectors else None), "check recorded"
        details = "; ".join(filter(None, [f"method {command.get('method')}", f"inspectors {', '.join(inspectors)}",
                                          "certificates shown" if command.get("certificates_shown") else "",
                                          f"evidence {len(command['evidence'])}" if command.get("evidence") else ""]))
    elif name == "enter_result":
        actor, event = command.get("inspector"), "result entered"
        details = "; ".join(filter(None, [f"category {command.get('category')}", command.get("note") or ""]))
    elif name == "review_result":
        actor, event = command.get("reviewer"), "approved" if command.get("approve") else "returned"
        details = command.get("note") or ""
    elif name == "assign_team":
        actor, event = command.get("by"), "team assigned"
        details = (f"{command.get('unit')}: {', '.join(command.get('inspectors') or [])}; "
                   f"reason {command.get('reason')}")
    elif name == "record_recheck":
        actor, event = command.get("inspector"), "re-check recorded"
        details = "; ".join(filter(None, ["passed" if command.get("passed") else "failed", command.get("note") or ""]))
    elif name == "enter_entropy":
        event, details = "entropy entered", f"value {command.get('value')}"
    elif name == "add_target":
        event, target = "target added", command.get("uscc")
        details = "; ".join(filter(None, [str(command.get("reason") or ""),
                                          f"legal basis {command['legal_basis']}" if command.get("legal_basis") else ""]))
    elif name == "redraw":
        actor, event = command.get("approver"), "redraw approved"
        details = str(command.get("reason") or "")
    elif command:
        details = json.dumps(command, ensure_ascii=False, sort_keys=True, default=str)
    if completed is None:
        details = f"{details} (in progress)".strip()
    else:
        outcome = completed.workflow_execution_update_completed_event_attributes.outcome
        if outcome.HasField("failure"):
            details = f"{event}: {await out.decoder.failure(outcome.failure)}"
            event = "failed"
    out.add(accepted, event, actor=actor, details=details, target=target)


async def _signal(out: _Projection, event: HistoryEvent) -> None:
    a = event.workflow_execution_signaled_event_attributes
    values = await out.decoder.all(a.input.payloads)
    arg = values[0] if values else None
    if a.signal_name == "field_signal" and isinstance(arg, dict):
        out.add(event, str(arg.get("kind") or "field signal"), actor=arg.get("inspector"))
    elif a.signal_name == "target_finished":
        out.add(event, "target finished", target=str(arg) if arg else None)
    elif a.signal_name == "targets_finished":
        out.add(event, "last target finished", target=str(arg) if arg else None)
    elif a.signal_name == "cancel":
        out.add(event, "cancel requested", details=str(arg or ""))
    else:
        out.add(event, a.signal_name, details="" if arg is None else json.dumps(arg, ensure_ascii=False, default=str))
