"""Every payload that leaves for the public register (公示) or an outside system, and what never may.

One builder per kind, each taking what the activity holds (a plan line, a stored row) and picking
the public fields. The sc-draw-v1 record is built by `domain.draw.public_record`. `check` is the
gate the register's writer passes every payload through (store/register.py), and the follow-up
handoff before it is queued.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from domain import draw
from domain.categories import category
from domain.messages.plan import Adjustment
from domain.messages.task import FreezeSummary
from domain.results import Refused
from domain.stages import Stage

# Keys that may never be public, at any depth: inspectors' identities and data (R23), an entity's
# credit-risk class (R29), the draw's secrets and the files only auditors get (draw-protocol.md).
NEVER_PUBLIC = frozenset({
    "inspector", "inspectors", "inspector_id", "inspector_name", "entered_by", "reviewed_by", "reviewer",
    "assigned_by", "team", "teams", "recusal", "qualifications", "cert_expiry",
    "risk_class", "credit_risk", "credit_class", "stratum",
    "salt", "population_salt", "pool_file", "population_file",
    "nonce",
})
# The nonce is public once revealed, and it is revealed in the draw record only.
REVEALED_IN_DRAW_RECORD = frozenset({"nonce"})


class NotPublic(ValueError):
    """A payload holds something that may never be public: a defect in its builder, never published."""


def check(payload: Mapping) -> Mapping:
    """`payload` unchanged when nothing in it is on the never-public list; NotPublic otherwise."""
    allowed = REVEALED_IN_DRAW_RECORD if payload.get("protocol") == draw.PROTOCOL else frozenset()
    _check(payload, NEVER_PUBLIC - allowed, "")
    return payload


def _check(value: object, forbidden: frozenset, path: str) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key in forbidden:
                raise NotPublic(f"{path}{key} may never be public")
            _check(inner, forbidden, f"{path}{key}.")
    elif isinstance(value, (list, tuple)):
        for n, inner in enumerate(value):
            _check(inner, forbidden, f"{path}{n}.")


# --- the plan (R3, R5, R6, R7) ----------------------------------------------------------------------
def plan(*, plan_code: str, year: int, owner_unit: str, tasks: list[str], document_sha256: str,
         filed_with: Mapping | None = None, special_campaigns: Mapping[str, Mapping] | None = None) -> dict:
    """The plan; the filing with the level above once recorded (R6), and the tasks that are special
    campaigns listed apart from the routine ones, each with its approval (R7). Both absent when none."""
    payload = {"plan_code": plan_code, "year": year, "owner_unit": owner_unit, "tasks": tasks,
               "document_sha256": document_sha256}
    if filed_with:
        payload["filed_with"] = {key: filed_with[key] for key in ("unit", "filed_on", "ref") if key in filed_with}
    if special_campaigns:
        payload["special_campaigns"] = [{"task_id": task_id, "name": campaign["name"],
                                         "approval_ref": campaign["approval_ref"]}
                                        for task_id, campaign in sorted(special_campaigns.items())]
    return payload


def adjustment(plan_code: str, change: Adjustment) -> dict:
    """An added or cancelled task; the added task's document is published with the task itself."""
    return {"plan_code": plan_code, "adjustment": change.kind, "task_id": change.task_id, "reason": change.reason,
            "approver": change.approver}


# --- the task and its draws (draw-protocol.md) ----------------------------------------------------------
def task_announced(task_id: str, line: Mapping, draw_seq: int, stored_draw: Mapping) -> dict:
    """The task and the commitment to its draw's nonce (the nonce itself stays secret until the draw)."""
    return {"task_id": task_id, "task_code": line["task_code"], "name": line["name"], "items": line["items"],
            "unit": line["unit"], "partner_units": line.get("partner_units", []), "ratios": line["ratios"],
            "starts": line["starts"], "ends": line["ends"], "draw_seq": draw_seq,
            "commitment": stored_draw["commitment"], "entropy_source": stored_draw["entropy_source"]}


def frozen(task_id: str, draw_seq: int, freeze: FreezeSummary) -> dict:
    """The population's digest and counts, before the reveal; never its rows or its salt."""
    return {"task_id": task_id, "draw_seq": draw_seq, "frozen_at": freeze.frozen_at.isoformat(),
            "population_digest": freeze.population_digest, "population": freeze.population,
            "exclusions": freeze.exclusions}


def superseded(task_id: str, draw_seq: int, reason: str | None, approver: str | None) -> dict:
    return {"task_id": task_id, "draw_seq": draw_seq, "state": "superseded", "superseded_by": draw_seq + 1,
            "reason": reason, "approver": approver}


def task_closed(task_id: str, line: Mapping, selected: list[str], cancelled: bool, reason: str | None) -> dict:
    """The close: the selected list becomes public now (draw-protocol.md), or the cancellation."""
    payload = {"task_id": task_id, "task_code": line["task_code"], "state": "cancelled" if cancelled else "closed",
               "selected": selected}
    if reason:
        payload["reason"] = reason
    return payload


# --- a target's result and its follow-up --------------------------------------------------------------
def result(task_id: str, line: Mapping, uscc: str, entity_name: str, target: Mapping) -> dict:
    """Task, entity, category, date, unit; never who checked or reviewed (R23)."""
    check_date: date = target["check_date"]
    return {"task_id": task_id, "task_code": line["task_code"], "uscc": uscc, "entity_name": entity_name,
            "category": target["category"], "category_zh": category(target["category"]).name_zh,
            "check_date": check_date.isoformat(), "unit": line["unit"]}


def follow_up(*, lead_id: str, kind: str, task_id: str, line: Mapping, uscc: str, entity_name: str,
              result_category: str, due_at: datetime | None) -> dict:
    """A case lead, listing, order or credit feedback as handed to the receiving system."""
    payload = {"lead_id": lead_id, "kind": kind, "task_id": task_id, "task_code": line["task_code"], "uscc": uscc,
               "entity_name": entity_name, "category": result_category}
    if due_at is not None:
        payload["due_at"] = due_at.isoformat()
    return payload


# --- withheld before publication (R23) -----------------------------------------------------------------
# Why a result's fields may be withheld (S1 Art.3), and the public result's fields that may be.
WITHHOLDING_GROUNDS = {"state_secret": "国家秘密", "trade_secret": "商业秘密", "privacy": "个人隐私"}
WITHHOLDABLE = {"entity_name": ("entity_name",), "category": ("category", "category_zh", "previous_category"),
                "check_date": ("check_date",)}
# A result is marked before it is approved, while its publication can still wait for the decision.
MARKABLE_STAGES = (Stage.UNSTAFFED, Stage.DISPATCHED, Stage.CHECKED, Stage.ENTERED)


def withheld(payload: Mapping, fields: list[str], grounds: str) -> dict:
    """`payload` with `fields` withheld, saying which and why (they are published as withheld, not silently)."""
    dropped = {key for name in fields for key in WITHHOLDABLE[name]}
    shown = {k: v for k, v in payload.items() if k not in dropped}
    shown.update(withheld=sorted(fields), withheld_grounds=grounds,
                 withheld_note=f"部分信息涉及{WITHHOLDING_GROUNDS[grounds]}，经批准依法不予公示")
    return shown


def items_withholding(marked: list[Mapping], reason_cap: int) -> dict | None:
    """The marking a task's results carry when its line marks items (the plan's `withheld_items`), or None.

    One result covers all the task's items, so its marking covers every marked item: their fields together,
    the most protective of their grounds (WITHHOLDING_GROUNDS lists state secrets first), and each item's
    reason (cut to `reason_cap`, the full text stays in the plan). Marked by the first such item's code."""
    if not marked:
        return None
    order = list(WITHHOLDING_GROUNDS)
    first = min(marked, key=lambda m: (order.index(m["grounds"]), m["item"]))
    reason = "; ".join(f"{m['item']}: {m['reason']}" for m in sorted(marked, key=lambda m: m["item"]))
    return {"marked_by": first["item"], "grounds": first["grounds"],
            "fields": sorted({f for m in marked for f in m["fields"]}),
            "reason": reason if len(reason) <= reason_cap else reason[:reason_cap - 1] + "…"}


def may_mark_withholding(marked_by: str, stage: Stage, people: frozenset[str], marked: str | None) -> None:
    """R23: the team, a reviewer or a supervisor of the unit marks a result before it is approved, once."""
    if stage not in MARKABLE_STAGES:
        raise Refused(f"cannot mark the result for withholding in stage {stage.value}: only before it is approved")
    if marked is not None:
        raise Refused(f"the result is already marked for withholding by {marked}")
    if marked_by not in people:
        raise Refused(f"{marked_by} is neither on the team nor a reviewer or supervisor of the unit")


def may_decide_withholding(approver: str, marked_by: str | None, supervisors: list[str], decided: bool) -> None:
    """R23: a supervisor of the unit, not the one who marked it, approves or refuses the withholding, once."""
    if marked_by is None:
        raise Refused("the result is not marked for withholding")
    if decided:
        raise Refused("the withholding is already decided")
    if approver not in supervisors:
        raise Refused(f"{approver} is not a supervisor of the unit")
    if approver == marked_by:
        raise Refused(f"{approver} marked the result and cannot approve its withholding too")


# --- after publication: corrections (更正) and stop-publication (R27) ---------------------------------
def correction(original: Mapping, *, n: int, corrects: int, previous_category: str, category_code: str | None,
               note: str | None, reason: str, corrected_on: date) -> dict:
    """The n-th correction of a published result (`original`, its payload; `corrects`, its publication id;
    `previous_category`, its category as recorded, also when withheld from the payload).

    The original row stays in the register as it was: this one says what changed, why and when, and
    carries the fields as they now read. Never who approved it (the unit's staff, as for reviews, R23).
    A result published with fields withheld (R23) is corrected with the same fields withheld."""
    now_category = category_code or previous_category
    payload = {"task_id": original["task_id"], "task_code": original["task_code"], "uscc": original["uscc"],
               "entity_name": original.get("entity_name"), "unit": original["unit"], "correction": n,
               "corrects": corrects, "category": now_category, "category_zh": category(now_category).name_zh,
               "previous_category": previous_category, "reason": reason,
               "corrected_on": corrected_on.isoformat()}
    if note is not None:
        payload["note"] = note
    if original.get("withheld"):
        payload = withheld(payload, original["withheld"], original["withheld_grounds"])
    return payload


def withdrawal(*, task_id: str, uscc: str, withdraws: int, decided_on: date, eligible_from: date) -> dict:
    """The result `withdraws` (a publication id) leaves the public pages (停止公示): the decision's date and
    the end of the minimum period it waited for. Never the applicant's grounds or who decided."""
    return {"task_id": task_id, "uscc": uscc, "withdraws": withdraws, "decided_on": decided_on.isoformat(),
            "eligible_from": eligible_from.isoformat()}


def still_public(rows: list[Mapping]) -> list[Mapping]:
    """The register's rows the public pages show: a withdrawn result leaves them with its corrections, and
    the withdrawal itself is not shown (the register keeps all three)."""
    withdrawn = {(r["task_id"], r["uscc"]) for r in rows if r["kind"] == "withdrawal"}
    return [r for r in rows if r["kind"] != "withdrawal"
            and not (r["kind"] in ("result", "correction") and (r["task_id"], r["uscc"]) in withdrawn)]
