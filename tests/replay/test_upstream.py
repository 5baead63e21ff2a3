"""The upstream replay bug of tests/replay/upstream.py, pinned by the history the chaos test captured.

The xfail is strict: once an SDK release replays this history, this test fails and says so; then the
chaos test's allowance for the bug goes, and the history moves to the corpus with tests/histories/capture.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from runtime.client import WORKFLOWS
from tests.replay.upstream import known_upstream, update_after_timed_out_task

UPSTREAM = sorted((Path(__file__).resolve().parent / "upstream").glob("*.json"))
CORPUS = sorted((Path(__file__).resolve().parent.parent / "histories").glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))


@pytest.mark.xfail(strict=True, reason="sdk-core replays a timed-out task's timer and a later update in one "
                                       "activation (tests/replay/upstream.py)")
@pytest.mark.parametrize("path", UPSTREAM, ids=[p.stem for p in UPSTREAM])
async def test_upstream_history_replays(path: Path):
    await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(load(path))


@pytest.mark.parametrize("path", UPSTREAM, ids=[p.stem for p in UPSTREAM])
async def test_the_failure_is_recognised_as_the_upstream_one(path: Path):
    history = load(path)
    result = await Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter).replay_workflow(
        history, raise_on_replay_failure=False)
    assert known_upstream(history, result.replay_failure), result.replay_failure


def test_no_corpus_history_has_the_shape():
    """The allowance is narrow: none of the corpus histories (all replay) has the bug's shape."""
    assert CORPUS and not any(update_after_timed_out_task(load(p)) for p in CORPUS)
