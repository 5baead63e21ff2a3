"""Every committed history replays on the current workflow code: a deploy never breaks a running inspection.

A change that would replay differently must go behind `workflow.patched`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from runtime.client import WORKFLOWS

CORPUS = Path(__file__).resolve().parent.parent / "histories"
HISTORIES = sorted(CORPUS.glob("*/*.json"))


def test_corpus_is_append_only():
    """Every history in the manifest is there unchanged, and every history is in the manifest."""
    listed = {}
    for line in (CORPUS / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    present = {str(p.relative_to(CORPUS)) for p in HISTORIES}
    assert present == set(listed), "add histories with tests/histories/capture.py; never remove one"
    for name, digest in listed.items():
        assert hashlib.sha256((CORPUS / name).read_bytes()).hexdigest() == digest, f"{name} was changed"


def test_corpus_covers_every_workflow():
    assert {p.parent.name for p in HISTORIES} >= {w.__name__ for w in WORKFLOWS}


@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.name}" for p in HISTORIES])
async def test_history_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
