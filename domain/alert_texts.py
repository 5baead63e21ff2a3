"""What a person reads in an alert: its line under 我的预警 in the field app and the notification sent to
them. Inspectors and supervisors read Chinese; the alert's step (English, stable) stays the key that makes
it once-only and that programs read.

Pure: no I/O, no clock.
"""
from __future__ import annotations

from collections.abc import Iterable

PUBLICATION_DUE = "检查结果尚未审核，公示期限已到"
WITHHOLDING_DUE = "检查结果中有申请不予公示的内容，尚待审批，公示期限已到"
FIELD_WORK_REMINDER = "尚未录入检查记录，任务期限即将届满"
FIELD_WORK_DUE = "任务期限已届满，仍未录入检查记录"
TEAM_TOLD = "您已被列入该检查对象的检查组"
TEAM_JOINED = "调度人员已将您指派到该检查对象的检查组"
TEAM_LEFT = "调度人员已将您调出该检查对象的检查组"


def _units(units: Iterable[str]) -> str:
    return "、".join(units)


def staffing_reminder(units: Iterable[str]) -> str:
    """To the supervisors: units the dispatch could not staff, before the staffing deadline."""
    return f"{_units(units)}尚未配备检查人员，请指派"


def staffing_due(units: Iterable[str]) -> str:
    return f"{_units(units)}在配员期限内仍未配备检查人员"


def entropy_reminder(source: str) -> str:
    """To the supervisors: the announced public value the draw waits for."""
    return f"请录入「{source}」公布的数值，以完成抽取"


def entropy_due(source: str) -> str:
    return f"「{source}」公布的数值未在期限内录入，抽取仍在等待"
