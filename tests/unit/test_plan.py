"""The plan file: its shape (parse_plan), its caps, and its rules (check_plan: R1, R3, R9, R10, R13, strata,
windows in the past), and the entropy value a task's announced source needs."""
from __future__ import annotations

import json
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.draw import DrawError, check_entropy_value
from domain.plan import (
    MAX_FILE_BYTES,
    ItemFacts,
    PlanDirectory,
    PlanFile,
    PlanInvalid,
    PlanProblem,
    canonical_json,
    check_plan,
    check_task,
    plan_deadline,
    published_on_time,
)
from domain.plan_file import parse_plan, parse_task


def item(code, *, category="general", public_info_check=False, ratio_cap=None,
         effective_from=date(2024, 1, 1), effective_to=None, qualification="registration"):
    return ItemFacts(code, category, effective_from, effective_to, public_info_check, ratio_cap,
                     qualification, ("onsite", "document"), ("CP1",))


DIRECTORY = PlanDirectory(
    items={
        f.item_code: f
        for f in (
            item("GS-001", public_info_check=True),  # general, no cap set
            item("KEY-001", category="key", ratio_cap="0.01", qualification="food"),  # caps bind general items only
            item("GEN-002", ratio_cap="0.05"),
            item("GEN-003", ratio_cap="0.08"),
            item("OLD-001", effective_to=date(2025, 6, 30)),
            item("NEW-001", effective_from=date(2025, 5, 1)),
        )
    },
    units=frozenset({"360000-SCJ", "360200-SCJ", "360202-SCJ", "360203-SCJ", "360200-SWJ"}),
)


def rates(**changes):
    """The contract's example ratios, with changes."""
    return {"A": "0.03", "B": "0.05", "C": "0.10", "D": "0.20", "U": "0.05", **changes}


def task_doc(**changes):
    """The contract's example task, with changes."""
    doc = {
        "task_id": "JDZ-2025-0001",
        "task_code": "景市监抽查〔2025〕1号",
        "name": "2025年企业公示信息双随机抽查",
        "items": ["GS-001"],
        "unit": "360202-SCJ",
        "partner_units": [],
        "level": "county",
        "draw_level": "city",
        "filter": {"subject_type": ["enterprise"], "region": ["3602"]},
        "ratios": rates(),
        "frequency_cap": 1,
        "team_size": 2,
        "load_cap": 0,
        "entropy_source": "none",
        "starts": "2025-04-01",
        "ends": "2025-11-10",
    }
    doc.update(changes)
    return doc


def plan_doc(*tasks, **changes):
    doc = {"plan_code": "JDZ-2025", "year": 2025, "owner_unit": "360200-SCJ", "tasks": list(tasks) or [task_doc()]}
    doc.update(changes)
    return doc


def parse(doc) -> PlanFile:
    return parse_plan(json.dumps(doc, ensure_ascii=False), "plan.json")


def shape_problems(doc) -> list[PlanProblem]:
    with pytest.raises(PlanInvalid) as caught:
        parse(doc)
    return caught.value.problems


def rule_problems(*tasks, **changes) -> list[PlanProblem]:
    with pytest.raises(PlanInvalid) as caught:
        check_plan(parse(plan_doc(*tasks, **changes)), DIRECTORY)
    return caught.value.problems


def passes(*tasks, **changes) -> bool:
    try:
        check_plan(parse(plan_doc(*tasks, **changes)), DIRECTORY)
    except PlanInvalid:
        return False
    return True


def only(problems, where, field) -> PlanProblem:
    matching = [p for p in problems if p.where == where and p.field == field]
    assert len(matching) == 1, problems
    return matching[0]


# --- a good plan --------------------------------------------------------------------------------
def test_the_contract_example_passes():
    plan = parse(plan_doc())
    check_plan(plan, DIRECTORY)
    task = plan.tasks[0]
    assert task.ratio_fractions()["A"] == Fraction(3, 100)
    assert task.all_units == ("360202-SCJ",)
    assert task.required_qualifications(DIRECTORY) == ("registration",)


def test_canonical_json_is_sorted_compact_unicode_and_round_trips():
    plan = parse(plan_doc())
    text = canonical_json(plan)
    assert text.startswith('{"owner_unit":"360200-SCJ","plan_code":"JDZ-2025","tasks":[{"draw_level":"city"')
    assert " " not in text.replace("2025年企业公示信息双随机抽查", "")
    assert "景市监抽查〔2025〕1号" in text
    assert parse_plan(text, "stored") == plan


def test_draw_level_defaults_to_level():
    doc = task_doc(level="station")
    del doc["draw_level"]
    assert parse(plan_doc(doc)).tasks[0].draw_level == "station"


def test_joint_task_units_lead_first_and_qualifications_of_every_item():
    task = parse(plan_doc(task_doc(partner_units=["360200-SWJ", "360203-SCJ"], items=["KEY-001", "GS-001"]))).tasks[0]
    assert task.all_units == ("360202-SCJ", "360200-SWJ", "360203-SCJ")
    assert task.required_qualifications(DIRECTORY) == ("food", "registration")


def test_byte_order_mark_is_accepted():
    raw = b"\xef\xbb\xbf" + json.dumps(plan_doc()).encode()
    assert parse_plan(raw, "plan.json").plan_code == "JDZ-2025"


def test_models_are_frozen():
    plan = parse(plan_doc())
    with pytest.raises(Exception):
        plan.tasks[0].team_size = 3  # type: ignore[misc]


# --- shape ---------------------------------------------------------------------------------------
def test_json_syntax_error_names_file_line_and_column():
    with pytest.raises(PlanInvalid) as caught:
        parse_plan('{\n  "plan_code": "JDZ-2025",\n  "year": ,\n}', "plans/2025.json")
    assert str(caught.value).startswith("plans/2025.json: line 3 column 11: not valid JSON")


def test_not_utf8_is_named():
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(b'{"name": "\xff"}', "plan.json")
    assert str(caught.value) == "plan.json: byte 10: not UTF-8"


def test_a_key_given_twice_is_an_error_not_the_last_one_wins():
    with pytest.raises(PlanInvalid) as caught:
        parse_plan('{"year": 2025, "year": 2026}', "plan.json")
    assert 'key "year": appears twice' in str(caught.value)


def test_unknown_keys_are_named_with_their_task():
    doc = plan_doc(task_doc(ratio={"A": "0.1"}, filter={"region": ["3602"], "size": ["small"]}), owner="x")
    problems = shape_problems(doc)
    assert "unknown key" in only(problems, "task JDZ-2025-0001", "ratio").reason
    assert "subject_type, region, industry, labels" in only(problems, "task JDZ-2025-0001", "filter.size").reason
    assert "unknown key" in only(problems, "plan", "owner").reason


def test_ratio_problem_reads_like_the_contract():
    problems = shape_problems(plan_doc(task_doc(ratios={"A": "0.5x"})))
    assert str(problems[0]).startswith('task JDZ-2025-0001 ratios.A "0.5x": ')


@pytest.mark.parametrize(("changes", "field", "reason"), [
    ({"ratios": {"A": 0.05}}, "ratios.A", "must be a JSON string"),
    ({"ratios": {"A": "5%"}}, "ratios.A", "must be a string like"),
    ({"ratios": {"A": "1.5"}}, "ratios.A", "must be a string like"),
    ({"ratios": {"a": "0.05"}}, "ratios.a", "upper-case letter"),
    ({"ratios": {}}, "ratios", "at least 1"),
    ({"team_size": 1}, "team_size", "greater than or equal to 2"),
    ({"frequency_cap": 0}, "frequency_cap", "greater than or equal to 1"),
    ({"load_cap": -1}, "load_cap", "greater than or equal to 0"),
    ({"team_size": True}, "team_size", "whole number"),
    ({"team_size": "2"}, "team_size", "whole number"),
    ({"team_size": 2.0}, "team_size", "whole number"),
    ({"ends": "2025-03-31"}, "ends", "is before starts 2025-04-01"),
    ({"starts": "2025/04/01"}, "starts", "YYYY-MM-DD"),
    ({"starts": 1743465600}, "starts", "YYYY-MM-DD"),
    ({"items": []}, "items", "at least 1"),
    ({"items": ["GS-001", "GS-001"]}, "items", "lists GS-001 more than once"),
    ({"items": ["GS 001"]}, "items[0]", "pattern"),
    ({"partner_units": ["360202-SCJ"]}, "partner_units", "lead unit"),
    ({"level": "district"}, "level", "'province', 'city', 'county' or 'station'"),
    ({"filter": {"labels": []}}, "filter.labels", "matches nothing"),
    ({"filter": {"subject_type": ["enterprises"]}}, "filter.subject_type[0]", "'enterprise'"),
    ({"filter": {"region": ["36-02"]}}, "filter.region[0]", "pattern"),
    ({"entropy_source": "  "}, "entropy_source", "blank"),
    ({"task_code": ""}, "task_code", "blank"),
])
def test_bad_task_values_name_the_task_the_field_and_why(changes, field, reason):
    problem = only(shape_problems(plan_doc(task_doc(**changes))), "task JDZ-2025-0001", field)
    assert reason in problem.reason


def test_missing_keys_are_each_named():
    doc = task_doc()
    del doc["ratios"], doc["ends"]
    problems = shape_problems(plan_doc(doc))
    assert {str(p) for p in problems} == {"task JDZ-2025-0001 ratios: is required",
                                          "task JDZ-2025-0001 ends: is required"}


def test_a_task_without_a_readable_id_is_named_by_its_index():
    problems = shape_problems(plan_doc(task_doc(), task_doc(task_id="no spaces allowed")))
    assert only(problems, "tasks[1]", "task_id").value == '"no spaces allowed"'


def test_task_ids_are_unique_in_the_plan():
    problem = only(shape_problems(plan_doc(task_doc(), task_doc())), "plan", "tasks")
    assert problem.reason == "task_id JDZ-2025-0001 used by more than one task"


@pytest.mark.parametrize(("changes", "field"), [
    ({"plan_code": "JDZ 2025"}, "plan_code"),
    ({"year": 25}, "year"),
    ({"year": "2025"}, "year"),
    ({"tasks": []}, "tasks"),
])
def test_bad_plan_values_are_named(changes, field):
    only(shape_problems(plan_doc(**changes)), "plan", field)


def test_a_document_that_is_not_an_object():
    assert str(shape_problems([])[0]) == "plan: must be a JSON object"


def test_parse_task_names_the_task():
    with pytest.raises(PlanInvalid) as caught:
        parse_task(json.dumps(task_doc(task_id="JDZ-2025-0009", team_size=1, extra=1)), "add.json")
    assert str(caught.value).splitlines() == [
        "add.json: task JDZ-2025-0009 team_size 1: Input should be greater than or equal to 2",
        "add.json: task JDZ-2025-0009 extra: unknown key; the keys are: task_id, task_code, name, items, unit, "
        "partner_units, level, draw_level, filter, ratios, frequency_cap, team_size, load_cap, entropy_source, "
        "starts, ends, special_campaign, withheld_items",
    ]


# --- R1: items exist and are in effect over the whole window --------------------------------------
def test_an_unknown_item_is_refused():
    problem = only(rule_problems(task_doc(items=["GS-001", "NOPE-9"])), "task JDZ-2025-0001", "items[1]")
    assert problem.value == '"NOPE-9"' and "R1" in problem.reason


@pytest.mark.parametrize(("code", "starts", "ends", "ok"), [
    ("OLD-001", "2025-04-01", "2025-06-30", True),  # the last day in effect is inclusive
    ("OLD-001", "2025-04-01", "2025-07-01", False),  # expires inside the window
    ("NEW-001", "2025-05-01", "2025-11-10", True),
    ("NEW-001", "2025-04-30", "2025-11-10", False),  # not yet in effect when the window opens
])
def test_an_item_must_be_in_effect_over_the_whole_window(code, starts, ends, ok):
    task = task_doc(items=[code], starts=starts, ends=ends)
    assert passes(task) is ok
    if not ok:
        assert "not over the whole window" in only(rule_problems(task), "task JDZ-2025-0001", "items[0]").reason


# --- units and the task window --------------------------------------------------------------------
def test_unknown_units_are_named():
    problems = rule_problems(task_doc(unit="360299-SCJ", partner_units=["360200-SWJ", "X"]), owner_unit="Y")
    assert only(problems, "plan", "owner_unit").value == '"Y"'
    assert only(problems, "task JDZ-2025-0001", "unit").value == '"360299-SCJ"'
    assert only(problems, "task JDZ-2025-0001", "partner_units[1]").value == '"X"'


@pytest.mark.parametrize(("starts", "ends", "field"), [
    ("2024-12-01", "2025-04-01", "starts"),
    ("2026-01-02", "2026-03-01", "starts"),
    ("2025-04-01", "2027-01-01", "ends"),
])
def test_a_window_starts_in_the_plan_year_and_ends_in_it_or_the_next(starts, ends, field):
    only(rule_problems(task_doc(starts=starts, ends=ends)), "task JDZ-2025-0001", field)


def test_a_window_may_end_in_the_next_year():
    assert passes(task_doc(starts="2025-12-01", ends="2026-02-28"))


# --- R9: 3% floor of enterprise public-information checks -----------------------------------------
def test_public_information_check_below_three_percent_names_the_task_the_stratum_and_the_rule():
    problems = rule_problems(task_doc(ratios=rates(A="0.02")))
    problem = only(problems, "task JDZ-2025-0001", "ratios.A")
    assert str(problem) == ('task JDZ-2025-0001 ratios.A "0.02": below the 3% floor of enterprise '
                            'public-information checks (GS-001; R9)')


def test_the_floor_applies_when_subject_type_is_not_restricted():
    problems = rule_problems(task_doc(filter={"region": ["3602"]}, ratios=rates(A="0.01")))
    assert "R9" in only(problems, "task JDZ-2025-0001", "ratios.A").reason


LOW = rates(A="0.001", B="0.003", C="0.003", D="0.003", U="0.003")


def test_the_floor_does_not_apply_to_other_subject_types():
    assert passes(task_doc(filter={"subject_type": ["individual", "cooperative"]}, ratios=LOW))


def test_the_floor_applies_to_every_stratum():
    problems = rule_problems(task_doc(ratios=rates(A="0", B="0.01", C="0.03", D="0.5", U="0.029999")))
    assert {p.field for p in problems} == {"ratios.A", "ratios.B", "ratios.U"}


def test_no_floor_without_a_public_information_item():
    assert passes(task_doc(items=["KEY-001"], ratios=LOW))


# --- R13: a general item's cap; key items have none -----------------------------------------------
def test_a_general_item_caps_every_ratio():
    problems = rule_problems(task_doc(items=["GEN-002"], ratios=rates(A="0.05", B="0.050001", C="0.06", D="1",
                                                                     U="0.06")))
    assert {p.field for p in problems} == {"ratios.B", "ratios.C", "ratios.D", "ratios.U"}
    assert {p.reason for p in problems} == {"above the cap 0.05 of general item GEN-002 (R13)"}


def test_the_lowest_cap_of_the_general_items_binds():
    problems = rule_problems(task_doc(items=["GEN-003", "GEN-002"], ratios={s: "0.06" for s in "ABCDU"}))
    assert len(problems) == 5 and all("GEN-002" in p.reason for p in problems)


def test_a_key_item_has_no_cap_even_if_one_is_listed():
    assert passes(task_doc(items=["KEY-001"], ratios=rates(A="0.5", B="1", C="1", D="1.000000", U="1")))


# --- R10: the ratios rise with the risk; U between B and D -----------------------------------------
@pytest.mark.parametrize(("changes", "refusal"), [
    ({"A": "0.10"}, 'task JDZ-2025-0001 ratios.A "0.10": above B\'s 0.05: low-risk A entities are checked less '
                    'than normal-risk B ones, never more (R10)'),
    ({"B": "0.11", "U": "0.11"}, 'task JDZ-2025-0001 ratios.B "0.11": above C\'s 0.10: normal-risk B entities are '
                                 'checked no more than elevated-risk C ones (R10)'),
    ({"C": "0.25"}, 'task JDZ-2025-0001 ratios.C "0.25": above D\'s 0.20: elevated-risk C entities are checked no '
                    'more than high-risk D ones (R10)'),
    ({"U": "0.04"}, 'task JDZ-2025-0001 ratios.U "0.04": below B\'s 0.05: entities not yet classified (U) are '
                    'checked at least as normal-risk B ones; only a low-risk classification earns A\'s reduction '
                    '(R10)'),
    ({"U": "0.21"}, 'task JDZ-2025-0001 ratios.U "0.21": above D\'s 0.20: entities not yet classified (U) are '
                    'checked no more than high-risk D ones (R10)'),
])
def test_each_r10_breach_is_named(changes, refusal):
    assert [str(p) for p in rule_problems(task_doc(ratios=rates(**changes)))] == [refusal]


def test_every_r10_breach_of_a_task_is_named_apart():
    problems = rule_problems(task_doc(items=["KEY-001"], ratios=rates(A="0.9", B="0.8", C="0.7", D="0.6", U="0.05")))
    assert [(p.field, p.reason.split(":")[0]) for p in problems] == [
        ("ratios.A", "above B's 0.8"), ("ratios.B", "above C's 0.7"), ("ratios.C", "above D's 0.6"),
        ("ratios.U", "below B's 0.8")]


def test_a_equal_to_b_written_differently_passes():
    assert passes(task_doc(ratios=rates(A="0.050", B="0.05")))


def test_u_may_be_anywhere_from_b_to_d():
    assert passes(task_doc(ratios=rates(U="0.05")), task_doc(task_id="JDZ-2025-0002", ratios=rates(U="0.2")))


# --- every stratum that can occur has a ratio, and no other -----------------------------------------
def test_a_task_without_a_ratio_for_u_is_refused_before_the_draw():
    ratios = rates()
    del ratios["U"]
    assert [str(p) for p in rule_problems(task_doc(ratios=ratios))] == [
        "task JDZ-2025-0001 ratios.U: is required: stratum U (not yet classified) can occur, and every stratum "
        "that can occur (A, B, C, D, U) needs a ratio, or the draw stops on it"]


def test_each_missing_stratum_is_named():
    problems = rule_problems(task_doc(items=["KEY-001"], ratios={"A": "0.1", "C": "0.05"}))
    assert [p.field for p in problems] == ["ratios.B", "ratios.D", "ratios.U"]
    assert all(p.reason.startswith("is required: stratum ") for p in problems)


def test_a_stratum_no_entity_is_ever_in_is_refused():
    problem = only(rule_problems(task_doc(ratios=rates(E="0.5"))), "task JDZ-2025-0001", "ratios.E")
    assert str(problem) == ('task JDZ-2025-0001 ratios.E "0.5": no entity is ever in stratum E: the strata are '
                            "A, B, C, D, U (credit-risk classes A-D, U not yet classified)")


# --- windows wholly in the past ----------------------------------------------------------------------
def past_problems(task, today, **options) -> list[PlanProblem]:
    try:
        check_plan(parse(plan_doc(task)), DIRECTORY, today=today, **options)
    except PlanInvalid as error:
        return error.problems
    return []


def test_a_window_wholly_in_the_past_is_refused():
    assert [str(p) for p in past_problems(task_doc(), date(2025, 11, 11))] == [
        'task JDZ-2025-0001 ends "2025-11-10": the window 2025-04-01 to 2025-11-10 is wholly in the past '
        "(today is 2025-11-11); such a task is refused unless past windows are explicitly allowed"]


def test_a_past_window_passes_when_allowed():
    assert past_problems(task_doc(), date(2026, 12, 2), allow_past=True) == []


@pytest.mark.parametrize("today", [date(2025, 11, 10), date(2025, 6, 1), date(2025, 1, 2)])
def test_a_window_open_today_or_later_passes(today):
    assert past_problems(task_doc(), today) == []


def test_an_added_task_in_the_past_is_refused_too():
    task = parse_task(json.dumps(task_doc()), "add.json")
    with pytest.raises(PlanInvalid) as caught:
        check_task(task, 2025, DIRECTORY, today=date(2026, 1, 1))
    assert [p.field for p in caught.value.problems] == ["ends"]
    check_task(task, 2025, DIRECTORY, today=date(2026, 1, 1), allow_past=True)


# --- every violation at once ----------------------------------------------------------------------
def test_check_plan_lists_every_violation_of_every_task():
    second = task_doc(task_id="JDZ-2025-0002", items=["GEN-002", "NOPE"], unit="Z",
                      ratios={"A": "0.2", "B": "0.1", "C": "0.04", "D": "0.05", "U": "0.05"})
    problems = rule_problems(task_doc(ratios=rates(A="0.01")), second, owner_unit="Q")
    assert [str(p) for p in problems] == [
        'plan owner_unit "Q": no such unit in the directory',
        'task JDZ-2025-0001 ratios.A "0.01": below the 3% floor of enterprise public-information checks (GS-001; R9)',
        'task JDZ-2025-0002 unit "Z": no such unit in the directory',
        'task JDZ-2025-0002 items[1] "NOPE": no such item in the published item list (R1)',
        'task JDZ-2025-0002 ratios.A "0.2": above the cap 0.05 of general item GEN-002 (R13)',
        'task JDZ-2025-0002 ratios.B "0.1": above the cap 0.05 of general item GEN-002 (R13)',
        'task JDZ-2025-0002 ratios.A "0.2": above B\'s 0.1: low-risk A entities are checked less than normal-risk '
        'B ones, never more (R10)',
        'task JDZ-2025-0002 ratios.B "0.1": above C\'s 0.04: normal-risk B entities are checked no more than '
        'elevated-risk C ones (R10)',
        'task JDZ-2025-0002 ratios.U "0.05": below B\'s 0.1: entities not yet classified (U) are checked at least '
        'as normal-risk B ones; only a low-risk classification earns A\'s reduction (R10)',
    ]


def test_check_task_is_the_same_rules_for_an_added_task():
    added = parse_task(json.dumps(task_doc(task_id="JDZ-2025-0100", ratios=rates(A="0.01"))), "add.json")
    with pytest.raises(PlanInvalid) as caught:
        check_task(added, 2025, DIRECTORY)
    assert [p.field for p in caught.value.problems] == ["ratios.A"]
    with pytest.raises(PlanInvalid) as caught:
        check_task(parse_task(json.dumps(task_doc()), "add.json"), 2024, DIRECTORY)
    assert [p.field for p in caught.value.problems] == ["starts"]
    check_task(parse_task(json.dumps(task_doc()), "add.json"), 2025, DIRECTORY)


# --- R3: the plan by 31 March ---------------------------------------------------------------------
def test_plan_deadline_is_31_march_of_the_year():
    assert plan_deadline(2025) == date(2025, 3, 31)


@pytest.mark.parametrize(("published_on", "on_time"), [
    (date(2024, 12, 20), True),
    (date(2025, 3, 31), True),
    (date(2025, 4, 1), False),
])
def test_published_on_time(published_on, on_time):
    assert published_on_time(2025, published_on) is on_time


# --- R6: filed with the level above; R7: special campaigns flagged apart ------------------------------
FILING = {"unit": "360000-SCJ", "filed_on": "2025-03-20", "ref": "赣市监信备〔2025〕3号"}
CAMPAIGN = {"name": "2025年燃气安全专项检查", "approval_ref": "景市监批〔2025〕7号"}


def test_a_plan_filed_with_the_level_above_and_a_special_campaign_pass():
    plan = parse(plan_doc(task_doc(), task_doc(task_id="JDZ-2025-0002", special_campaign=CAMPAIGN),
                          filed_with=FILING))
    check_plan(plan, DIRECTORY)
    assert plan.filed_with.unit == "360000-SCJ" and plan.filed_with.filed_on == date(2025, 3, 20)
    assert [t.special_campaign.approval_ref if t.special_campaign else None for t in plan.tasks] == \
        [None, "景市监批〔2025〕7号"]


def test_a_plan_is_not_filed_with_its_owner():
    problem = only(rule_problems(filed_with={**FILING, "unit": "360200-SCJ"}), "plan", "filed_with.unit")
    assert "R6" in problem.reason


def test_a_plan_is_filed_with_a_unit_of_the_directory():
    problem = only(rule_problems(filed_with={**FILING, "unit": "999999-SCJ"}), "plan", "filed_with.unit")
    assert problem.reason == "no such unit in the directory"


def test_a_special_campaign_carries_its_approval():
    problems = shape_problems(plan_doc(task_doc(special_campaign={"name": CAMPAIGN["name"]})))
    assert [(p.where, p.field) for p in problems] == [("task JDZ-2025-0001", "special_campaign.approval_ref")]


def test_without_filing_or_campaign_the_stored_document_is_as_before():
    """Both are optional: a plan loaded before them keeps its document and digest."""
    document = json.loads(canonical_json(parse(plan_doc())))
    assert set(document) == {"plan_code", "year", "owner_unit", "tasks"}
    assert "special_campaign" not in document["tasks"][0]


# --- R23: an item marked as touching secrets or privacy -------------------------------------------------
MARKED = {"item": "GS-001", "grounds": "trade_secret", "fields": ["entity_name"], "reason": "含商业秘密"}


def test_a_task_marks_its_item_for_withholding_and_the_document_keeps_it():
    plan = parse(plan_doc(task_doc(withheld_items=[MARKED])))
    check_plan(plan, DIRECTORY)
    [marked] = plan.tasks[0].withheld_items
    assert (marked.item, marked.grounds, marked.fields) == ("GS-001", "trade_secret", ["entity_name"])
    assert json.loads(canonical_json(plan))["tasks"][0]["withheld_items"] == [MARKED]
    assert "withheld_items" not in json.loads(canonical_json(parse(plan_doc())))["tasks"][0]


@pytest.mark.parametrize("marking, field, reason", [
    ({**MARKED, "item": "SP-001"}, "withheld_items", "marks SP-001, not among the task's items"),
    ({**MARKED, "grounds": "secret"}, "withheld_items[0].grounds", "must be one of state_secret, trade_secret, privacy"),
    ({**MARKED, "fields": ["uscc"]}, "withheld_items[0].fields", "uscc: only entity_name, category, check_date may be"),
    ({**MARKED, "fields": []}, "withheld_items[0].fields", "at least 1 item"),
    ({**MARKED, "reason": " "}, "withheld_items[0].reason", "must not be blank"),
    ({**MARKED, "by": "x"}, "withheld_items[0].by", "unknown key; the keys are: item, grounds, fields, reason"),
])
def test_a_wrong_item_marking_is_refused_naming_its_key(marking, field, reason):
    [problem] = shape_problems(plan_doc(task_doc(withheld_items=[marking])))
    assert (problem.where, problem.field) == ("task JDZ-2025-0001", field)
    assert reason in problem.reason


def test_an_item_is_marked_once():
    [problem] = shape_problems(plan_doc(task_doc(withheld_items=[MARKED, {**MARKED, "grounds": "privacy"}])))
    assert problem.field == "withheld_items" and "lists GS-001 more than once" in problem.reason


# --- exactness: ratio comparisons are fractions, never floats -------------------------------------
@st.composite
def ratio_texts(draw) -> tuple[str, Fraction]:
    """A ratio string of the protocol grammar and its value, computed apart from parse_ratio."""
    if draw(st.booleans()):
        zeros = draw(st.integers(0, 6))
        return ("1." + "0" * zeros if zeros else "1"), Fraction(1)
    places = draw(st.integers(0, 6))
    if places == 0:
        return "0", Fraction(0)
    digits = draw(st.integers(0, 10**places - 1))
    return f"0.{digits:0{places}d}", Fraction(digits, 10**places)


@given(ratio_texts())
def test_r9_floor_is_exact(ratio):
    text, value = ratio
    assert passes(task_doc(ratios=rates(A=text, B=text, C="1", D="1", U="1"))) is (value >= Fraction(3, 100))


@given(ratio_texts(), ratio_texts())
def test_r10_comparison_is_exact(a, b):
    ok = passes(task_doc(items=["KEY-001"], ratios=rates(A=a[0], B=b[0], C="1", D="1", U="1")))
    assert ok is (a[1] <= b[1])


@given(ratio_texts())
def test_r13_cap_is_exact(ratio):
    text, value = ratio
    assert passes(task_doc(items=["GEN-002"], ratios=rates(A="0", B="0", C=text, D=text, U="0"))) is (
        value <= Fraction(5, 100))


def test_r9_boundaries():
    assert passes(task_doc(ratios=rates(A="0.03", B="0.03")))
    assert passes(task_doc(ratios=rates(A="0.030000", B="0.030000")))
    assert not passes(task_doc(ratios=rates(A="0.029999", B="0.029999")))



# --- caps on a plan's size ----------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "field", "reason"), [
    ({"items": [f"GS-{i:03d}" for i in range(201)]}, "items", "lists 201; the cap is 200 items per task"),
    ({"partner_units": [f"U{i}" for i in range(101)]}, "partner_units",
     "lists 101; the cap is 100 partner units per task"),
    ({"filter": {"industry": [f"I{i}" for i in range(2001)]}}, "filter.industry",
     "lists 2001; the cap is 2000 values per filter key"),
    ({"task_code": "号" * 101}, "task_code", "is 101 characters; the cap is 100"),
    ({"name": "抽" * 120000}, "name", "is 120000 characters; the cap is 200"),
    ({"entropy_source": "x" * 201}, "entropy_source", "is 201 characters; the cap is 200"),
])
def test_a_list_or_text_beyond_its_cap_is_refused_naming_the_cap(changes, field, reason):
    assert only(shape_problems(plan_doc(task_doc(**changes))), "task JDZ-2025-0001", field).reason == reason


def test_a_plan_of_more_than_2000_tasks_is_refused():
    tasks = [task_doc(task_id=f"JDZ-2025-{i:04d}") for i in range(2001)]
    assert only(shape_problems(plan_doc(*tasks)), "plan", "tasks").reason == "lists 2001; the cap is 2000 tasks per plan"


def test_the_caps_themselves_pass():
    tasks = [task_doc(task_id=f"JDZ-2025-{i:04d}") for i in range(2000)]
    assert len(parse(plan_doc(*tasks)).tasks) == 2000
    parse(plan_doc(task_doc(task_code="号" * 100, name="抽" * 200, partner_units=[f"U{i}" for i in range(100)])))


@pytest.mark.parametrize("as_task", [False, True])
def test_a_file_beyond_the_byte_cap_is_refused_before_it_is_read(as_task):
    raw = b" " * (MAX_FILE_BYTES + 1)
    with pytest.raises(PlanInvalid) as caught:
        (parse_task if as_task else parse_plan)(raw, "big.json")
    assert str(caught.value) == (f"big.json: {'task' if as_task else 'plan'}: the file is {MAX_FILE_BYTES + 1} bytes; "
                                 f"the cap is {MAX_FILE_BYTES} bytes for a plan or task file")


# --- text that would mislead a reader -----------------------------------------------------------------
@pytest.mark.parametrize(("field", "value", "reason"), [
    ("name", "年度抽查\u202eTXT.exe", "holds U+202E at character 5: RIGHT-TO-LEFT OVERRIDE, a bidirectional or "
                                   "line control that reorders or breaks what a reader sees; it is refused"),
    ("task_code", "抽查\x1b[2J1号", "holds U+001B at character 3: a control character (terminal escape sequences "
                                   "start with one); it is refused"),
    ("entropy_source", "福利彩票\n3D", "holds U+000A at character 5: a line break or tab; this field is one line; "
                                    "it is refused"),
])
def test_control_and_bidi_characters_in_a_text_field_are_refused(field, value, reason):
    assert only(shape_problems(plan_doc(task_doc(**{field: value}))), "task JDZ-2025-0001", field).reason == reason


# --- entropy ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["None", "NONE", " none", "none "])
def test_an_entropy_source_written_like_none_is_refused(source):
    problem = only(shape_problems(plan_doc(task_doc(entropy_source=source))), "task JDZ-2025-0001", "entropy_source")
    assert problem.reason == ('write "none" exactly for no external entropy; any other text names a public value '
                              "the draw waits for")


LOTTERY = "福利彩票3D 2025091期开奖号码"


@pytest.mark.parametrize(("source", "value", "refusal"), [
    (LOTTERY, "", f"entropy '': empty; the task announced the entropy source {LOTTERY!r}, enter its published value"),
    (LOTTERY, "   ", f"entropy '   ': empty; the task announced the entropy source {LOTTERY!r}, enter its published "
                     "value"),
    (LOTTERY, " 123", "entropy ' 123': starts or ends with a space; enter the published value exactly, as a verifier "
                      "will type it"),
    (LOTTERY, "12\n3", "entropy '12\\n3': must be at most 256 printable ASCII characters, no line feed"),
    (LOTTERY, "一二三", "entropy '一二三': must be at most 256 printable ASCII characters, no line feed"),
    (LOTTERY, "9" * 257, "entropy is 257 characters; the cap is 256"),
    (LOTTERY, 123, "entropy must be text, not int"),
    ("none", "123", 'entropy \'123\': the task announced no entropy source ("none"), so it takes no value'),
])
def test_an_entropy_value_that_does_not_fit_its_source_is_refused(source, value, refusal):
    with pytest.raises(DrawError) as caught:
        check_entropy_value(source, value)
    assert str(caught.value) == refusal


@pytest.mark.parametrize(("source", "value"), [(LOTTERY, "123"), (LOTTERY, "~" * 256), ("none", "")])
def test_an_entropy_value_that_fits_its_source_passes(source, value):
    assert check_entropy_value(source, value) == value


def test_the_demo_template_keeps_every_rule_that_needs_no_directory():
    """examples/plan-template.json: every stratum, R10, the caps; its items and units stand in as given."""
    template = parse_plan((Path(__file__).parents[2] / "examples" / "plan-template.json").read_bytes(), "template")
    directory = PlanDirectory(
        items={code: item(code, category="key") for task in template.tasks for code in task.items},
        units=frozenset({template.owner_unit, *(unit for task in template.tasks for unit in task.all_units)}))
    check_plan(template, directory, today=date(template.year, 1, 1))
