"""The launcher's activity: the stored plan template becomes the plan of the scheduled year.

Templates are stored by `spotcheck plan schedule --file` in the project database (table
plan_templates), so the worker that runs this activity needs only the database, not the data dir
of the command line that stored the template.
"""
from __future__ import annotations

from sqlalchemy import Connection, Engine, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import schema
from domain.launch import LoadedPlan, TemplateLoad, plan_bytes_for_year, plan_code_for_year
from domain.plan import PlanInvalid, parse_plan
from runtime.plans import PlanConflict, load_plan


def stored_template(connection: Connection, name: str) -> bytes | None:
    """The template file stored as NAME, byte for byte; None when there is none."""
    document = connection.execute(select(schema.plan_templates.c.document).where(
        schema.plan_templates.c.name == name)).scalar_one_or_none()
    return None if document is None else document.encode("utf-8")


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="PlanInvalid", non_retryable=True)


class LauncherActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def load_plan_template(self, step: TemplateLoad) -> LoadedPlan:
        """Store the year's plan from the template (idempotent: a retry or a second run finds it stored)."""
        with self._engine.connect() as connection:
            raw = stored_template(connection, step.template)
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
            plan, created = load_plan(self._engine, plan_bytes_for_year(raw, step.year), source)
        except PlanConflict:
            # That year's plan was loaded by hand (`plan start`) with other content: it is the plan
            # of the year; the template does not replace it, and its workflow is not started twice.
            code = plan_code_for_year(template.plan_code, template.year, step.year)
            with self._engine.connect() as connection:
                tasks = connection.execute(select(schema.plan_tasks.c.task_id).where(
                    schema.plan_tasks.c.plan_code == code, schema.plan_tasks.c.origin == "plan")).all()
            activity.logger.warning("plan %s already loaded with other content than template %s; keeping it",
                                    code, step.template)
            return LoadedPlan(plan_code=code, year=step.year, tasks=len(tasks), created=False,
                              template_differs=True)
        except PlanInvalid as error:
            raise invalid(str(error)) from None
        return LoadedPlan(plan_code=plan.plan_code, year=plan.year, tasks=len(plan.tasks), created=created)
