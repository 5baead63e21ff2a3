"""The launcher's activity: the stored plan template becomes the plan of the scheduled year.

Templates are stored by `spotcheck plan schedule` as `DATA_DIR/templates/NAME.json` (until the
project database has a table for them), so the worker that runs this activity must see the same
data dir as the command line that stored the template.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.store import not_found
from db import schema
from domain.launch import LoadedPlan, TemplateLoad, plan_bytes_for_year, plan_code_for_year, valid_template_name
from domain.plan import PlanInvalid, parse_plan
from runtime.plans import PlanConflict, load_plan

TEMPLATES = "templates"


def templates_dir(data_dir: Path) -> Path:
    return data_dir / TEMPLATES


def template_path(directory: Path, name: str) -> Path:
    if not valid_template_name(name):
        raise ValueError(f"template name {name!r}: use 1-64 of A-Z a-z 0-9 . _ - (not starting with a dot)")
    return directory / f"{name}.json"


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="PlanInvalid", non_retryable=True)


class LauncherActivities:
    def __init__(self, engine: Engine, templates: Path | None = None) -> None:
        self._engine = engine
        self._templates = templates

    def _directory(self) -> Path:
        if self._templates is not None:
            return self._templates
        from runtime import config  # the worker's data dir, read when first needed

        return templates_dir(config.load().data_dir)

    @activity.defn
    def load_plan_template(self, step: TemplateLoad) -> LoadedPlan:
        """Store the year's plan from the template (idempotent: a retry or a second run finds it stored)."""
        path = template_path(self._directory(), step.template)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise not_found(f"plan template {step.template} ({path}; store it with `spotcheck plan schedule --file`)")
        try:
            template = parse_plan(raw, str(path))
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
