"""Accepted, then failing later (issue 13): what a retry cannot cure fails its step at once, with an alert;
what would fail later is refused at the door."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from pydantic import BaseModel
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.common import PAYLOAD_BUDGET, no_retry_cures
from db import schema
from db.engine import make_engine, migrate
from domain.messages.task import EntropyEntry, TaskRun
from domain.results import Refused
from domain.stages import Stage
from store.targets import record_alert
from tests.hostile.conftest import ROOT
from workflows.task import InspectionTaskWorkflow


class Step(BaseModel):
    task_id: str
    uscc: str | None = None
    step: str


class Steps:
    """Two activities as the project's are written (`self._engine`), each failing the way no retry cures."""

    def __init__(self, engine) -> None:
        self._engine = engine

    @no_retry_cures
    def refused_row(self, step: Step) -> None:
        with self._engine.begin() as connection:  # kind is NOT NULL: the database refuses the row every time
            record_alert(connection, workflow_id="w", step=step.step, kind=None, task_id=step.task_id, uscc=None,
                         at=datetime.now(timezone.utc), details="x")

    @no_retry_cures
    def huge_result(self, step: Step) -> Step:
        return Step(task_id=step.task_id, step="x" * (PAYLOAD_BUDGET + 1))


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("method, kind", [("refused_row", "Unstorable"), ("huge_result", "PayloadTooLarge")])
async def test_a_failure_no_retry_cures_is_non_retryable_and_alerts(engine, method, kind):
    steps = Steps(engine)
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(getattr(steps, method), Step(task_id="T-1", step="result"))
    assert failed.value.non_retryable and failed.value.type == kind
    with engine.connect() as connection:
        alerts = connection.execute(select(schema.alerts)).mappings().all()
    assert [(a["kind"], a["step"], a["task_id"]) for a in alerts] == [("failure", "failed-result", "T-1")]
    assert "is not retried" in alerts[0]["details"]


def _entropy_validator(stage: Stage):
    task = InspectionTaskWorkflow(TaskRun(task_id="T-1", plan_code="P", plan_year=2026, unit="U"))
    task._progress = task._progress.model_copy(update={"stage": stage})
    return task._validate_entropy


@pytest.mark.parametrize("value, why", [("", "empty"), (" 123", "starts or ends with a space")])
def test_the_entropy_validator_refuses_an_empty_or_padded_value(value, why):
    with pytest.raises(Refused, match=why):
        _entropy_validator(Stage.AWAITING_ENTROPY)(EntropyEntry(value=value))
    _entropy_validator(Stage.AWAITING_ENTROPY)(EntropyEntry(value="123"))  # the next valid value is taken


def _plan(home, **task_change) -> str:
    plan = json.loads((ROOT / "examples" / "plan-template.json").read_text())
    plan["tasks"] = [{**plan["tasks"][0], **task_change}]
    path = home / "plan.json"
    path.write_text(json.dumps(plan, ensure_ascii=False))
    return str(path)


def test_a_window_in_the_past_is_refused_unless_allowed(main, home):
    path = _plan(home, starts="2025-04-01", ends="2025-05-01")
    assert date.today() > date(2025, 5, 1)
    code, out, err = main("plan", "start", path)
    assert code == 2 and "wholly in the past" in err and "Traceback" not in err, err
    code, out, err = main("plan", "start", path, "--allow-past")  # then Temporal is needed: unreachable here
    assert "wholly in the past" not in err and "cannot reach Temporal" in err, err


def test_a_stratum_without_a_ratio_is_refused_at_the_door(main, home):
    task = json.loads((ROOT / "examples" / "plan-template.json").read_text())["tasks"][0]
    path = _plan(home, ratios={k: v for k, v in task["ratios"].items() if k != "U"})
    code, out, err = main("plan", "start", path, "--allow-past")
    assert code == 2 and "U" in err and "ratio" in err and "Traceback" not in err, err
