"""`projection rebuild`: the projection tables recomputed from the event histories, compared with the live ones.

The projection rows are written by activities from their inputs. A history holds every activity's input
(ActivityTaskScheduled) and result (ActivityTaskCompleted), so the rebuild replays each completed activity,
in the order of completion across all the year's workflows, into a fresh schema (store/projection.py):

- each activity is run again itself, against the fresh schema, with `activity.info` faked (the workflow
  id) and its clock pinned to when the first attempt ran (what it publishes as "now", see `ran`);
- the draw's steps too, given what no history holds from the live draw row (store.projection.draw_secrets):
  announce its nonce, freeze its population salt (its instant is in its result), draw the instant it
  committed. So the freeze recomputes the population as of then from the directory's history, the draw
  its selection, and each rebuilt result must equal the history's (a failure names the step otherwise);
- activities that write none of the compared tables (paging, counting, deadlines, the archive) are skipped.

Histories come from Temporal, and from the history archive for runs Temporal no longer has
(read/timeline.py execution_chain). Compared: the year's rows (of its plans, its tasks, or for the outbox
its workflows) of every table the workflows project: targets, teams, publications, follow_ups, draws,
draw_selection, targeted, dispatch_pools, outbox, alerts. Columns that say when an activity ran, are
numbered as rows arrive, or hold what no history has, are excluded (EXCLUDED), and some compared as
present or not (PRESENCE); alerts written by a failed attempt are left out (LEFT_OUT); the report names them.
"""
from __future__ import annotations

import asyncio
import dataclasses
import typing
from collections.abc import Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from types import SimpleNamespace
from typing import Any
from unittest import mock

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

import activities.draws
import activities.handoff
import activities.plans
import activities.targets
from activities.draws import DrawActivities
from activities.handoff import HandoffActivities, Notifier
from activities.plans import PlanActivities
from activities.targets import TargetActivities
from db import schema
from db.engine import Engine
from domain.workdays import Deadlines
from read.archive import HistoryArchive
from read.timeline import execution_chain
from store.projection import (
    draw_secrets,
    fresh_schema,
    keep_stored_population,
    scoped_rows,
    started_targets,
    year_scope,
)
from workflows.common import plan_workflow_id, target_workflow_id, task_workflow_id

# The compared tables: each row's key, and the columns left out of the comparison, with why.
KEYS = {
    "targets": ("task_id", "uscc"),
    "teams": ("workflow_id", "step", "uscc", "unit_code"),
    "publications": ("workflow_id", "step"),
    "follow_ups": ("lead_id",),
    "draws": ("task_id", "draw_seq"),
    "draw_selection": ("task_id", "draw_seq", "uscc"),
    "targeted": ("task_id", "uscc"),
    "dispatch_pools": ("task_id", "unit_code"),
    "outbox": ("workflow_id", "step"),
    "alerts": ("workflow_id", "step"),
}
TAKEN_FROM_LIVE = "in no history: the replay takes it from the live row"
EXCLUDED = {
    "targets": {"published_at": "when publish_result ran (its now())"},
    "teams": {"team_id": "numbered as rows arrive", "at": "when dispatch ran (its now())"},
    "publications": {"publication_id": "numbered as rows arrive",
                     "published_at": "when the publishing activity ran (its now())"},
    "follow_ups": {"closed_at": "when the receiving system's acceptance was delivered (deliver's now())"},
    "draws": {"nonce": f"a secret {TAKEN_FROM_LIVE}", "population_salt": f"a secret {TAKEN_FROM_LIVE}",
              "drawn_at": f"the instant the draw committed, {TAKEN_FROM_LIVE}",
              "population_stored": f"how a draw frozen before migration 0006 keeps its population, {TAKEN_FROM_LIVE}"},
    "draw_selection": {},
    "targeted": {},
    "dispatch_pools": {},
    # The outbox is a log of side effects: what was handed off is derivable, how the handing went is not.
    "outbox": {"outbox_id": "numbered as rows arrive", "created_at": "when the enqueuing activity ran (its now())",
               "attempts": "delivery tries, each counted before the receiver answers: a try whose activity "
                           "attempt failed and was retried is in no event"},
    "alerts": {"alert_id": "numbered as rows arrive"},
}
# Columns compared as present or not: the value is an instant no event records, its presence is derivable.
PRESENCE = {"outbox": {"delivered_at": "delivered or not (when: deliver's now())"}}
# Rows not compared, by a column's values, with why.
LEFT_OUT = {"alerts": ("kind", ("failure", "calendar"),
                       "failure and calendar alerts are written by an activity attempt that failed: a retried "
                       "attempt leaves no event, and the rebuild replays completed activities only")}
UNDETERMINED = ("a result's publication whose due fell between the scheduling and the completion of "
                "publish_result: on time or not (publications.on_time, targets.overdue) depends on when the "
                "attempt that committed ran, which no event records")
# Modules whose activities read the clock: pinned during a replay to when the step ran (Completed.ran).
CLOCKED = (activities.draws, activities.handoff, activities.plans, activities.targets)


@dataclass(frozen=True)
class Completed:
    """One completed activity of a history: what it was given, what it returned, when it ran."""

    workflow_id: str
    activity: str
    # When it ran, as its writes saw the clock: a step's rows are written once, by the attempt that commits
    # first, which is the first attempt unless it failed before its commit. The first attempt's start is in
    # no event once it was retried (the started event is the completing attempt's), so then the scheduled
    # time stands for it: a retry after a commit (a worker killed) starts long after the rows were written.
    ran: datetime
    scheduled: datetime
    completed: datetime
    event_id: int
    input: Sequence[Any]  # payloads
    result: Sequence[Any]


@dataclass(frozen=True)
class Difference:
    table: str
    key: dict
    column: str  # "*" when the row is on one side only
    live: Any
    rebuilt: Any

    def as_json(self) -> dict:
        return {"table": self.table, "key": self.key, "column": self.column,
                "live": _shown(self.live), "rebuilt": _shown(self.rebuilt)}


@dataclass
class Rebuild:
    year: int
    workflows: int = 0
    from_archive: int = 0
    replayed: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    differences: list[Difference] = dataclasses.field(default_factory=list)
    # Values the histories cannot settle, left out of the comparison row by row (see `_undetermined`).
    undetermined: list[Difference] = dataclasses.field(default_factory=list)
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    workflow_ids: set[str] = dataclasses.field(default_factory=set)  # every workflow of the year, read or not

    def as_json(self) -> dict:
        return {"year": self.year, "workflows": self.workflows, "from_archive": self.from_archive,
                "activities_replayed": self.replayed, "tables": self.rows,
                "excluded": {t: dict(c) for t, c in EXCLUDED.items() if c},
                "presence_only": {t: dict(c) for t, c in PRESENCE.items()},
                "rows_left_out": {t: {"column": c, "values": list(v), "why": why} for t, (c, v, why) in LEFT_OUT.items()},
                "replay_failures": self.failures,
                "undetermined": {"why": UNDETERMINED, "values": [d.as_json() for d in self.undetermined]},
                "differences": [d.as_json() for d in self.differences]}


async def rebuild(engine: Engine, client: Client, year: int, deadlines: Deadlines,
                  archive: HistoryArchive | None = None) -> Rebuild:
    """Replay the year's histories into a fresh schema and compare its projection tables with the live ones."""
    plan_codes, task_ids = await asyncio.to_thread(year_scope, engine, year)
    started = [target_workflow_id(t, u) for t, u in await asyncio.to_thread(started_targets, engine, task_ids)]
    outcome = Rebuild(year)
    steps = await _year_steps(client, archive, plan_codes, task_ids, started, outcome)
    steps.sort(key=lambda s: (s.completed, s.workflow_id, s.event_id))
    decoded = await _decoded(client, steps, outcome)
    await asyncio.to_thread(_replay_and_compare, engine, deadlines, decoded, plan_codes, task_ids, outcome)
    return outcome


# --- histories -----------------------------------------------------------------------------------------
async def _year_steps(client: Client, archive: HistoryArchive | None, plan_codes: list[str], task_ids: list[str],
                      targets: list[str], outcome: Rebuild) -> list[Completed]:
    """Every completed activity of the year's plan and task workflows, of the children they started and of the
    `targets` workflows (started by the tasks' activities)."""
    pending = [plan_workflow_id(p) for p in plan_codes] + [task_workflow_id(t) for t in task_ids] + targets
    seen: set[str] = set()
    steps: list[Completed] = []
    while pending:
        batch = [w for w in dict.fromkeys(pending) if w not in seen]
        seen.update(batch)
        outcome.workflow_ids.update(batch)
        pending = []
        for workflow_id, runs in zip(batch, await asyncio.gather(*(_chain(client, w, archive) for w in batch))):
            if runs:
                outcome.workflows += 1
            for events in runs:
                steps += _completed(workflow_id, events)
                pending += [e.start_child_workflow_execution_initiated_event_attributes.workflow_id for e in events
                            if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED]
    if archive is not None:
        outcome.from_archive = len(archive.used)
    return steps


async def _chain(client: Client, workflow_id: str, archive: HistoryArchive | None) -> list[Sequence[HistoryEvent]]:
    try:
        return await execution_chain(client, workflow_id, archive)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return []  # never started (a task cancelled before its start), or gone from Temporal and the archive
        raise


def _completed(workflow_id: str, events: Sequence[HistoryEvent]) -> list[Completed]:
    by_id = {e.event_id: e for e in events}
    out = []
    for event in events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            continue
        a = event.activity_task_completed_event_attributes
        scheduled, started = by_id.get(a.scheduled_event_id), by_id.get(a.started_event_id)
        if scheduled is None:
            continue
        s = scheduled.activity_task_scheduled_event_attributes
        first = started if started is not None and started.activity_task_started_event_attributes.attempt <= 1 \
            else scheduled
        out.append(Completed(
            workflow_id=workflow_id, activity=s.activity_type.name,
            ran=first.event_time.ToDatetime(tzinfo=timezone.utc),
            scheduled=scheduled.event_time.ToDatetime(tzinfo=timezone.utc),
            completed=event.event_time.ToDatetime(tzinfo=timezone.utc), event_id=event.event_id,
            input=list(s.input.payloads), result=list(a.result.payloads)))
    return out


# --- replay ----------------------------------------------------------------------------------------------
class _Unsent:
    """The rebuild's receiver: a replayed handoff is recorded, never sent again."""

    def send(self, key: str, kind: str, payload: dict) -> None:
        pass


# The activities that write a compared table, run again, by the class that holds them.
RERUN = {
    DrawActivities: ("announce", "record_targeted", "freeze", "draw", "dispatch", "supersede_draw", "cancel_unstarted",
                     "close_task"),
    TargetActivities: ("open_target", "record_check", "record_result", "record_review", "record_team",
                       "record_stage", "finish", "publish_result", "alert"),
    HandoffActivities: ("open_follow_up", "deliver", "close_follow_up"),
    PlanActivities: ("publish_plan", "publish_adjustment"),
}
# The draw's steps, given what the live draw row holds and no history does; each rebuilt result is checked
# against the history's: (the secret its `secrets.token_bytes` gives, or None).
DRAW_STEPS = {"announce": "nonce", "freeze": "population_salt", "draw": None}


def _types(activity: str) -> tuple[type, type] | None:
    """(input type, result type) of an activity the rebuild replays; None for the others."""
    for holder, names in RERUN.items():
        if activity in names:
            hints = typing.get_type_hints(getattr(holder, activity))
            return next(v for k, v in hints.items() if k != "return"), hints["return"]
    return None


async def _decoded(client: Client, steps: list[Completed], outcome: Rebuild) -> list[tuple[Completed, Any, Any]]:
    """(step, input, result) of each step the rebuild replays, decoded with the client's data converter; a
    payload it cannot read (a codec key missing, an older shape) is a replay failure of its step."""
    out = []
    for step in steps:
        types = _types(step.activity)
        if types is None:
            continue
        try:
            given = (await client.data_converter.decode(step.input, [types[0]]))[0]
            result = (await client.data_converter.decode(step.result, [types[1]]))[0] if step.result else None
        except Exception as error:  # noqa: BLE001 - reported with the step; its rows show as differences
            outcome.failures.append(_failure(step, error))
            continue
        out.append((step, given, result))
    return out


def _failure(step: Completed, error: Exception) -> str:
    return f"{step.workflow_id} {step.activity} (event {step.event_id}): {type(error).__name__}: {error}"


class _Replayer:
    def __init__(self, fresh: Engine, deadlines: Deadlines, secrets: dict[tuple[str, int], dict]) -> None:
        self._fresh, self._secrets = fresh, secrets
        notifier = Notifier(fresh, _Unsent())
        instances = {DrawActivities: DrawActivities(fresh),
                     TargetActivities: TargetActivities(fresh, deadlines, notifier),
                     HandoffActivities: HandoffActivities(fresh, deadlines, notifier),
                     PlanActivities: PlanActivities(fresh)}
        self._rerun = {name: getattr(instances[holder], name) for holder, names in RERUN.items() for name in names}

    def replay(self, step: Completed, given: Any, result: Any) -> None:
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, workflow_id=step.workflow_id,
                                               activity_type=step.activity)
        live = self._secrets.get((given.task_id, given.draw_seq), {}) if step.activity in DRAW_STEPS else {}
        with _clock(self._when(step, result, live)), _secret(live.get(DRAW_STEPS.get(step.activity) or "")):
            rebuilt = environment.run(self._rerun[step.activity], given)
        if step.activity == "announce" and live.get("population_stored"):
            keep_stored_population(self._fresh, given.task_id, given.draw_seq)
        if step.activity in DRAW_STEPS and rebuilt != result:
            raise ValueError(f"the rebuilt result {rebuilt!r} is not the history's {result!r}")

    @staticmethod
    def _when(step: Completed, result: Any, live: dict) -> datetime:
        """The instant the step's writes saw: the freeze's is in its result, the draw's in the live row only."""
        if step.activity == "freeze":
            return result.frozen_at
        if step.activity == "draw" and live.get("drawn_at"):
            return live["drawn_at"]
        return step.ran


@contextmanager
def _secret(hex_value: str | None) -> Iterator[None]:
    """The draw activities' `secrets.token_bytes` gives the live draw's secret (a nonce, a salt) when there is one."""
    if not hex_value:
        yield
        return
    with mock.patch.object(activities.draws, "secrets", SimpleNamespace(token_bytes=lambda n: bytes.fromhex(hex_value))):
        yield


@contextmanager
def _clock(at: datetime) -> Iterator[None]:
    """The activities' `datetime.now()` answers `at`: when the replayed step ran."""

    class Pinned(datetime):
        @classmethod
        def now(cls, tz=None):
            return at.astimezone(tz) if tz is not None else at.replace(tzinfo=None)

    with ExitStack() as stack:
        for module in CLOCKED:
            stack.enter_context(mock.patch.object(module, "datetime", Pinned))
        yield


def _replay_and_compare(live: Engine, deadlines: Deadlines, steps: list[tuple[Completed, Any, Any]],
                        plan_codes: list[str], task_ids: list[str], outcome: Rebuild) -> None:
    with fresh_schema(live) as fresh:
        replayer = _Replayer(fresh, deadlines, draw_secrets(live, task_ids))
        unsettled = _undetermined(steps)
        for step, given, result in steps:
            try:
                replayer.replay(step, given, result)
            except Exception as error:  # noqa: BLE001 - one failed replay is reported; its rows show as differences
                outcome.failures.append(_failure(step, error))
            outcome.replayed += 1
        for name, key in KEYS.items():
            table = schema.metadata.tables[name]
            left_out = {LEFT_OUT[name][0]: LEFT_OUT[name][1]} if name in LEFT_OUT else None
            was, now = (scoped_rows(engine, table, plan_codes, task_ids, outcome.workflow_ids, left_out)
                        for engine in (live, fresh))
            outcome.rows[name] = len(was)
            for difference in compare(name, key, EXCLUDED[name], was, now, PRESENCE.get(name, {})):
                settled = difference.column not in unsettled.get((name, tuple(difference.key.values())), ())
                (outcome.differences if settled else outcome.undetermined).append(difference)


def _undetermined(steps: list[tuple[Completed, Any, Any]]) -> dict[tuple[str, tuple], set[str]]:
    """(table, key) -> columns the histories cannot settle: whether a result was published on time when its due
    fell while publish_result ran. Its rows are written by whichever attempt committed first, at an instant
    between the scheduling and the completion that no event records (a worker killed after the commit
    leaves a retry; one killed before it leaves a later attempt to write them)."""
    out: dict[tuple[str, tuple], set[str]] = {}
    for step, given, _ in steps:
        if step.activity == "publish_result" and given.due_at is not None \
                and step.scheduled <= given.due_at <= step.completed:
            out[("publications", (step.workflow_id, "publish-result"))] = {"on_time"}
            out[("targets", (given.task_id, given.uscc))] = {"overdue"}
    return out


def compare(table: str, key: tuple[str, ...], excluded: dict[str, str], live: list[dict],
            rebuilt: list[dict], presence: Collection[str] = ()) -> list[Difference]:
    """Every difference between two sets of rows of a table, by key: a row on one side only, or a column
    (those in `presence` compared as present or not)."""
    def shown(row: dict) -> dict:
        return {c: (v is not None if c in presence else v) for c, v in row.items()}

    was = {tuple(r[k] for k in key): shown(r) for r in live}
    now = {tuple(r[k] for k in key): shown(r) for r in rebuilt}
    out = []
    for k in sorted(was.keys() | now.keys(), key=lambda k: tuple(str(v) for v in k)):
        named = dict(zip(key, k))
        if k not in now:
            out.append(Difference(table, named, "*", "present", "missing"))
        elif k not in was:
            out.append(Difference(table, named, "*", "missing", "present"))
        else:
            out += [Difference(table, named, column, was[k][column], now[k][column])
                    for column in was[k] if column not in excluded and was[k][column] != now[k][column]]
    return out


def _shown(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (datetime, date)) else value
