"""A task stuck by a bug, and its fix behind `workflow.patched` (docs/runbooks/reset.md), for
tests/ops/test_reset.py. One workflow type, two versions of its code, as before and after a deploy."""
from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

NAME = "StuckTask"


@workflow.defn(name=NAME)
class BeforeTheFix:
    """The bug: after its first step the task waits for a go-ahead that nobody ever sends."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(milliseconds=50))
        await workflow.wait_condition(lambda: self.go)
        return "done"


@workflow.defn(name=NAME)
class AfterTheFix:
    """The fix: a new run goes on without the go-ahead; a history recorded before it keeps the old path."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(milliseconds=50))
        if not workflow.patched("no-go-ahead"):
            await workflow.wait_condition(lambda: self.go)
        return "done"
