"""Workflow code reads no clock, random, file, network or database: checked in the source of workflows/.

The target workflow runs outside the sandbox in production (workflows/target.py says why), so this
reading of the code, with the tests' workers that run every workflow in the sandbox, is what keeps
such a call out. Imports are by package: `activities` only for activity references, `domain` pure.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
ALLOWED_PACKAGES = {"__future__", "asyncio", "collections", "datetime", "functools", "typing", "temporalio",
                    "activities", "domain", "workflows"}  # functools: wraps a handler, reads nothing
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}  # as attributes: datetime.now()…
FORBIDDEN_BUILTINS = {"open", "input", "print", "exec", "eval", "__import__", "hash", "id"}  # hash/id vary by process


def problems(source: str, name: str = "<source>") -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            packages = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            packages = [(node.module or "").split(".")[0]]
        else:
            packages = []
        found += [f"{name}:{node.lineno}: imports {p}" for p in packages if p not in ALLOWED_PACKAGES]
        if isinstance(node, ast.Call):
            called = node.func
            if (isinstance(called, ast.Attribute) and called.attr in CLOCK_CALLS
                    and not (isinstance(called.value, ast.Name) and called.value.id == "workflow")):
                found.append(f"{name}:{node.lineno}: calls .{called.attr}() (workflow.now() is the clock)")
            if isinstance(called, ast.Name) and called.id in FORBIDDEN_BUILTINS:
                found.append(f"{name}:{node.lineno}: calls {called.id}()")
    return found


@pytest.mark.parametrize("module", sorted(WORKFLOWS.glob("*.py")), ids=lambda p: p.name)
def test_workflow_modules_read_nothing_outside_the_history(module):
    assert problems(module.read_text(encoding="utf-8"), module.name) == []


@pytest.mark.parametrize("snippet", [
    "import random", "from time import time", "import uuid", "import os.path", "from sqlalchemy import select",
    "datetime.now(timezone.utc)", "date.today()", "datetime.utcnow()", "loop.time()",
    "open('plan.json')", "print(x)", "hash(uscc)",
])
def test_each_kind_of_read_is_found(snippet):
    assert problems(snippet) != []


def test_what_workflows_do_is_not_flagged():
    assert problems("from datetime import datetime, timedelta\nfrom temporalio import workflow\n"
                    "x = workflow.now() + timedelta(days=1)\nawait asyncio.sleep(1)") == []
