"""`spotcheck task list`: which tasks match, from Temporal's visibility store (the search attributes
the workflows upsert at each stage change), with each task's live stage; the counts per target stage
come from the projection (read.tasks.task_rows).

A task is listed when its own workflow or one of its targets' workflows matches every filter given:
`--stage entered` lists the tasks with a result waiting for review, `--overdue` those with a target past
a deadline, `--region` those with a target in that district. The filters are the queries the README
gives for the Web UI and `temporal workflow list --query`, so the three views agree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from temporalio.client import Client

from domain.stages import Stage
from workflows.common import OVERDUE, PLAN_YEAR, REGION, STAGE, TASK_ID, UNIT

TASK_TYPE = "InspectionTaskWorkflow"
TARGET_TYPE = "TargetInspectionWorkflow"
_CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.\-]*")  # unit and region codes: nothing a query must quote
# The runs a workflow continued as new from are closed copies with their last attributes.
CURRENT_RUN = "ExecutionStatus != 'ContinuedAsNew'"
_IDS_PER_QUERY = 100  # task ids in one `SpotcheckTaskId IN (…)`


class BadFilter(ValueError):
    """A filter value that cannot be a stage, unit or region code (the CLI checks the year)."""


@dataclass(frozen=True)
class TaskFilters:
    stage: str | None = None
    unit: str | None = None
    region: str | None = None
    year: int | None = None
    overdue: bool = False

    def __post_init__(self) -> None:
        if self.stage is not None and self.stage not in {s.value for s in Stage}:
            raise BadFilter(f"--stage {self.stage!r} is not a stage; one of: {', '.join(s.value for s in Stage)}")
        for flag, value in (("--unit", self.unit), ("--region", self.region)):
            if value is not None and not _CODE.fullmatch(value):
                raise BadFilter(f"{flag} {value!r} is not a code (letters, digits, '-', '_', '.')")

    def conditions(self) -> list[str]:
        """The visibility query's conditions on the search attributes, in the README's syntax."""
        found = []
        if self.stage is not None:
            found.append(f"{STAGE.name} = '{self.stage}'")
        if self.unit is not None:
            found.append(f"{UNIT.name} = '{self.unit}'")
        if self.region is not None:
            found.append(f"{REGION.name} = '{self.region}'")
        if self.year is not None:
            found.append(f"{PLAN_YEAR.name} = {self.year}")
        if self.overdue:
            found.append(f"{OVERDUE.name} = true")
        return found

    @property
    def targets_only(self) -> bool:
        """Region and overdue are kept on target workflows only."""
        return self.region is not None or self.overdue

    @property
    def tasks_only(self) -> bool:
        """No filter, or the plan year alone (a target has its task's year): the task workflows say it all."""
        return self.stage is None and self.unit is None and not self.targets_only

    @property
    def any(self) -> bool:
        return bool(self.conditions())


def visibility_queries(filters: TaskFilters) -> list[str]:
    """The one or two list queries whose workflows name the matching tasks (SpotcheckTaskId)."""
    types = [TASK_TYPE] if filters.tasks_only else [TARGET_TYPE] if filters.targets_only else [TASK_TYPE, TARGET_TYPE]
    return [" AND ".join([f"WorkflowType = '{kind}'", CURRENT_RUN, *filters.conditions()]) for kind in types]


async def matching_task_ids(client: Client, filters: TaskFilters) -> set[str]:
    found: set[str] = set()
    for query in visibility_queries(filters):
        async for execution in client.list_workflows(query):
            task_id = execution.typed_search_attributes.get(TASK_ID)
            if task_id:
                found.add(task_id)
    return found


async def task_stages(client: Client, task_ids: list[str]) -> dict[str, str]:
    """Each task's live stage (its workflow's SpotcheckStage); absent for a task not started yet or past
    retention."""
    stages: dict[str, str] = {}
    for start in range(0, len(task_ids), _IDS_PER_QUERY):
        ids = ", ".join(f"'{i}'" for i in task_ids[start:start + _IDS_PER_QUERY])
        query = f"WorkflowType = '{TASK_TYPE}' AND {CURRENT_RUN} AND {TASK_ID.name} IN ({ids})"
        async for execution in client.list_workflows(query):
            stage = execution.typed_search_attributes.get(STAGE)
            task_id = execution.typed_search_attributes.get(TASK_ID)
            if task_id and stage:
                stages[task_id] = stage
    return stages


async def list_tasks(client: Client, rows: list[dict], filters: TaskFilters) -> list[dict]:
    """The projection's task rows kept by the filters, each with its live `stage` (None: no workflow)."""
    if filters.any:
        wanted = await matching_task_ids(client, filters)
        rows = [r for r in rows if r["task_id"] in wanted]
    stages = await task_stages(client, [r["task_id"] for r in rows])
    return [{**r, "stage": stages.get(r["task_id"])} for r in rows]
