"""Result categories (抽查检查结果, R20) and the follow-up each one calls for (contract.md)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FollowUpKind(str, Enum):
    CASE_LEAD = "case_lead"  # 案源线索 to the penalty-case system; closed when it accepts
    ABNORMAL_LISTING = "abnormal_listing"  # 经营异常名录; closed when recorded
    ORDER_TO_PUBLISH = "order_to_publish"  # 责令公示; closed when published, else a listing
    CORRECTION = "correction"  # 责令改正; closed when the re-check passes, else a case lead


@dataclass(frozen=True)
class Category:
    code: str
    name_zh: str
    problem: bool
    follow_up: FollowUpKind | None
    # What an order becomes when its re-check fails or its deadline passes.
    fallback: FollowUpKind | None = None
    needs_note: bool = False


CATEGORIES: dict[str, Category] = {
    c.code: c
    for c in (
        Category("no_issue", "未发现问题", False, None),
        Category("unpublished_info", "未按规定公示应当公示的信息", True, FollowUpKind.ORDER_TO_PUBLISH,
                 fallback=FollowUpKind.ABNORMAL_LISTING),
        Category("unreachable", "通过登记的住所（经营场所）无法联系", True, FollowUpKind.ABNORMAL_LISTING),
        Category("obstructed", "不配合检查情节严重", True, FollowUpKind.CASE_LEAD),
        Category("no_activity", "未发现开展本次抽查涉及的经营活动", False, None),
        Category("ordered_to_correct", "发现问题，依法责令立即改正或者限期改正", True, FollowUpKind.CORRECTION,
                 fallback=FollowUpKind.CASE_LEAD),
        Category("pending_investigation", "发现问题，待后续调查处理", True, FollowUpKind.CASE_LEAD),
        Category("passed", "合格", False, None),
        Category("failed", "不合格", True, FollowUpKind.CASE_LEAD),
        Category("other", "其他情况", False, None, needs_note=True),
    )
}

# An order carries a deadline and waits for a re-check; the others close when the receiving system accepts them.
ORDER_KINDS = frozenset({FollowUpKind.ORDER_TO_PUBLISH, FollowUpKind.CORRECTION})
# Working days an entity has to comply with an order (R25: 10 days to publish missing information).
ORDER_WORKING_DAYS = 10


def category(code: str) -> Category:
    """The category of a recorded result: its code was accepted by domain.results.known_category."""
    return CATEGORIES[code]
