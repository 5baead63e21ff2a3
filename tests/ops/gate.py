"""A workflow whose update refuses through a rule of domain/, as the target's validators do; a module
of its own, so the sandbox imports only this (tests/ops/test_metrics.py)."""
from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import results


@workflow.defn
class CategoryGate:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    async def enter(self, code: str) -> str:
        return code

    @enter.validator
    def check(self, code: str) -> None:
        results.known_category(code)
