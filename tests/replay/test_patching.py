"""The targeting and redraw windows were added behind `workflow.patched`: histories from before them replay.
Without the guard the same change is non-deterministic, which this test shows by forcing the patch on."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from runtime.client import WORKFLOWS

BEFORE_WINDOWS = Path(__file__).resolve().parent.parent / "histories" / "InspectionTaskWorkflow" / "0.1.0-1.json"


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
