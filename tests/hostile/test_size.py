"""Sizes (issue 13): no number or size of inputs grows a workflow's query past Temporal's 2 MB; every cap is named."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pydantic
import pytest
from temporalio import workflow

from domain.messages.target import KEPT_SIGNALS, CheckRecord, FieldSignal, ManualAssignment, ResultEntry, TargetRun
from workflows.target import TargetInspectionWorkflow

DIGEST = "0" * 64


def test_field_signals_keep_the_status_query_small(monkeypatch):
    """Twenty 120 KB signals once pushed `status` past 2 MB; now ids are 32 characters and only the last few are kept."""
    monkeypatch.setattr(workflow, "now", lambda: datetime(2026, 5, 1, tzinfo=timezone.utc))
    monkeypatch.setattr(workflow, "logger", logging.getLogger("target"))  # outside a workflow's event loop
    target = TargetInspectionWorkflow(TargetRun(task_id="T-1", uscc="91360202MA04A8FU86", plan_code="P", plan_year=2026))
    for n in range(5000):
        target.field_signal(FieldSignal(kind="arrive", inspector=f"{'I' * 28}{n:04d}"))
    status = target.status()
    assert status.field_signal_count == 5000 and len(status.field_signals) == KEPT_SIGNALS
    assert status.field_signals[-1].endswith("I" * 28 + "4999")
    assert len(status.model_dump_json()) < 10_000


@pytest.mark.parametrize("build, cap", [
    (lambda: ResultEntry(inspector="I1", category="other", note="x" * 120_000), "note is 120000 characters; the cap is 2000"),
    (lambda: ResultEntry(inspector="I1", category="no_issue", findings={f"P{n}": "pass" for n in range(201)}),
     "findings are 201; the cap is 200"),
    (lambda: ResultEntry(inspector="I1", category="no_issue", findings={"P" * 101: "pass"}),
     "check point is 101 characters; the cap is 100"),
    (lambda: CheckRecord(inspectors=["I1", "I2"], method="document",
                         evidence=[f"https://files/a{n}.jpg#{DIGEST}" for n in range(51)]),
     "evidence names 51 files; the cap is 50"),
    (lambda: CheckRecord(inspectors=["I1", "I2"], method="m" * 101), "method is 101 characters; the cap is 100"),
    (lambda: ManualAssignment(unit="U", inspectors=["I1", "I2"], by="S1", reason="r" * 120_000),
     "reason is 120000 characters; the cap is 500"),
])
def test_a_text_or_list_over_its_cap_is_refused_naming_the_cap(build, cap):
    with pytest.raises(pydantic.ValidationError, match=cap):
        build()


def test_a_huge_decision_number_is_refused_naming_the_cap(main):
    from tests.hostile.conftest import one_sentence

    code, out, err = main("case", "link", "no-such-lead", "D" * 100_000)
    one_sentence(code, out, err, 2, "no-such-lead")  # the lead first: it does not exist


def test_a_plan_over_the_task_cap_is_refused_at_the_door(main, home):
    """100,000 tasks were accepted and publish_plan then retried for ever (PayloadsTooLarge)."""
    import json

    from tests.hostile.conftest import ROOT

    plan = json.loads((ROOT / "examples" / "plan-template.json").read_text())
    task = plan["tasks"][0]
    plan["tasks"] = [{**task, "task_id": f"BIG-{n:05d}"} for n in range(2001)]
    path = home / "big.json"
    path.write_text(json.dumps(plan, ensure_ascii=False))
    code, out, err = main("plan", "start", str(path), "--allow-past")
    assert code == 2 and out == "" and "Traceback" not in err
    assert "2001" in err and "2000" in err, err[:500]
