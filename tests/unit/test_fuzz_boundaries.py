"""Bad input at the pure boundaries (issue 7): hypothesis feeds malformed values, and the only
outcome is the boundary's own refusal with a message an operator can act on — never another
exception.

- Plan files (`parse_plan`, `parse_task`): random bytes and text, random JSON, and the contract's
  example with one thing broken (a wrong type, a bad date or ratio, an unknown or missing key, a
  huge or exotic string, raw-text damage) raise only `PlanInvalid`; every problem names where
  (plan, task or position) and the key that is wrong, and no line of the message is huge.
- Update and signal payloads (domain/messages/): a broken payload raises only pydantic's
  ValidationError, each error locating the field; text that cannot be stored or sent (a NUL, a
  lone surrogate such as a non-UTF-8 command-line argument decodes to) is refused there too.
- USCCs (domain/uscc.py) and ratios (domain/draw.py `parse_ratio`): a reason or their own error.
"""
from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.messages.plan import Adjustment
from domain.messages.target import CheckRecord, FieldSignal, ManualAssignment, Recheck, ResultEntry, Review
from domain.messages.task import EntropyEntry, Redraw, TargetedEntity
from domain.draw import DrawError, parse_ratio
from domain.plan import PlanFile, PlanInvalid, PlanTask, TaskFilter
from domain.plan_file import parse_plan, parse_task
from domain.uscc import ALPHABET, InvalidUSCC, check_char, make_uscc, uscc_problem

LINE_LIMIT = 1_000  # no line of an error message longer than this, whatever the input's size
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- strategies -------------------------------------------------------------------------------
def _texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30),
        st.text(st.characters(codec="utf-8"), max_size=30),  # any Unicode: CJK, emoji, RTL, combining
        st.sampled_from(["", " ", "\t", "\u3000", "\x00", "a\x00b", "\ufeff", "\u202e", "Ａ", "３", "²",
                         "\ud800", "x\udcff", "\U0001f600", "null", "true", "0", "-1", "NaN"]),
        st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=3), st.integers(2_000, 40_000)),  # huge
    )


SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),  # NaN and ±Infinity too: json.dumps writes them and json.loads reads them
    _texts(),
)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts(), inner, max_size=4),
                    max_leaves=12)

BAD_DATES = st.one_of(
    st.sampled_from(["2025-02-30", "2025-13-01", "2025-00-10", "2025-04-31", "0000-01-01", "25-04-01",
                     "2025/04/01", "2025-4-1", "20250401", "", " 2025-04-01", "2025-04-01 ", "2025-04-01T00:00",
                     "２０２５-０４-０１", "9999-99-99", "2025-04-01\n", "today"]),
    st.integers(), st.floats(), st.lists(st.integers(), max_size=3),
    st.from_regex(r"[0-9]{4}-(1[3-9]|[2-9][0-9])-[0-9]{2}", fullmatch=True),  # month out of range
)
BAD_RATIOS = st.one_of(
    st.sampled_from(["1.5", "-0.1", ".5", "0.", "0.1234567", "0.5 ", " 0.5", "５", "0.０5", "1e-2", "0,05", "1.000001",
                     "0x1", "", "NaN", "Infinity", "+0.1", "0.05\n", "1/20", "5%", "01", "00.5", "2"]),
    st.floats(), st.integers(), st.none(), st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=7).map(str).filter(lambda s: "E" not in s and len(s.split(".")[-1]) == 7),
)
BAD_STRATA = st.sampled_from(["a", "", "1", "AA AA", "Ａ", "A" * 17, "A.B", "\ud800", "A\x00"]) | _texts().filter(
    lambda s: re.fullmatch(r"[A-Z][A-Za-z0-9_-]{0,15}", s) is None)


def plan_task(**changes) -> dict:
    """The contract's example task (shared/spec/contract.md, "Plan file")."""
    task = {
        "task_id": "JDZ-2025-0001", "task_code": "景市监抽查〔2025〕1号", "name": "2025年企业公示信息双随机抽查",
        "items": ["GS-001"], "unit": "360202-SCJ", "partner_units": [], "level": "county", "draw_level": "city",
        "filter": {"subject_type": ["enterprise"], "region": ["3602"]},
        "ratios": {"A": "0.03", "B": "0.05", "C": "0.10", "D": "0.20", "U": "0.05"},
        "frequency_cap": 1, "team_size": 2, "load_cap": 0, "entropy_source": "none",
        "starts": "2025-04-01", "ends": "2025-11-10",
    }
    return {**task, **changes}


def plan_document(**changes) -> dict:
    return {"plan_code": "JDZ-2025", "year": 2025, "owner_unit": "360200-SCJ", "tasks": [plan_task()], **changes}


PLAN_KEYS = list(PlanFile.model_fields)
TASK_KEYS = list(PlanTask.model_fields)
FILTER_KEYS = list(TaskFilter.model_fields)


# --- plan files -------------------------------------------------------------------------------
def refused(raw: bytes | str, *, as_task: bool = False) -> PlanInvalid | None:
    """parse_plan's outcome: None when the document passes; PlanInvalid; any other exception fails the test."""
    try:
        (parse_task if as_task else parse_plan)(raw, "plan.json")
    except PlanInvalid as error:
        check_message(error)
        return error
    return None


def check_message(error: PlanInvalid) -> None:
    assert error.problems, "PlanInvalid without a problem"
    for problem in error.problems:
        assert problem.where.strip(), f"a problem that names no location: {problem!r}"
        assert problem.reason.strip(), f"a problem without a reason: {problem!r}"
    text = str(error)
    assert text.strip()
    for line in text.splitlines():
        assert line.startswith("plan.json: "), line[:200]
        assert len(line) <= LINE_LIMIT, f"a message line of {len(line)} characters: {line[:200]}…"


def names(error: PlanInvalid, field: str, *, task: bool) -> bool:
    """Some problem is about `field` (a key of the plan, or of its only task when `task`)."""
    for problem in error.problems:
        in_task = problem.where.startswith(("task ", "tasks[")) or problem.where == "task"
        if task != in_task and not (not task and field == "tasks" and in_task):
            continue
        if field == "tasks" and in_task:
            return True
        head = problem.field
        if head == field or head.startswith((field + ".", field + "[")):
            return True
    return False


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_are_refused_as_a_plan(raw):
    error = refused(raw)
    assert error is not None


@FUZZ
@given(st.text(max_size=300))
def test_random_text_is_refused_as_a_plan(raw):
    assert refused(raw) is not None
    assert refused(raw, as_task=True) is not None


@FUZZ
@given(JSON, st.booleans())
def test_random_json_is_refused_as_a_plan_or_a_task(value, ascii_only):
    raw = json.dumps(value, ensure_ascii=ascii_only)
    assert refused(raw) is not None
    assert refused(raw, as_task=True) is not None


def _wrong(key: str) -> st.SearchStrategy:
    """Values for `key` that are mostly wrong; the test decides with the parser, then checks the message."""
    special = {"starts": BAD_DATES, "ends": BAD_DATES, "year": st.integers() | SCALARS, "ratios": st.dictionaries(
        BAD_STRATA | st.just("A"), BAD_RATIOS | JSON, max_size=3)}
    return st.one_of(JSON, special.get(key, JSON))


def _break_one_key(data, doc: dict, keys) -> tuple[str, str]:
    """Delete one of `keys` from `doc` or give it a mostly wrong value; (key, action)."""
    key = data.draw(st.sampled_from(keys), label="key")
    action = data.draw(st.sampled_from(["replace", "delete"]), label="action")
    if action == "delete":
        doc.pop(key, None)  # an optional key the document leaves out is absent already
    else:
        doc[key] = data.draw(_wrong(key), label="value")
    return key, action


@FUZZ
@given(st.data())
def test_a_plan_with_one_key_of_the_plan_broken(data):
    doc = plan_document()
    key, action = _break_one_key(data, doc, PLAN_KEYS)
    error = refused(json.dumps(doc, ensure_ascii=data.draw(st.booleans())))
    if action == "delete" and PlanFile.model_fields[key].is_required():
        assert error is not None and names(error, key, task=False), error
    elif error is not None:
        assert names(error, key, task=False), (key, str(error)[:2000])


@FUZZ
@given(st.data())
def test_a_plan_with_one_key_of_a_task_broken(data):
    task = plan_task()
    key, action = _break_one_key(data, task, TASK_KEYS)
    as_task = data.draw(st.booleans(), label="as_task")  # the same line, as `plan adjust --add-task` reads it
    raw = json.dumps(task if as_task else plan_document(tasks=[task]), ensure_ascii=data.draw(st.booleans()))
    error = refused(raw, as_task=as_task)
    if action == "delete" and PlanTask.model_fields[key].is_required() and key != "draw_level":  # defaults to level
        assert error is not None
    if error is not None:
        assert names(error, key, task=True), (key, str(error)[:2000])


@FUZZ
@given(st.sampled_from(["starts", "ends"]), BAD_DATES)
def test_a_bad_date_is_refused_naming_its_key(key, value):
    error = refused(json.dumps(plan_document(tasks=[plan_task(**{key: value})])))
    assert error is not None and names(error, key, task=True), str(error)


@FUZZ
@given(st.sampled_from(["A", "B", "C", "D", "U"]), BAD_RATIOS)
def test_a_bad_ratio_is_refused_naming_its_stratum(stratum, value):
    ratios = {**plan_task()["ratios"], stratum: value}
    error = refused(json.dumps(plan_document(tasks=[plan_task(ratios=ratios)])))
    assert error is not None and names(error, f"ratios.{stratum}", task=True), str(error)


@FUZZ
@given(BAD_STRATA)
def test_a_bad_stratum_is_refused(stratum):
    ratios = {**plan_task()["ratios"], stratum: "0.05"}
    assume(len(ratios) == 6)  # "A"-like keys collapse
    error = refused(json.dumps(plan_document(tasks=[plan_task(ratios=ratios)])))
    assert error is not None and names(error, "ratios", task=True), str(error)


@FUZZ
@given(st.sampled_from(["plan", "task", "filter"]), _texts(), JSON)
def test_an_unknown_key_is_refused_naming_it(level, key, value):
    allowed = {"plan": PLAN_KEYS, "task": TASK_KEYS, "filter": FILTER_KEYS}[level]
    assume(key not in allowed)
    doc = plan_document()
    if level == "plan":
        doc[key] = value
    elif level == "task":
        doc["tasks"][0][key] = value
    else:
        doc["tasks"][0]["filter"][key] = value
    error = refused(json.dumps(doc))
    assert error is not None
    # "unknown key", or (first) "not text" when the key or its value holds a NUL or a lone surrogate
    about = [p for p in error.problems if "unknown key" in p.reason or "not text" in p.reason]
    assert about, str(error)[:2000]
    if re.fullmatch(r"[^\s\"\\.\[\]\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]{1,40}", key):
        assert any(re.search(rf"(^|\.){re.escape(key)}($|[.\[])", p.field) for p in about), about
    else:  # quoted with its control characters, surrogates and line breaks escaped, and shortened
        assert any('"' in p.field for p in about), about


@FUZZ
@given(st.sampled_from(["task_code", "name", "entropy_source"]), _texts())
def test_any_text_in_a_free_text_key_passes_or_is_refused_naming_it(key, value):
    error = refused(json.dumps(plan_document(tasks=[plan_task(**{key: value})]), ensure_ascii=False))
    if error is None:  # what passes can be stored and hashed: UTF-8 text without NUL
        value.encode("utf-8")
        assert "\x00" not in value and value.strip()
    else:
        assert names(error, key, task=True), str(error)[:2000]


RAW_DAMAGE = st.sampled_from([
    "truncate", "insert", "delete", "nesting", "huge-int", "surrogate-key", "surrogate-value", "nul", "bom",
    "not-utf8", "duplicate-key",
])


@FUZZ
@given(RAW_DAMAGE, st.data())
def test_damaged_plan_text_is_refused_with_a_position(damage, data):
    text = json.dumps(plan_document(), ensure_ascii=False, indent=1)
    if damage == "truncate":
        raw = text[: data.draw(st.integers(0, len(text) - 1))]
    elif damage == "insert":
        at = data.draw(st.integers(0, len(text)))
        raw = text[:at] + data.draw(st.sampled_from(list(",:{}[]\"\\") + ["/*", "'", "undefined"])) + text[at:]
    elif damage == "delete":
        at = data.draw(st.integers(0, len(text) - 1))
        raw = text[:at] + text[at + 1:]
    elif damage == "nesting":
        depth = data.draw(st.integers(50, 100_000))
        raw = text.replace('"partner_units": []', '"partner_units": ' + "[" * depth + "]" * depth)
    elif damage == "huge-int":
        raw = text.replace('"frequency_cap": 1', '"frequency_cap": ' + "9" * data.draw(st.integers(4_000, 20_000)))
    elif damage == "surrogate-key":
        raw = text.replace('"load_cap"', '"load_cap\\ud800"')
    elif damage == "surrogate-value":
        raw = text.replace('"none"', '"n\\udcffone"')
    elif damage == "nul":
        raw = text.replace('"none"', '"no\\u0000ne"')
    elif damage == "bom":
        raw = ("\ufeff\ufeff" + text)
    elif damage == "not-utf8":
        raw = text.encode("utf-8").replace("景".encode("utf-8"), "景".encode("gbk"))
    else:
        raw = text.replace('"year": 2025', '"year": 2025, "year": 2026')
    if damage in ("insert", "delete", "truncate"):
        error = refused(raw)  # some insertions (a space-like '' or a '\\' in a string) can still parse
        if error is None:
            return
    else:
        error = refused(raw)
        assert error is not None, damage
    if damage in ("truncate", "insert", "delete", "nesting", "huge-int", "bom", "not-utf8"):
        positioned = any(re.search(r"line [0-9]+ column [0-9]+|byte [0-9]+", p.where) or p.field
                         for p in error.problems)
        assert positioned, str(error)[:500]
    if damage in ("surrogate-key", "surrogate-value", "nul"):
        assert any("load_cap" in p.field or "entropy_source" in p.field for p in error.problems), str(error)


def test_the_example_still_passes():
    plan = parse_plan(json.dumps(plan_document(), ensure_ascii=False), "plan.json")
    assert plan.tasks[0].ratio_fractions()["A"] == Fraction(3, 100)
    assert parse_task(json.dumps(plan_task()), "task.json").task_id == "JDZ-2025-0001"


# --- update and signal payloads ----------------------------------------------------------------
GOOD_PAYLOADS = {
    CheckRecord: {"inspectors": ["I001", "I002"], "method": "onsite", "certificates_shown": True,
                          "evidence": ["s3://bucket/a.jpg#" + "0" * 64]},
    ResultEntry: {"inspector": "I001", "category": "no_issue", "note": "", "findings": {"CP1": "pass"}},
    Review: {"reviewer": "R001", "approve": False, "note": "补充照片"},
    ManualAssignment: {"unit": "360202-SCJ", "inspectors": ["I001", "I002"], "by": "S001",
                               "reason": "回避"},
    Recheck: {"inspector": "I001", "passed": True, "note": ""},
    FieldSignal: {"kind": "arrive", "inspector": "I001"},
    Adjustment: {"kind": "cancel", "task_id": "JDZ-2025-0001", "reason": "上级通知", "approver": "S001"},
    Redraw: {"reason": "系统故障", "approver": "S001"},
    TargetedEntity: {"uscc": "91360200104133633W", "reason": "投诉举报", "legal_basis": "《产品质量法》第十五条"},
    EntropyEntry: {"value": "2025-04-01 SSE close 3245.67"},
}
PAYLOADS = sorted(GOOD_PAYLOADS, key=lambda model: model.__name__)


def validation_errors(model, payload) -> list[dict] | None:
    """None when the payload is accepted; its errors when refused; any other exception fails the test."""
    try:
        model.model_validate(payload)
    except ValidationError as error:
        errors = error.errors()
        assert errors
        str(error)  # the message renders, whatever the input
        return errors
    return None


def storable(value) -> bool:
    """Text every store and every payload can carry: UTF-8 encodable, no NUL."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, dict):
        return all(storable(k) and storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(storable(v) for v in value)
    return True


@pytest.mark.parametrize("model", PAYLOADS, ids=lambda model: model.__name__)
def test_the_good_payloads_pass(model):
    model.model_validate(GOOD_PAYLOADS[model])


@FUZZ
@given(st.sampled_from(PAYLOADS), st.data())
def test_a_payload_with_one_field_broken_is_refused_naming_the_field(model, data):
    payload = dict(GOOD_PAYLOADS[model])
    field = data.draw(st.sampled_from(list(model.model_fields)), label="field")
    action = data.draw(st.sampled_from(["replace", "delete"]), label="action")
    if action == "delete":
        payload.pop(field, None)  # an optional field may be absent already
    else:
        payload[field] = data.draw(JSON, label="value")
    errors = validation_errors(model, payload)
    if errors is None:
        assert action == "replace" or not model.model_fields[field].is_required()
        if action == "replace":
            assert storable(payload[field]), f"{model.__name__}.{field} accepted text no store can hold"
        return
    for error in errors:
        assert error["loc"] and error["loc"][0] == field, (model.__name__, field, error)


@FUZZ
@given(st.sampled_from(PAYLOADS), _texts(), JSON)
def test_an_unknown_field_is_refused_naming_it(model, key, value):
    assume(key not in model.model_fields)
    errors = validation_errors(model, {**GOOD_PAYLOADS[model], key: value})
    assert errors is not None
    if re.search("[\ud800-\udfff]", key):  # pydantic cannot even read such a key (no JSON payload carries one)
        assert [e["type"] for e in errors] == ["string_unicode"]
    else:
        assert [e["type"] for e in errors] == ["extra_forbidden"] and errors[0]["loc"] == (key,)


@FUZZ
@given(st.sampled_from(PAYLOADS), JSON)
def test_a_payload_that_is_not_an_object_is_refused(model, value):
    assume(not isinstance(value, dict))
    errors = validation_errors(model, value)
    assert errors is not None and errors[0]["type"] == "model_type"


@FUZZ
@given(st.sampled_from(PAYLOADS), st.data())
def test_text_no_store_can_hold_is_refused_in_every_text_field(model, data):
    """A NUL (PostgreSQL text refuses it: the activity would retry for ever) or a lone surrogate (what a
    non-UTF-8 command-line argument decodes to; the payload converter cannot encode it) is refused by
    the payload itself, naming the field, before anything is sent or stored."""
    texts = [name for name, value in GOOD_PAYLOADS[model].items() if isinstance(value, (str, list, dict))
             and name != "evidence"]
    field = data.draw(st.sampled_from(texts), label="field")
    bad = data.draw(st.sampled_from(["\x00", "\ud800", "\udcff", "a\x00b"]), label="bad")
    good = GOOD_PAYLOADS[model][field]
    if isinstance(good, list):
        value = [*good[:-1], good[-1] + bad] if good else [bad]
    elif isinstance(good, dict):
        value = {**good, "CP" + bad: "pass"} if data.draw(st.booleans()) else {k: v + bad for k, v in good.items()}
    else:
        value = good + bad
    errors = validation_errors(model, {**GOOD_PAYLOADS[model], field: value})
    assert errors is not None, f"{model.__name__}.{field} accepts {value!r}"
    assert all(e["loc"][0] == field for e in errors), errors


@pytest.mark.parametrize("model, field", [(ManualAssignment, "reason"), (TargetedEntity, "reason"),
                                          (TargetedEntity, "legal_basis"), (Adjustment, "reason"), (Redraw, "reason")])
@pytest.mark.parametrize("blank", [" ", "\t", "\u3000", "\n"])
def test_a_blank_reason_is_refused(model, field, blank):
    errors = validation_errors(model, {**GOOD_PAYLOADS[model], field: blank})
    assert errors is not None and errors[0]["loc"] == (field,)


# --- USCCs ---------------------------------------------------------------------------------------
BODIES = st.text(st.sampled_from(ALPHABET), min_size=17, max_size=17)


@FUZZ
@given(st.one_of(st.text(max_size=40), st.text(st.sampled_from(ALPHABET + "IOSVZ iosvz０１-"), max_size=20),
                 BODIES.map(lambda body: body + "?")))
def test_any_text_gets_a_uscc_reason_or_passes(value):
    problem = uscc_problem(value)
    if problem is None:
        assert len(value) == 18 and set(value) <= set(ALPHABET) and check_char(value[:17]) == value[17]
    else:
        assert problem.strip() and len(problem) < LINE_LIMIT
    if len(value) != 17:
        with pytest.raises(InvalidUSCC):
            check_char(value)
    elif set(value) <= set(ALPHABET):
        assert check_char(value) in ALPHABET
    else:
        with pytest.raises(InvalidUSCC):
            check_char(value)


@FUZZ
@given(BODIES, st.integers(0, 17), st.sampled_from(ALPHABET))
def test_a_changed_character_is_caught_by_the_check_digit(body, position, replacement):
    good = make_uscc(body)
    bad = good[:position] + replacement + good[position + 1:]
    assume(bad != good)
    assert uscc_problem(good) is None
    assert uscc_problem(bad) is not None  # GB 32100: any single substitution changes the check character


# --- ratios --------------------------------------------------------------------------------------
@FUZZ
@given(st.one_of(BAD_RATIOS, st.text(max_size=12), st.text(st.sampled_from("0123456789.-+e "), max_size=10),
                 JSON))
def test_parse_ratio_gives_an_exact_ratio_or_a_draw_error(value):
    try:
        ratio = parse_ratio(value)
    except DrawError as error:
        assert "ratio" in str(error) and str(error).strip()
        return
    assert isinstance(value, str) and re.fullmatch(r"0(\.[0-9]{1,6})?|1(\.0{1,6})?", value)
    assert 0 <= ratio <= 1 and ratio == Fraction(value) and (ratio * 10**6).denominator == 1


@FUZZ
@given(st.integers(0, 10**6), st.integers(1, 6))
def test_every_six_decimal_ratio_parses_exactly(millionths, places):
    text = f"0.{millionths:06d}"[: 2 + places] if millionths < 10**6 else "1." + "0" * places
    ratio = parse_ratio(text)
    assert ratio == Fraction(text)
