"""The template → year's plan transformation of the yearly launch (domain/launch.py)."""
from __future__ import annotations

import json

import pytest

from domain.launch import plan_bytes_for_year, plan_code_for_year, plan_for_year, task_id_for_year

from domain.messages.launcher import LaunchInput
from domain.plan_file import parse_plan
from runtime.examples import EXAMPLES


def template(code="JDZ-2025", year=2025, task_ids=("JDZ-2025-0001",), starts="2025-04-01", ends="2026-01-15"):
    tasks = [{"task_id": t, "task_code": f"景市监抽查〔{year}〕{n}号", "name": f"{year}年企业公示信息双随机抽查",
              "starts": starts, "ends": ends} for n, t in enumerate(task_ids, 1)]
    return {"plan_code": code, "year": year, "owner_unit": "360200-SCJ", "tasks": tasks}


def test_year_in_the_code_is_replaced():
    plan = plan_for_year(template(), 2027)
    assert plan["plan_code"] == "JDZ-2027" and plan["year"] == 2027
    [task] = plan["tasks"]
    assert task["task_id"] == "JDZ-2027-0001"
    assert task["task_code"] == "景市监抽查〔2027〕1号" and task["name"].startswith("2027年")
    assert (task["starts"], task["ends"]) == ("2027-04-01", "2028-01-15")  # a window may end in the next year


def test_code_without_a_year_gets_it():
    assert plan_code_for_year("JDZ-DEMO", 2025, 2027) == "JDZ-DEMO-2027"
    assert task_id_for_year("JDZ-DEMO-0001", "JDZ-DEMO", "JDZ-DEMO-2027", 2025, 2027) == "JDZ-DEMO-2027-0001"
    assert task_id_for_year("OTHER-1", "JDZ-DEMO", "JDZ-DEMO-2027", 2025, 2027) == "OTHER-1-2027"
    # Digits that merely contain the year are not the year.
    assert plan_code_for_year("X-20250", 2025, 2027) == "X-20250-2027"


def test_29_february_becomes_the_28th():
    plan = plan_for_year(template(year=2028, code="P-2028", task_ids=("P-2028-1",), starts="2028-02-29",
                                  ends="2028-03-31"), 2027)
    assert plan["tasks"][0]["starts"] == "2027-02-28"


def test_same_year_keeps_dates_and_is_deterministic():
    once = plan_for_year(template(), 2025)
    assert once == plan_for_year(template(), 2025)
    assert once["plan_code"] == "JDZ-2025" and once["tasks"][0]["starts"] == "2025-04-01"


def test_shipped_template_makes_a_valid_plan():
    raw = (EXAMPLES / "plan-template.json").read_bytes()
    plan = parse_plan(plan_bytes_for_year(raw, 2031), "template")
    assert plan.plan_code == "JDZ-DEMO-2031" and plan.year == 2031
    assert [t.task_id for t in plan.tasks] == ["JDZ-DEMO-2031-0001", "JDZ-DEMO-2031-0002", "JDZ-DEMO-2031-0003"]
    assert all(t.starts.year == 2031 for t in plan.tasks)
    assert json.loads(raw)["plan_code"] == "JDZ-DEMO"  # the template itself is untouched


@pytest.mark.parametrize("name", ["../etc", ".hidden", "a/b", "", "x" * 65])
def test_template_names_are_file_names(name):
    with pytest.raises(ValueError):
        LaunchInput(template=name)
