"""The yearly launch of the annual plan from a stored template (pure: no I/O).

The Schedule "annual-plan" starts `PlanLauncherWorkflow` once a year; the launcher turns the
stored template into that year's plan: every date moved into the year, the year in the plan
code and the task ids (`JDZ-2025` → `JDZ-2027`; a code without the template's year gets it
appended: `JDZ-DEMO` → `JDZ-DEMO-2027`, its tasks `JDZ-DEMO-0001` → `JDZ-DEMO-2027-0001`).
Derived codes are deterministic, so a manual `plan start` of the same year uses the same
workflow id (`plan/{plan_code}`) and the two can never both run.
"""
from __future__ import annotations

import calendar
import json
import re
from datetime import date
from typing import Any

from domain.messages.launcher import TEMPLATE_NAME

_TEMPLATE_NAME = re.compile(TEMPLATE_NAME)


def valid_template_name(name: str) -> bool:
    return bool(_TEMPLATE_NAME.match(name))


def _year_token(year: int) -> re.Pattern[str]:
    return re.compile(rf"(?<!\d){year}(?!\d)")


def _move_date(text: str, delta: int) -> str:
    day = date.fromisoformat(text)
    year = day.year + delta
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1])).isoformat()


def plan_code_for_year(code: str, template_year: int, year: int) -> str:
    token = _year_token(template_year)
    return token.sub(str(year), code) if token.search(code) else f"{code}-{year}"


def task_id_for_year(task_id: str, template_code: str, plan_code: str, template_year: int, year: int) -> str:
    token = _year_token(template_year)
    if token.search(task_id):
        return token.sub(str(year), task_id)
    if task_id.startswith(template_code):
        return plan_code + task_id[len(template_code):]
    return f"{task_id}-{year}"


def plan_for_year(template: dict[str, Any], year: int) -> dict[str, Any]:
    """The template (a parsed plan file) as the plan of `year`.

    Dates move by whole years (29 February becomes the 28th); the years in the codes, the task
    numbers and names follow (`景市监抽查〔2025〕1号` → `〔2027〕`). Everything else is kept.
    """
    template_year = int(template["year"])
    delta = year - template_year
    token = _year_token(template_year)
    code = plan_code_for_year(template["plan_code"], template_year, year)
    tasks = []
    for task in template["tasks"]:
        moved = dict(task)
        moved["task_id"] = task_id_for_year(task["task_id"], template["plan_code"], code, template_year, year)
        for field in ("task_code", "name"):
            if isinstance(task.get(field), str):
                moved[field] = token.sub(str(year), task[field])
        for field in ("starts", "ends"):
            moved[field] = _move_date(task[field], delta)
        tasks.append(moved)
    return {**template, "plan_code": code, "year": year, "tasks": tasks}


def plan_bytes_for_year(raw: bytes, year: int) -> bytes:
    """`plan_for_year` on a template file's content (already validated with `parse_plan`)."""
    template = json.loads(raw.decode("utf-8").removeprefix("\ufeff"))
    return json.dumps(plan_for_year(template, year), ensure_ascii=False, indent=2).encode()
