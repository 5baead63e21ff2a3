"""The yearly launch (Schedule "annual-plan"): the stored template becomes the year's plan, started once.

The year is the scheduled time's year in Asia/Shanghai (the `TemporalScheduledStartTime` search
attribute a Schedule sets on each run; a run started by hand falls back to its start time), so a
run caught up late, or backfilled, still launches the year it was scheduled for. The plan is a
child with the deterministic id `plan/{plan_code}`, REJECT_DUPLICATE and ABANDON: a manual
`plan start` of the same year and the Schedule can never both start it, and the plan outlives
this short workflow.
"""
from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from activities.launcher import LauncherActivities
    from domain.messages.launcher import LaunchInput, LaunchOutcome, LoadedPlan, TemplateLoad
    from domain.messages.plan import PlanRun
    from domain.workdays import SHANGHAI
    from workflows.common import LIGHT, plan_workflow_id
    from workflows.plan import AnnualPlanWorkflow

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn
class PlanLauncherWorkflow:
    @workflow.run
    async def run(self, launch: LaunchInput) -> LaunchOutcome:
        scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START) or workflow.now()
        year = scheduled.astimezone(SHANGHAI).year
        loaded: LoadedPlan = await workflow.execute_activity_method(
            LauncherActivities.load_plan_template, TemplateLoad(template=launch.template, year=year), **LIGHT)
        try:
            await workflow.start_child_workflow(
                AnnualPlanWorkflow.run,
                PlanRun(plan_code=loaded.plan_code),
                id=plan_workflow_id(loaded.plan_code),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"annual plan {loaded.plan_code} ({year})",
            )
            started = True
        except WorkflowAlreadyStartedError:
            started = False  # already there: started by hand, or by an earlier run of the Schedule
            workflow.logger.info("plan %s already started; not started twice", loaded.plan_code)
        return LaunchOutcome(template=launch.template, year=year, plan_code=loaded.plan_code,
                             plan_started=started, plan_created=loaded.created)
