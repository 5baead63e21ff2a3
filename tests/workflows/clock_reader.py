"""A workflow that breaks the rules, for tests/workflows/test_strict_sandbox.py: it reads the wall clock.

Declared outside the sandbox, as the target workflow is; a module of its own so that the sandbox can
load it without the test module's imports.
"""
from __future__ import annotations

from datetime import datetime

from temporalio import workflow


@workflow.defn(sandboxed=False)
class ClockReader:
    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()
