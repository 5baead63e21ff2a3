"""Every public payload, built from realistic inputs that carry secrets, leaves them out; the gate refuses them."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from domain import draw, public
from domain.messages.plan import Adjustment
from domain.messages.task import FreezeSummary
from store.register import publish

NONCE = bytes(range(32, 64)).hex()
SALT = bytes(range(32)).hex()
INSPECTORS = ["JDZ-I012", "JDZ-I017"]
REVIEWER = "JDZ-R003"
FROZEN_AT = datetime(2025, 4, 2, 1, 30, tzinfo=timezone.utc)
LINE = {  # a plan line as stored, with the fields a payload must pick from
    "task_id": "JDZ-2025-0001", "task_code": "景市监抽查〔2025〕1号", "name": "2025年昌江区企业公示信息双随机抽查",
    "items": ["GS-001"], "unit": "360202-SCJ", "partner_units": ["360202-WJW"], "level": "county",
    "draw_level": "county", "filter": {"subject_type": ["enterprise"], "region": ["360202"]},
    "ratios": {"A": "0.03", "B": "0.05", "U": "0.05"}, "frequency_cap": 1, "team_size": 2, "load_cap": 0,
    "entropy_source": "中国福利彩票3D 第2025091期开奖号码", "starts": "2025-04-01", "ends": "2025-11-10",
}
DRAW_ROW = {  # the stored draw, secrets included
    "task_id": "JDZ-2025-0001", "draw_seq": 1, "state": "frozen", "commitment": draw.commitment(bytes.fromhex(NONCE)),
    "nonce": NONCE, "population_salt": SALT, "entropy_source": LINE["entropy_source"], "reason": None,
    "approver": None,
}
TARGET_ROW = {  # the target's projection row: who entered and reviewed the result is internal
    "task_id": "JDZ-2025-0001", "uscc": "91360202705565720F", "kind": "random", "stage": "approved",
    "category": "no_issue", "check_date": date(2025, 5, 6), "entered_by": INSPECTORS[0], "reviewed_by": REVIEWER,
    "method": "onsite",
}
FREEZE = FreezeSummary(frozen_at=FROZEN_AT, population=8, strata={"A": 4, "B": 3, "U": 1},
                       exclusions={"revoked": 2, "frequency_cap": 1}, population_digest="9e" * 32)
SECRET_VALUES = [NONCE, SALT, *INSPECTORS, REVIEWER]


def drawn_record() -> dict:
    strata = draw.plan_strata(FREEZE.strata, LINE["ratios"])
    return draw.public_record(
        task_id=LINE["task_id"], task_code=LINE["task_code"], draw_seq=2, reason="wrong filter", approver="JDZ-S001",
        freeze=FREEZE.model_dump(mode="json"), strata=strata, commitment=DRAW_ROW["commitment"],
        entropy_source=LINE["entropy_source"], entropy="3D-2025091 538", nonce=NONCE, seed="5d" * 32,
        selection_digest="f3" * 32)


PAYLOADS = {
    "plan": lambda: public.plan(plan_code="JDZ-2025", year=2025, owner_unit="360200-SCJ", tasks=[LINE["task_id"]],
                                document_sha256="ab" * 32),
    "adjustment": lambda: public.adjustment("JDZ-2025", Adjustment(
        kind="add", task_id="JDZ-2025-0009", reason="complaints", approver="JDZ-S001",
        task_document=json.dumps({**LINE, "task_id": "JDZ-2025-0009"}, ensure_ascii=False))),
    "task announced": lambda: public.task_announced(LINE["task_id"], LINE, 1, DRAW_ROW),
    "freeze": lambda: public.frozen(LINE["task_id"], 1, FREEZE),
    "superseded": lambda: public.superseded(LINE["task_id"], 1, "wrong filter", "JDZ-S001"),
    "task closed": lambda: public.task_closed(LINE["task_id"], LINE, ["91360202705565720F"], False, None),
    "task cancelled": lambda: public.task_closed(LINE["task_id"], LINE, [], True, "plan adjustment"),
    "result": lambda: public.result(LINE["task_id"], LINE, TARGET_ROW["uscc"], "景德镇市某某有限公司", TARGET_ROW),
    "follow-up": lambda: public.follow_up(lead_id="JDZ-2025-0001/91360202705565720F/follow-up-1",
                                          kind="correction", task_id=LINE["task_id"], line=LINE,
                                          uscc=TARGET_ROW["uscc"], entity_name="景德镇市某某有限公司",
                                          result_category="ordered_to_correct", due_at=FROZEN_AT),
}


def test_the_plan_payload_names_its_filing_and_its_special_campaigns_apart():
    payload = public.plan(plan_code="JDZ-2025", year=2025, owner_unit="360200-SCJ",
                          tasks=["JDZ-2025-0001", "JDZ-2025-0002"], document_sha256="ab" * 32,
                          filed_with={"unit": "360000-SCJ", "filed_on": "2025-03-20", "ref": "赣市监信备〔2025〕3号"},
                          special_campaigns={"JDZ-2025-0002": {"name": "燃气安全专项检查", "approval_ref": "景市监批〔2025〕7号"}})
    assert payload["filed_with"] == {"unit": "360000-SCJ", "filed_on": "2025-03-20", "ref": "赣市监信备〔2025〕3号"}
    assert payload["special_campaigns"] == [
        {"task_id": "JDZ-2025-0002", "name": "燃气安全专项检查", "approval_ref": "景市监批〔2025〕7号"}]
    assert public.check(payload) is payload


def test_a_plan_payload_without_filing_or_campaigns_is_as_before():
    assert set(PAYLOADS["plan"]()) == {"plan_code", "year", "owner_unit", "tasks", "document_sha256"}


@pytest.mark.parametrize("kind", PAYLOADS)
def test_no_payload_holds_what_may_never_be_public(kind):
    payload = PAYLOADS[kind]()
    assert public.check(payload) is payload
    text = json.dumps(payload, ensure_ascii=False)
    for secret in SECRET_VALUES:
        assert secret not in text, f"{kind} payload shows {secret}"
    assert not public.NEVER_PUBLIC & set(_keys(payload))


def test_the_draw_record_reveals_the_nonce_and_nothing_else_secret():
    record = drawn_record()
    assert public.check(record) is record
    assert record["nonce"] == NONCE and record["protocol"] == draw.PROTOCOL
    assert SALT not in json.dumps(record) and "population_salt" not in record
    assert record["supersedes"] == 1 and record["strata"]["A"] == {"population": 4, "ratio": "0.03", "quota": 1}


def test_the_announcement_commits_to_the_nonce_without_showing_it():
    payload = public.task_announced(LINE["task_id"], LINE, 1, DRAW_ROW)
    assert payload["commitment"] == draw.commitment(bytes.fromhex(NONCE))
    assert "nonce" not in payload


@pytest.mark.parametrize("payload", [
    {"task_id": "T", "inspectors": INSPECTORS},
    {"task_id": "T", "nonce": NONCE},  # before the reveal: not the draw record
    {"task_id": "T", "population_salt": SALT},
    {"uscc": "91360202705565720F", "risk_class": "A"},
    {"teams": [{"unit": "360202-SCJ", "inspector_id": INSPECTORS[0]}]},
    {"task_id": "T", "units": {"360202-SCJ": {"pool_file": "JDZ-I012\tactive\t2027-12-31\tregistration\t\n"}}},
    {"protocol": draw.PROTOCOL, "nonce": NONCE, "population_salt": SALT},  # revealed nonce, never the salt
], ids=["inspectors", "nonce", "salt", "risk class", "nested inspector", "pool file", "salt in a draw record"])
def test_the_check_refuses_a_payload_with_something_never_public(payload):
    with pytest.raises(public.NotPublic):
        public.check(payload)


def test_the_register_writer_refuses_it_too(sqlite_engine):
    with pytest.raises(public.NotPublic, match="risk_class"), sqlite_engine.begin() as connection:
        publish(connection, workflow_id="task/T", step="close", kind="task", at=FROZEN_AT, year=2025,
                payload={"task_id": "T", "selected": [{"uscc": "91360202705565720F", "risk_class": "A"}]})


def _keys(value):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


def test_a_tasks_marked_items_make_one_marking_of_its_results():
    """Their fields together, the most protective grounds, every item's reason; none marked: None."""
    marked = [{"item": "SP-001", "grounds": "privacy", "fields": ["check_date"], "reason": "经营者住址"},
              {"item": "GS-001", "grounds": "trade_secret", "fields": ["entity_name", "check_date"], "reason": "工艺"}]
    assert public.items_withholding(marked, 500) == {
        "marked_by": "GS-001", "grounds": "trade_secret", "fields": ["check_date", "entity_name"],
        "reason": "GS-001: 工艺; SP-001: 经营者住址"}
    assert public.items_withholding([], 500) is None
    long = public.items_withholding([{**marked[0], "reason": "长" * 600}], 500)
    assert len(long["reason"]) == 500 and long["reason"].endswith("…")
