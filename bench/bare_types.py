"""The bare workflows' arguments, in a module of their own that the sandbox passes through.

Defined inside bench/bare.py they would be new classes in every workflow's sandbox, and the pydantic
data converter (which caches one TypeAdapter per type) would build a new adapter for every workflow:
a cost the real workflows, whose models come from the passed-through domain.messages, do not pay.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BareTargetRun:
    task_wf: str  # the parent's workflow id
    key: str
    total: int  # the task's targets: the last one to finish signals the task
    follow_up: bool = True  # the category calls for a (non-order) follow-up after the credit feedback
    wait: str = ""  # the wait a continued run begins at, as the real target's: "check", "result"
    commands: int = 0


@dataclass
class BareTaskRun:
    task_id: str
    plan_wf: str
    total: int
    follow_up: bool = True
    stage: str = "dispatched"
    started: int = 0
    finished: int = 0
    cursor: int = 0


@dataclass
class BarePage:
    after: int
    limit: int
    total: int
