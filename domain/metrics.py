"""The four evaluation metrics (评价指标) of the year, as the operator contract prints them.

Pure: the counts come from `read.metrics.metrics`; this module only holds them, defines what
they mean and renders the contract's JSON (contract.md, "JSON outputs", `metrics`):

    {"year": 2025,
     "inspected_share": {"value": 0.051, "numerator": 510, "denominator": 10000},
     "joint_rate": {"value": 0.2, "numerator": 2, "denominator": 10},
     "on_time_publication_rate": {"value": 1.0, "numerator": 498, "denominator": 498},
     "problem_disposal_rate": {"value": 0.9, "numerator": 45, "denominator": 50}}

A ratio whose denominator is 0 (nothing to measure yet) has `value` null: 0/0 is neither 0 % nor
100 %, and a reader must not mistake "nothing happened" for a score.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from domain.workdays import SHANGHAI

# The directory snapshot the inspected share divides by: 31 Dec 23:59 Asia/Shanghai (contract.md).
YEAR_END_TIME = time(23, 59)


def year_end(year: int) -> datetime:
    """31 December 23:59 Asia/Shanghai of `year`, the instant the directory is counted at."""
    return datetime(year, 12, 31, YEAR_END_TIME.hour, YEAR_END_TIME.minute, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Ratio:
    """numerator / denominator, both exact counts; `value` is None when the denominator is 0."""

    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        if self.numerator < 0 or self.denominator < 0:
            raise ValueError(f"a ratio counts things: got {self.numerator}/{self.denominator}")
        # numerator > denominator is allowed: 户次 can outnumber the entities left at year end.

    @property
    def value(self) -> float | None:
        return None if self.denominator == 0 else self.numerator / self.denominator

    def as_json(self) -> dict:
        return {"value": self.value, "numerator": self.numerator, "denominator": self.denominator}


@dataclass(frozen=True)
class Metrics:
    """The year's four metrics. A result belongs to the year of its check date (contract.md)."""

    year: int
    inspected_share: Ratio
    """抽查户次占比: "random-draw targets with an accepted result (approved where the unit reviews)
    whose check date is in the year / active entities in the directory as of 31 Dec 23:59
    Asia/Shanghai (targeted inspections are not counted)."

    Counted per target (户次: an entity drawn by two tasks counts twice); accepted = target stage
    approved, published, follow_up or closed (a unit that does not review approves on entry)."""

    joint_rate: Ratio
    """部门联合双随机监管率: "tasks with partner units / tasks of the year, cancelled tasks
    excluded." Tasks of the year = tasks of the plans of that year (plans.year)."""

    on_time_publication_rate: Ratio
    """检查结果按时公示率: "results published within their deadline / results published or
    overdue in the year."

    Numerator: result publications of the year that were on time. Denominator: result
    publications of the year + targets of the year whose publication deadline had passed at
    `as_of` with no publication (targets of cancelled tasks, stage `cancelled`, are not due)."""

    problem_disposal_rate: Ratio
    """发现问题处置率: "problem results whose follow-up is closed / problem results. A result
    belongs to the year of its check date."

    A problem result is an accepted result whose category has `problem` (domain.categories);
    it is disposed of when it has at least one follow-up and none of them is open (an order that
    failed its re-check turns into a listing or a case lead, which must close too)."""

    def as_json(self) -> dict:
        return {
            "year": self.year,
            "inspected_share": self.inspected_share.as_json(),
            "joint_rate": self.joint_rate.as_json(),
            "on_time_publication_rate": self.on_time_publication_rate.as_json(),
            "problem_disposal_rate": self.problem_disposal_rate.as_json(),
        }
