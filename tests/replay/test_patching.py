"""The targeting and redraw windows, and the deadlines on the waits for people, were added behind
`workflow.patched`: histories from before them replay. Without the guard the same change is
non-deterministic, which these tests show by forcing the patch on."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from runtime.client import WORKFLOWS
from workflows.common import ALWAYS_TIMED
from workflows.plan import STARTS_BY_TIMER
from workflows.target import OPENS_IN_ONE_RUN, WITHHOLDS_MARKED_ITEMS

CORPUS = Path(__file__).resolve().parent.parent / "histories"
BEFORE_WINDOWS = CORPUS / "InspectionTaskWorkflow" / "0.1.0-1.json"


def replayer() -> Replayer:
    # Unsandboxed, so that the monkeypatched `workflow.patched` is the one the workflow code calls.
    return Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter,
                    workflow_runner=UnsandboxedWorkflowRunner())


def history() -> WorkflowHistory:
    return WorkflowHistory.from_json("task", json.loads(BEFORE_WINDOWS.read_text()))


async def test_guarded_change_replays_an_old_history():
    await replayer().replay_workflow(history())


async def test_same_change_unguarded_fails_the_replay(monkeypatch):
    monkeypatch.setattr(workflow, "patched", lambda patch_id: True)
    with pytest.raises(workflow.NondeterminismError):
        await replayer().replay_workflow(history())


# Patches whose histories from before are in the corpus (with, where the patch replaces a command, that
# command, which the history from before takes): the deadlines on the waits for people (a task that waited 9 days for its entropy value, a
# target 9 days unstaffed, both captured on the code before), and province scale (a task that started its
# targets as children, a page at a time through its own history; since the patch, activities in shards), and a
# target opened in two runs (since the patch, in one: tests/workflows/test_target_runs.py), and a plan that
# started a task whose start had passed at once (since the patch, by a timer: tests/workflows/test_plan_starts.py).
BEFORE_PATCH = {
    "entropy-deadline": (CORPUS / "InspectionTaskWorkflow" / "0.1.0-8.json", None),
    "staffing-deadline": (CORPUS / "TargetInspectionWorkflow" / "0.1.0-24.json", None),
    "targets-started-in-shards": (CORPUS / "InspectionTaskWorkflow" / "0.1.0-7.json", "START_CHILD_WORKFLOW"),
    # A target's first run from before it opened in one run: open, the team's notice, continued as new.
    "target-opens-in-one-run": (CORPUS / "TargetInspectionWorkflow" / "0.1.0-27.json", "CONTINUED_AS_NEW"),
    # A plan from before its tasks started by timer: a task whose start had passed started with no timer.
    "plan-starts-tasks-by-timer": (CORPUS / "AnnualPlanWorkflow" / "0.1.0-1.json", "START_CHILD_WORKFLOW"),
}


def before(patch_id: str) -> WorkflowHistory:
    path, step = BEFORE_PATCH[patch_id]
    assert step is None or step in path.read_text()
    return WorkflowHistory.from_json(patch_id, json.loads(path.read_text()))


@pytest.mark.parametrize("patch_id", sorted(BEFORE_PATCH))
async def test_a_history_from_before_the_patch_replays(patch_id):
    await replayer().replay_workflow(before(patch_id))


@pytest.mark.parametrize("patch_id", sorted(BEFORE_PATCH))
async def test_the_change_unguarded_fails_the_replay(monkeypatch, patch_id):
    guarded = workflow.patched
    monkeypatch.setattr(workflow, "patched", lambda name: name == patch_id or guarded(name))
    with pytest.raises(workflow.NondeterminismError):
        await replayer().replay_workflow(before(patch_id))


# Histories made since a patch, each kept for the command only its patch gives: it replays, and without the
# patch it does not. A target opened marked by its task's item (R23, tests/workflows/test_item_withholding.py:
# without the patch the marking's activity is a command the code no longer gives); a target opened in one run
# (the demo's: without the patch the code would schedule the notice as a second activity and continue as new);
# the demo's plan, each task started by a timer (without the patch the first, whose start had passed, at once).
MADE_WITH_PATCH = {
    WITHHOLDS_MARKED_ITEMS: CORPUS / "TargetInspectionWorkflow" / "0.1.0-28.json",
    OPENS_IN_ONE_RUN: CORPUS / "TargetInspectionWorkflow" / "0.1.0-31.json",
    STARTS_BY_TIMER: CORPUS / "AnnualPlanWorkflow" / "0.1.0-4.json",
}


def made_with(patch_id: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(patch_id, json.loads(MADE_WITH_PATCH[patch_id].read_text()))


@pytest.mark.parametrize("patch_id", sorted(MADE_WITH_PATCH))
async def test_a_history_made_with_a_patch_replays(patch_id):
    await replayer().replay_workflow(made_with(patch_id))


@pytest.mark.parametrize("patch_id", sorted(MADE_WITH_PATCH))
async def test_a_history_made_with_a_patch_needs_it(monkeypatch, patch_id):
    guarded = workflow.patched
    monkeypatch.setattr(workflow, "patched", lambda name: name != patch_id and guarded(name))
    with pytest.raises(workflow.NondeterminismError):
        await replayer().replay_workflow(made_with(patch_id))


# A target's history from a chaos run (server restarted, the worker kept the target cached): its live task
# read a clock that lagged, found 0.72 s to the order deadline and started a timer; replayed, the same task
# finds the deadline passed. With waits always timed (ALWAYS_TIMED) both start a timer and the history
# replays; with the old branch it does not. Kept apart from the corpus: it was made by the unpatched code,
# so it replays only with the patch forced on.
LAGGED_CLOCK = Path(__file__).resolve().parent / "lagged" / "order-deadline.json"


def lagged() -> WorkflowHistory:
    return WorkflowHistory.from_json("lagged", json.loads(LAGGED_CLOCK.read_text()))


async def test_a_lagged_clock_replays_when_waits_are_always_timed(monkeypatch):
    guarded = workflow.patched
    monkeypatch.setattr(workflow, "patched", lambda name: name == ALWAYS_TIMED or guarded(name))
    await replayer().replay_workflow(lagged())


async def test_a_lagged_clock_breaks_the_replay_of_a_wait_that_skips_its_timer():
    with pytest.raises(workflow.NondeterminismError, match="TimerStarted"):
        await replayer().replay_workflow(lagged())
