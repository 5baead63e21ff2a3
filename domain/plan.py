"""The annual plan file (年度抽查工作计划, contract.md "Plan file (JSON)"): its shape and its rules.

Pure: the caller reads the directories and passes them in.

- The shape of a file (keys, grammars, types, one task window) is the models below; reading a file into
  them, with every problem located, is domain/plan_file.py (`parse_plan` / `parse_task`).
- `check_plan` / `check_task` check a parsed plan against its year, the directories and today (R1,
  R9, R10, R13, every stratum, windows in the past) and report every violation at once. A task added
  by an adjustment (R5) goes through `check_task`, the same code path as a task of the plan.

Whatever would fail later is refused here, each refusal naming the task, the key and the cap or
rule: a stratum without a ratio (the draw would stop on it), a window wholly in the past, a file or a
list or a text beyond its cap (`MAX_*` below), an entropy source written like "none" but not "none".

R4 (a plan line states 抽查对象, 发起方式, 抽查层级, 抽查比例 and 频次, 时间安排) is the shape
itself: filter and items, unit and partner_units, level and draw_level, ratios and frequency_cap,
starts and ends are all required keys (draw_level defaults to level).

Ratios are compared as exact fractions, never floats: "0.03" meets the 3% floor of R9 and
"0.029999" does not.

R10 (ratios and frequency rise with the credit-risk class) is read as: A ≤ B ≤ C ≤ D, and U (not yet
classified) between B and D. U is not below B because A's reduction ("无事不扰") is earned by a
low-risk classification that a U entity does not have, so it is checked at least as a normal (B)
one; and no class is checked more than the high-risk D. Frequency: an A entity is drawn at most once a
year across all tasks (R12, the freeze's a_class_already_drawn exclusion) and every other class up
to the task's `frequency_cap` (R14, at least 1), so the frequencies rise with the class whatever the
file says; a cap per class would be a new key of the plan file (contract.md).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from domain.draw import NO_ENTROPY, parse_ratio, validate_stratum, validate_task_id
from domain.public import WITHHOLDABLE, WITHHOLDING_GROUNDS
from domain.text import TextRefused, check_line

# R9 (企业公示信息抽查办法 Art.4): at least 3% of enterprises for public-information checks.
PUBLIC_INFO_FLOOR = Fraction(3, 100)

# Every stratum an entity can be in (contract.md entities.csv: risk_class A-D, empty is U), lowest risk first.
STRATA = ("A", "B", "C", "D", "U")
_STRATUM_MEANING = {"A": "low risk", "B": "normal risk", "C": "elevated risk", "D": "high risk",
                    "U": "not yet classified"}  # named in refusals

# Caps on a plan's size. Generous for any real bureau, so only a mistaken or hostile file meets them,
# and it is refused before it costs memory, a database row or a page nobody can read.
MAX_FILE_BYTES = 8 * 1024 * 1024  # a plan or task file; a province's plan of 1,000 lines is under 1 MB
MAX_TASKS = 2000  # per plan: a province's ~100 counties times ~10 business lines is about 1,000 lines
MAX_ITEMS = 200  # per task: a joint "综合查一次" task lists tens; a provincial item list holds a few hundred
MAX_PARTNERS = 100  # partner units of one joint task; a county has about 30 departments
MAX_FILTER_VALUES = 2000  # per filter key: GB/T 4754 has about 1,400 industry classes, listed one by one
MAX_TASK_CODE = 100  # characters; official numbers such as 景市监抽查〔2025〕1号 are about 15
MAX_NAME = 200  # characters; task names run to about 40
MAX_ENTROPY_SOURCE = 200  # characters; e.g. 福利彩票3D 2025091期开奖号码, with its date

_T = TypeVar("_T")


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text


def _distinct(values: list[_T]) -> list[_T]:
    twice = sorted({str(v) for v, n in Counter(values).items() if n > 1})
    if twice:
        raise ValueError(f"lists {', '.join(twice)} more than once")
    return values


def _alternatives(values: list[_T]) -> list[_T]:
    # An empty list would match nothing and silently empty the population.
    if not values:
        raise ValueError("an empty list matches nothing; leave the key out to not restrict")
    return _distinct(values)


def _at_most(cap: int, what: str) -> BeforeValidator:
    """Refuse a list longer than `cap` before its entries are validated one by one."""
    def check(values: object) -> object:
        if isinstance(values, list) and len(values) > cap:
            raise ValueError(f"lists {len(values)}; the cap is {cap} {what}")
        return values
    return BeforeValidator(check)


def _bounded(cap: int) -> AfterValidator:
    """One line of at most `cap` characters, no control or bidi character (domain/text.py)."""
    def check(text: str) -> str:
        try:
            return check_line(text, "text", cap)
        except TextRefused as refused:
            raise ValueError(refused.reason) from None
    return AfterValidator(check)


def _entropy_source(text: str) -> str:
    # Anything but "none" names a public value the draw waits for: "None" would make it wait for one.
    if text != NO_ENTROPY and text.strip().lower() == NO_ENTROPY:
        raise ValueError(f'write "{NO_ENTROPY}" exactly for no external entropy; any other text names a '
                         "public value the draw waits for")
    return text


def _ratio_text(text: str) -> str:
    parse_ratio(text)  # the draw's grammar; the string itself is kept, exact
    return text


def _iso_date(value: object) -> object:
    # Lax pydantic would also take a Unix timestamp; the contract says YYYY-MM-DD.
    if isinstance(value, date) or (isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value)):
        return value
    raise ValueError("must be a date YYYY-MM-DD")


_Str = Annotated[str, StringConstraints(strict=True)]
Text = Annotated[_Str, AfterValidator(_not_blank)]
TaskCode = Annotated[Text, _bounded(MAX_TASK_CODE)]
Name = Annotated[Text, _bounded(MAX_NAME)]
EntropySource = Annotated[Text, _bounded(MAX_ENTROPY_SOURCE), AfterValidator(_entropy_source)]
# Unit, item, tag and label codes (contract.md, CSV files).
Code = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9._-]{1,32}$")]
TaskId = Annotated[_Str, AfterValidator(validate_task_id)]
Stratum = Annotated[_Str, AfterValidator(validate_stratum)]
Ratio = Annotated[_Str, AfterValidator(_ratio_text)]
RegionPrefix = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9]{1,6}$")]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Count = Annotated[int, Field(strict=True, le=2**31 - 1)]  # stored in INTEGER columns (dispatch_pools)
Alternatives = Annotated[list[_T], _at_most(MAX_FILTER_VALUES, "values per filter key"),
                         AfterValidator(_alternatives)]

Level = Literal["province", "city", "county", "station"]
SubjectType = Literal["enterprise", "individual", "cooperative", "foreign_rep"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskFilter(_Frozen):
    """Who may be drawn. Keys combine with AND, values within a key with OR; an absent key
    (None) does not restrict. `region` and `industry` match by prefix, `labels` if any matches."""

    subject_type: Alternatives[SubjectType] | None = None
    region: Alternatives[RegionPrefix] | None = None
    industry: Alternatives[Code] | None = None
    labels: Alternatives[Code] | None = None

    @property
    def includes_enterprises(self) -> bool:
        return self.subject_type is None or "enterprise" in self.subject_type


class SpecialCampaign(_Frozen):
    """R7: a special campaign (专项检查), not part of the routine random plan: in fields the random-check
    items cover it is the exception, so it is flagged apart, named, and carries its approval."""

    name: Name
    approval_ref: Name  # the approving document's number


class Filing(_Frozen):
    """R6: the plan filed (备案) with the level above: the unit filed with, when, and its reference."""

    unit: Code
    filed_on: IsoDate
    ref: Name | None = None


def _withholdable(fields: list[str]) -> list[str]:
    unknown = sorted(set(fields) - set(WITHHOLDABLE))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: only {', '.join(WITHHOLDABLE)} may be withheld")
    return sorted(fields)


def _grounds(grounds: str) -> str:
    if grounds not in WITHHOLDING_GROUNDS:
        raise ValueError(f"must be one of {', '.join(WITHHOLDING_GROUNDS)}")
    return grounds


class ItemWithholding(_Frozen):
    """R23 for an item: its results touch state secrets, trade secrets or privacy. Every result of the task
    then waits for a supervisor's decision and, approved, is published with `fields` withheld and a note."""

    item: Code  # one of the task's items
    grounds: Annotated[_Str, AfterValidator(_grounds)]
    fields: Annotated[list[_Str], Field(min_length=1), AfterValidator(_distinct), AfterValidator(_withholdable)]
    reason: Name


class PlanTask(_Frozen):
    """One line of the plan: a task (抽查任务)."""

    task_id: TaskId
    task_code: TaskCode  # the official number, display only (never hashed)
    name: Name
    items: Annotated[list[Code], Field(min_length=1), _at_most(MAX_ITEMS, "items per task"),
                     AfterValidator(_distinct)]
    unit: Code  # the lead unit (发起部门)
    partner_units: Annotated[list[Code], _at_most(MAX_PARTNERS, "partner units per task"),
                             AfterValidator(_distinct)]  # 配合部门, joint checks
    level: Level  # the level that inspects
    draw_level: Level  # the level that draws
    filter: TaskFilter
    ratios: Annotated[dict[Stratum, Ratio], Field(min_length=1)]
    frequency_cap: Annotated[Count, Field(ge=1)]  # R14
    team_size: Annotated[Count, Field(ge=2)]  # R15: at least two officers per target
    load_cap: Annotated[Count, Field(ge=0)]  # 0: no cap (sc-dispatch-v1)
    entropy_source: EntropySource  # "none" or the public value to come (draw-protocol.md)
    starts: IsoDate
    ends: IsoDate
    special_campaign: SpecialCampaign | None = None  # absent: a routine random-check task (R7)
    withheld_items: Annotated[list[ItemWithholding], Field(min_length=1),
                              _at_most(MAX_ITEMS, "withheld items per task")] | None = None  # absent: none (R23)

    @model_validator(mode="before")
    @classmethod
    def _draw_level_defaults_to_level(cls, data: Any) -> Any:
        if isinstance(data, dict) and "draw_level" not in data and "level" in data:
            return {**data, "draw_level": data["level"]}
        return data

    @field_validator("partner_units")
    @classmethod
    def _lead_is_not_a_partner(cls, partners: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("unit") in partners:
            raise ValueError(f"lists the lead unit {info.data['unit']} as a partner")
        return partners

    @field_validator("withheld_items")
    @classmethod
    def _withheld_items_are_the_tasks(cls, marked: list[ItemWithholding] | None,
                                      info: ValidationInfo) -> list[ItemWithholding] | None:
        codes = [m.item for m in marked or []]
        _distinct(codes)
        others = [code for code in codes if code not in (info.data.get("items") or [])]
        if others:
            raise ValueError(f"marks {', '.join(others)}, not among the task's items")
        return marked

    @field_validator("ends")
    @classmethod
    def _ends_after_starts(cls, ends: date, info: ValidationInfo) -> date:
        starts = info.data.get("starts")
        if starts is not None and ends < starts:
            raise ValueError(f"is before starts {starts.isoformat()}")
        return ends

    @property
    def all_units(self) -> tuple[str, ...]:
        """The lead unit first, then the partners: each dispatches its own inspectors (R18)."""
        return (self.unit, *self.partner_units)

    def ratio_fractions(self) -> dict[str, Fraction]:
        return {stratum: parse_ratio(text) for stratum, text in self.ratios.items()}

    def required_qualifications(self, directory: PlanDirectory) -> tuple[str, ...]:
        """The tags every dispatched inspector must hold, one per item, sorted (sc-dispatch-v1 step 4).
        The task must have passed `check_task`: an unknown item is a KeyError."""
        return tuple(sorted({directory.items[code].qualification for code in self.items}))


class PlanFile(_Frozen):
    plan_code: TaskId
    # Two-digit years are typos; a window may end in year + 1, which a date must hold.
    year: Annotated[Count, Field(ge=2000, le=2999)]
    owner_unit: Code
    tasks: Annotated[list[PlanTask], Field(min_length=1), _at_most(MAX_TASKS, "tasks per plan")]
    filed_with: Filing | None = None  # R6; absent: not filed yet (plans loaded before it was recorded)

    @field_validator("tasks")
    @classmethod
    def _task_ids_unique(cls, tasks: list[PlanTask]) -> list[PlanTask]:
        counts = Counter(task.task_id for task in tasks)
        twice = sorted(task_id for task_id, n in counts.items() if n > 1)
        if twice:
            raise ValueError(f"task_id {', '.join(twice)} used by more than one task")
        return tasks


@dataclass(frozen=True)
class ItemFacts:
    """What the rules need from one item of the published item list (抽查事项清单)."""

    item_code: str
    category: Literal["general", "key"]  # 一般 / 重点 (R13)
    effective_from: date | None  # inclusive; None: since ever
    effective_to: date | None  # inclusive; None: until further notice
    public_info_check: bool  # an enterprise public-information check (R9)
    ratio_cap: str | None  # a ratio string; applies to general items only (R13)
    qualification: str
    methods: tuple[str, ...]
    checklist: tuple[str, ...]

    def in_effect(self, starts: date, ends: date) -> bool:
        return (self.effective_from is None or self.effective_from <= starts) and (
            self.effective_to is None or ends <= self.effective_to
        )


@dataclass(frozen=True)
class PlanDirectory:
    """The item list and the unit codes, as the caller read them from the directories."""

    items: Mapping[str, ItemFacts]
    units: frozenset[str]


@dataclass(frozen=True)
class PlanProblem:
    where: str  # "plan", "task <task_id>", "tasks[<index>]" when the id is unreadable, or a file position
    field: str  # dotted path inside `where`, e.g. "ratios.A", "items[0]"; "" for the whole
    value: str | None  # the offending value as JSON, None when there is none to show
    reason: str

    def __str__(self) -> str:
        head = " ".join(part for part in (self.where, self.field, self.value) if part)
        return f"{head}: {self.reason}"


class PlanInvalid(ValueError):
    def __init__(self, problems: list[PlanProblem], source: str | None = None) -> None:
        super().__init__(problems, source)
        self.problems = list(problems)
        self.source = source

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(prefix + str(problem) for problem in self.problems)


# --- how a value is named in a refusal ----------------------------------------------------------
_LINE_BREAKS = re.compile("[\x7f-\x9f\u2028\u2029]")


def shown(value: Any) -> str | None:
    if value is None:
        return None
    # Lone surrogates (not text; refused) are shown as their escapes, so the message itself can be printed.
    text = json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "backslashreplace").decode("utf-8")
    text = _LINE_BREAKS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)  # JSON leaves these raw; a message is one line
    return text if len(text) <= 80 else text[:79] + "…"


# --- rules --------------------------------------------------------------------------------------
def check_plan(plan: PlanFile, directory: PlanDirectory, *, today: date | None = None,
               allow_past: bool = False) -> None:
    """Raise PlanInvalid listing every rule the plan breaks against its year, the directories and
    `today` (the caller's date: a task whose window ended before it is refused unless `allow_past`,
    e.g. a past year entered for the record). Without `today` the past is not judged."""
    problems = []
    if plan.owner_unit not in directory.units:
        problems.append(PlanProblem("plan", "owner_unit", shown(plan.owner_unit), "no such unit in the directory"))
    problems += _filing_problems(plan, directory)
    for task in plan.tasks:
        problems += _task_problems(task, plan.year, directory, None if allow_past else today)
    if problems:
        raise PlanInvalid(problems)


def _filing_problems(plan: PlanFile, directory: PlanDirectory) -> list[PlanProblem]:
    """R6: a plan is filed with the level above: a unit of the directory other than its owner."""
    filing = plan.filed_with
    if filing is None:
        return []
    if filing.unit == plan.owner_unit:
        return [PlanProblem("plan", "filed_with.unit", shown(filing.unit),
                            "is the plan's owner; a plan is filed with the level above (R6)")]
    if filing.unit not in directory.units:
        return [PlanProblem("plan", "filed_with.unit", shown(filing.unit), "no such unit in the directory")]
    return []


def check_task(task: PlanTask, plan_year: int, directory: PlanDirectory, *, today: date | None = None,
               allow_past: bool = False) -> None:
    """`check_plan` for one task, e.g. one added by an adjustment (R5)."""
    problems = _task_problems(task, plan_year, directory, None if allow_past else today)
    if problems:
        raise PlanInvalid(problems)


def _task_problems(task: PlanTask, plan_year: int, directory: PlanDirectory,
                   today: date | None) -> list[PlanProblem]:
    """Every rule one task breaks; `today` None: the past is not judged.

    R9 is read per stratum: when an item of the task is a public-information check and the
    filter admits enterprises (it names them, or does not restrict subject_type), every
    stratum's ratio must be at least 3%. The class mix of the population is unknown when the plan
    is made, so this is the only reading that guarantees the floor whatever the mix; it is also
    what the draw computes, since each quota is ceil(N × r) of its own stratum.
    """
    problems: list[PlanProblem] = []

    def problem(field: str, value: str, reason: str) -> None:
        problems.append(PlanProblem(f"task {task.task_id}", field, shown(value), reason))

    if task.starts.year != plan_year:
        problem("starts", task.starts.isoformat(), f"must fall in the plan year {plan_year}")
    if task.ends.year not in (plan_year, plan_year + 1):
        problem("ends", task.ends.isoformat(), f"must fall in {plan_year} or {plan_year + 1}")
    if today is not None and task.ends < today:
        problem("ends", task.ends.isoformat(),
                f"the window {task.starts} to {task.ends} is wholly in the past (today is {today}); such a task "
                "is refused unless past windows are explicitly allowed")

    for field, unit in [("unit", task.unit)] + [(f"partner_units[{i}]", u) for i, u in enumerate(task.partner_units)]:
        if unit not in directory.units:
            problem(field, unit, "no such unit in the directory")

    found: list[ItemFacts] = []
    for i, code in enumerate(task.items):
        facts = directory.items.get(code)
        if facts is None:
            problem(f"items[{i}]", code, "no such item in the published item list (R1)")
            continue
        if not facts.in_effect(task.starts, task.ends):
            span = f"{facts.effective_from or '…'} to {facts.effective_to or '…'}"
            problem(f"items[{i}]", code,
                    f"in effect {span}, not over the whole window {task.starts} to {task.ends} (R1)")
        found.append(facts)

    problems += _strata_problems(task)
    ratios = task.ratio_fractions()
    public_info = [f.item_code for f in found if f.public_info_check]
    if public_info and task.filter.includes_enterprises:
        for stratum, ratio in ratios.items():
            if ratio < PUBLIC_INFO_FLOOR:
                problem(f"ratios.{stratum}", task.ratios[stratum],
                        f"below the 3% floor of enterprise public-information checks ({', '.join(public_info)}; R9)")

    caps = [(parse_ratio(f.ratio_cap), f.ratio_cap, f.item_code)
            for f in found if f.category == "general" and f.ratio_cap is not None]
    if caps:
        cap, cap_text, item_code = min(caps)
        for stratum, ratio in ratios.items():
            if ratio > cap:
                problem(f"ratios.{stratum}", task.ratios[stratum],
                        f"above the cap {cap_text} of general item {item_code} (R13)")

    return problems + _r10_problems(task)


def _strata_problems(task: PlanTask) -> list[PlanProblem]:
    """Every stratum an entity can be in has a ratio (the draw stops on one without), and no other."""
    where, known = f"task {task.task_id}", ", ".join(STRATA)
    problems = [PlanProblem(where, f"ratios.{stratum}", None,
                            f"is required: stratum {stratum} ({_STRATUM_MEANING[stratum]}) can occur, and every "
                            f"stratum that can occur ({known}) needs a ratio, or the draw stops on it")
                for stratum in STRATA if stratum not in task.ratios]
    problems += [PlanProblem(where, f"ratios.{stratum}", shown(task.ratios[stratum]),
                             f"no entity is ever in stratum {stratum}: the strata are {known} "
                             "(credit-risk classes A-D, U not yet classified)")
                 for stratum in task.ratios if stratum not in STRATA]
    return problems


# R10, as the module docstring reads it: (lower, higher, the stratum named, why), each a breach of its own.
_RISING = (
    ("A", "B", "A", "low-risk A entities are checked less than normal-risk B ones, never more"),
    ("B", "C", "B", "normal-risk B entities are checked no more than elevated-risk C ones"),
    ("C", "D", "C", "elevated-risk C entities are checked no more than high-risk D ones"),
    ("B", "U", "U", "entities not yet classified (U) are checked at least as normal-risk B ones; "
                    "only a low-risk classification earns A's reduction"),
    ("U", "D", "U", "entities not yet classified (U) are checked no more than high-risk D ones"),
)


def _r10_problems(task: PlanTask) -> list[PlanProblem]:
    """Each pair of strata whose ratios fall where the risk rises (R10)."""
    ratios, problems = task.ratio_fractions(), []
    for lower, higher, named, why in _RISING:
        if lower in ratios and higher in ratios and ratios[lower] > ratios[higher]:
            other = higher if named == lower else lower
            side = "above" if named == lower else "below"
            problems.append(PlanProblem(f"task {task.task_id}", f"ratios.{named}", shown(task.ratios[named]),
                                        f"{side} {other}'s {task.ratios[other]}: {why} (R10)"))
    return problems


# --- deadline -----------------------------------------------------------------------------------
def plan_deadline(year: int) -> date:
    """The annual plan is published by 31 March of its year (R3)."""
    return date(year, 3, 31)


def published_on_time(year: int, published_on: date) -> bool:
    return published_on <= plan_deadline(year)


def canonical_json(model: BaseModel) -> str:
    """The form stored and hashed: sorted keys, no spaces, UTF-8 text; absent filter keys left out,
    so parsing it gives the same model back."""
    return json.dumps(model.model_dump(mode="json", exclude_none=True),
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def plan_document(plan: PlanFile) -> tuple[str, str]:
    """The plan as stored (canonical_json) and its sha256: loading the same plan again finds the same digest."""
    document = canonical_json(plan)
    return document, hashlib.sha256(document.encode()).hexdigest()


def task_taken(task_id: str, plan_code: str) -> PlanProblem:
    """A task id names one task, of one plan, for good (a task added by an adjustment too)."""
    return PlanProblem(f"task {task_id}", "task_id", None, f"already used by plan {plan_code}")
