"""The task counts its closed targets in the projection; only the last one to close signals it.

`TargetActivities.finish` decides "last": finishes of one task running at the same moment must leave
exactly one of them seeing no target open (none: the task would wait for ever; two: a harmless extra
signal). `DrawActivities.cancel_unstarted` closes what a cancelled task never started.
"""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, select

from activities.draws import DrawActivities
from activities.targets import TargetActivities
from db import schema
from domain.messages.target import TargetStep
from domain.messages.task import TargetCounts, TaskTargets
from domain.stages import Stage

ENGINES = ["sqlite_engine", pytest.param("fresh_pg_engine", marks=pytest.mark.postgres)]
NOW = datetime(2026, 5, 11, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue(request.param)


def seed_task(engine, stages: list[str]) -> tuple[str, list[str]]:
    """A plan task with one target row per stage given; its id and the targets' USCCs in order."""
    code = f"CNT-{uuid.uuid4().hex[:6]}"
    task_id = f"{code}-T1"
    usccs = [f"91360202MA{n:07d}X" for n in range(len(stages))]
    with engine.begin() as c:
        c.execute(insert(schema.plans).values(plan_code=code, year=2026, owner_unit="360202-SCJ", document="{}",
                                              document_sha256="0" * 64, loaded_at=NOW))
        c.execute(insert(schema.plan_tasks).values(task_id=task_id, plan_code=code, document="{}", origin="plan"))
        c.execute(insert(schema.targets), [
            dict(task_id=task_id, uscc=u, workflow_id=f"target/{task_id}/{u}", kind="random", stage=stage,
                 overdue=False, updated_at=NOW) for u, stage in zip(usccs, stages)])
    return task_id, usccs


def stages_of(engine, task_id: str) -> dict[str, str]:
    t = schema.targets
    with engine.connect() as c:
        return dict(c.execute(select(t.c.uscc, t.c.stage).where(t.c.task_id == task_id)).all())


@pytest.mark.parametrize("round_", range(5))
def test_of_targets_finishing_at_once_exactly_one_is_the_last(engine, round_):
    task_id, usccs = seed_task(engine, ["approved"] * 8)
    activities = TargetActivities(engine, deadlines=None, notifier=None)
    start = threading.Barrier(len(usccs))

    def finish(uscc: str) -> bool:
        start.wait()  # all at once: the finishes overlap in the database
        stage = Stage.CLOSED if int(uscc[10:17]) % 2 else Stage.CANCELLED
        return activities.finish(TargetStep(task_id=task_id, uscc=uscc, step=stage.value, at=NOW, stage=stage))

    with ThreadPoolExecutor(len(usccs)) as pool:
        answers = list(pool.map(finish, usccs))
    assert answers.count(True) == 1, answers
    assert set(stages_of(engine, task_id).values()) == {"closed", "cancelled"}
    # A retry of the last one (its result lost with a worker) answers the same; so would any retry now.
    last = usccs[answers.index(True)]
    stage = Stage(stages_of(engine, task_id)[last])
    assert activities.finish(TargetStep(task_id=task_id, uscc=last, step=stage.value, at=NOW, stage=stage))


def test_the_count_and_the_unstarted_targets_of_a_cancelled_task(engine):
    task_id, usccs = seed_task(engine, ["closed", "checked", "dispatched", "drawn", "drawn"])
    draws = DrawActivities(engine)
    assert draws.finished_targets(TaskTargets(task_id=task_id)) == TargetCounts(finished=1, total=5)

    # Started up to the third (the cursor); the fourth and fifth never had a workflow.
    draws.cancel_unstarted(TaskTargets(task_id=task_id, after=usccs[2], at=NOW))
    assert stages_of(engine, task_id) == {usccs[0]: "closed", usccs[1]: "checked", usccs[2]: "dispatched",
                                          usccs[3]: "cancelled", usccs[4]: "cancelled"}
    assert draws.finished_targets(TaskTargets(task_id=task_id)) == TargetCounts(finished=3, total=5)

    # The started ones close on their own; the one to close last is told so.
    targets = TargetActivities(engine, deadlines=None, notifier=None)
    step = lambda uscc, stage: TargetStep(task_id=task_id, uscc=uscc, step=stage.value, at=NOW, stage=stage)  # noqa: E731
    assert targets.finish(step(usccs[1], Stage.CANCELLED)) is False
    assert targets.finish(step(usccs[2], Stage.CANCELLED)) is True
    assert draws.finished_targets(TaskTargets(task_id=task_id)) == TargetCounts(finished=5, total=5)

    # A task started nothing: every target cancelled; another task's rows untouched.
    other, _ = seed_task(engine, ["drawn", "closed"])
    draws.cancel_unstarted(TaskTargets(task_id=other, at=NOW))
    assert sorted(stages_of(engine, other).values()) == ["cancelled", "closed"]
    assert draws.finished_targets(TaskTargets(task_id=task_id)) == TargetCounts(finished=5, total=5)
