"""The yearly launcher workflow's messages (PlanLauncherWorkflow, started by the Schedule annual-plan)."""
from __future__ import annotations

from pydantic import Field

from domain.messages.base import Record

TEMPLATE_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"  # a template name in the plan_templates table, never a path


class LaunchInput(Record):
    """The Schedule's argument: which stored template becomes each year's plan."""

    template: str = Field(pattern=TEMPLATE_NAME)


class TemplateLoad(Record):
    template: str
    year: int


class LoadedPlan(Record):
    plan_code: str
    year: int
    tasks: int
    created: bool  # False: the year's plan was stored before (an earlier run, or a manual `plan start`)
    template_differs: bool = False  # the stored plan of that code is not the template's (loaded by hand)


class LaunchOutcome(Record):
    template: str
    year: int
    plan_code: str
    plan_started: bool  # False: plan/{plan_code} was already there (a manual start, or an earlier run)
    plan_created: bool
