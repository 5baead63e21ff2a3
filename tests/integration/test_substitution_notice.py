"""A supervisor's substitution tells the people it concerns (`TargetActivities.record_team`).

A target's team is told of the target once (the notice `notify-team`). A unit's team substituted after that
tells the inspectors who join that they are on it and those who leave that they no longer are, in the
assignment's own transaction, delivered once: a retry after the commit delivers what the first attempt wrote
and writes nothing more. A team not yet told (an unstaffed unit staffed) gets no notice here: the workflow
tells the whole team once every unit is staffed.
"""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, select
from temporalio.testing import ActivityEnvironment

from activities.handoff import Notifier
from activities.targets import TargetActivities
from db import schema
from domain import alert_texts
from domain.messages.target import ManualAssignment, TargetStep
from store import targets as targets_store

ENGINES = ["sqlite_engine", pytest.param("fresh_pg_engine", marks=pytest.mark.postgres)]
NOW = datetime(2026, 5, 11, 2, 0, tzinfo=timezone.utc)
UNIT = "360202-SCJ"
USCC = "91360202MA0000001X"


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue(request.param)


class Receiver:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def send(self, key: str, kind: str, payload: dict) -> None:
        self.sent.append((key, payload))


def seed_target(engine, team: list[str], told: bool) -> tuple[str, str]:
    """A target whose unit's team is `team` (from the draw), told of it if `told`; its task id and workflow id."""
    code = f"SUB-{uuid.uuid4().hex[:6]}"
    task_id, workflow = f"{code}-T1", f"target/{code}-T1/{USCC}"
    with engine.begin() as c:
        c.execute(insert(schema.plans).values(plan_code=code, year=2026, owner_unit=UNIT, document="{}",
                                              document_sha256="0" * 64, loaded_at=NOW))
        c.execute(insert(schema.plan_tasks).values(task_id=task_id, plan_code=code, document="{}", origin="plan"))
        c.execute(insert(schema.targets).values(task_id=task_id, uscc=USCC, workflow_id=workflow, kind="random",
                                                stage="dispatched", overdue=False, updated_at=NOW))
        c.execute(insert(schema.teams).values(task_id=task_id, uscc=USCC, unit_code=UNIT, inspectors=";".join(team),
                                              source="draw", at=NOW, workflow_id=f"task/{task_id}", step="dispatch"))
        if told:
            targets_store.record_alert(c, workflow_id=workflow, step="notify-team", kind="notice", task_id=task_id,
                                       uscc=USCC, at=NOW, details=alert_texts.TEAM_TOLD)
    return task_id, workflow


def substitute(engine, receiver: Receiver, task_id: str, workflow: str, inspectors: list[str], step: str) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(ActivityEnvironment.default_info(), workflow_id=workflow)
    activities = TargetActivities(engine, deadlines=None, notifier=Notifier(engine, receiver))
    env.run(activities.record_team, TargetStep(
        task_id=task_id, uscc=USCC, step=step, at=NOW,
        assignment=ManualAssignment(unit=UNIT, inspectors=inspectors, by="S001", reason="inspector on leave")))


def notices(engine, task_id: str) -> list[tuple[str, str]]:
    a = schema.alerts
    with engine.connect() as c:
        return sorted(c.execute(select(a.c.step, a.c.kind).where(a.c.task_id == task_id)).all())


def test_a_substitution_tells_who_joins_and_who_leaves_once(engine):
    receiver = Receiver()
    task_id, workflow = seed_target(engine, ["I001", "I002"], told=True)
    substitute(engine, receiver, task_id, workflow, ["I001", "I003"], "assign-1")
    assert [(key, payload["to"], payload["kind"]) for key, payload in receiver.sent] == [
        (f"{workflow}/notify-team-assign-1", ["I003"], "notice"),
        (f"{workflow}/notify-team-assign-1-off", ["I002"], "notice"),
    ]
    assert [payload["text"] for _, payload in receiver.sent] == [alert_texts.TEAM_JOINED, alert_texts.TEAM_LEFT]
    assert notices(engine, task_id) == [("notify-team", "notice"), ("notify-team-assign-1", "notice"),
                                        ("notify-team-assign-1-off", "notice")]

    # The activity retried after its commit (its completion lost): nothing written or sent again.
    substitute(engine, receiver, task_id, workflow, ["I001", "I003"], "assign-1")
    assert len(receiver.sent) == 2 and len(notices(engine, task_id)) == 3

    # A second substitution is its own notice; the same team again tells nobody.
    substitute(engine, receiver, task_id, workflow, ["I004", "I003"], "assign-2")
    assert [payload["to"] for _, payload in receiver.sent[2:]] == [["I004"], ["I001"]]
    substitute(engine, receiver, task_id, workflow, ["I003", "I004"], "assign-3")
    assert len(receiver.sent) == 4 and len(notices(engine, task_id)) == 5


def test_a_notice_written_but_not_sent_is_sent_by_the_retry(engine):
    class Down(Receiver):
        def send(self, key: str, kind: str, payload: dict) -> None:
            raise ConnectionError("the notification gateway is down")

    task_id, workflow = seed_target(engine, ["I001", "I002"], told=True)
    with pytest.raises(ConnectionError):
        substitute(engine, Down(), task_id, workflow, ["I001", "I003"], "assign-1")
    receiver = Receiver()
    substitute(engine, receiver, task_id, workflow, ["I001", "I003"], "assign-1")
    assert [payload["to"] for _, payload in receiver.sent] == [["I003"], ["I002"]]


def test_a_team_not_yet_told_gets_no_substitution_notice(engine):
    receiver = Receiver()
    task_id, workflow = seed_target(engine, ["I001", "I002"], told=False)
    substitute(engine, receiver, task_id, workflow, ["I001", "I003"], "assign-1")
    assert receiver.sent == [] and notices(engine, task_id) == []
    with engine.connect() as c:
        assert targets_store.current_teams(c, task_id, USCC)[0][0].inspectors == ["I001", "I003"]
