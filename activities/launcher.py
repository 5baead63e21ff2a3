"""The launcher's activity: the stored plan template becomes the plan of the scheduled year.

Templates are stored by `spotcheck plan schedule --file` in the project database (table
plan_templates), so the worker that runs this activity needs only the database, not the data dir
of the command line that stored the template.
"""
from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.common import no_retry_cures
from db.engine import Engine
from domain.launch import plan_bytes_for_year, plan_code_for_year
from domain.messages.launcher import LoadedPlan, TemplateLoad
from domain.plan import PlanInvalid
from domain.plan_file import parse_plan
from store import plans


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="PlanInvalid", non_retryable=True)


class LauncherActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    @no_retry_cures
    def load_plan_template(self, step: TemplateLoad) -> LoadedPlan:
        """Store the year's plan from the template (idempotent: a retry or a second run finds it stored)."""
        raw = plans.stored_template(self._engine, step.template)
        if raw is None:
            raise ApplicationError(
                f"plan template {step.template} not found in the database; store it with "
                f"`spotcheck plan schedule --file {step.template}.json` (a template is named after its file)",
                type="NotFound", non_retryable=True)
        try:
            template = parse_plan(raw, f"template {step.template}")
        except PlanInvalid as error:
            raise invalid(str(error)) from None
        source = f"template {step.template} for {step.year}"
        try:
            plan, created = plans.load_plan(self._engine, plan_bytes_for_year(raw, step.year), source)
        except plans.PlanConflict:
            # That year's plan was loaded by hand (`plan start`) with other content: it is the plan
            # of the year; the template does not replace it, and its workflow is not started twice.
            code = plan_code_for_year(template.plan_code, template.year, step.year)
            tasks = plans.planned_task_count(self._engine, code)
            activity.logger.warning("plan %s already loaded with other content than template %s; keeping it",
                                    code, step.template)
            return LoadedPlan(plan_code=code, year=step.year, tasks=tasks, created=False,
                              template_differs=True)
        except PlanInvalid as error:
            raise invalid(str(error)) from None
        return LoadedPlan(plan_code=plan.plan_code, year=plan.year, tasks=len(plan.tasks), created=created)
