"""Reading a plan or task file (contract.md "Plan file (JSON)"): bytes to a checked `PlanFile`/`PlanTask`,
every problem named by its line, column and key — what the planner must correct, and where.

The rules of a parsed plan are domain/plan.py's `check_plan`/`check_task`.
"""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from domain.plan import (
    MAX_FILE_BYTES,
    Filing,
    ItemWithholding,
    PlanFile,
    PlanInvalid,
    PlanProblem,
    PlanTask,
    SpecialCampaign,
    TaskFilter,
    shown,
)

_LONG_QUOTED = re.compile(r"'[^'\n]{60,}'" + r'|"[^"\n]{60,}"')  # a repr() or JSON string of 60+ characters
_TASK_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # only to name a task in an error; draw.py validates
_PLAIN_KEY = re.compile(r"[^\s\"\\.\[\]\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]{1,40}")  # shown as it is; others quoted


def parse_plan(raw: bytes | str, source: str) -> PlanFile:
    """The plan in a file's content; `source` names the file in the errors."""
    return _parse(raw, source, PlanFile)


def parse_task(raw: bytes | str, source: str) -> PlanTask:
    """A single task, as added by an adjustment (`plan adjust --add-task FILE.json`)."""
    return _parse(raw, source, PlanTask)


def _parse(raw: bytes | str, source: str, model: type[PlanFile] | type[PlanTask]) -> Any:
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        where = "plan" if model is PlanFile else "task"
        raise PlanInvalid([PlanProblem(where, "", None, f"the file is {size} bytes; the cap is {MAX_FILE_BYTES} "
                                                        "bytes for a plan or task file")], source)
    data = _load_json(raw, source)
    unstorable = _unstorable(data, model)
    if unstorable:
        raise PlanInvalid(sorted(unstorable, key=str), source)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = [_problem(e, data, model) for e in error.errors()]
        raise PlanInvalid(problems, source) from None


def _load_json(raw: bytes | str, source: str) -> Any:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PlanInvalid([PlanProblem(f"byte {error.start}", "", None, "not UTF-8")], source) from None
    # Windows editors start UTF-8 files with a byte-order mark; it carries nothing.
    text = raw.removeprefix("\ufeff")
    duplicates: list[str] = []

    def keep_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # json.loads would silently keep the last of two equal keys.
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                duplicates.append(key)
            obj[key] = value
        return obj

    try:
        data = json.loads(text, object_pairs_hook=keep_duplicates)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise PlanInvalid([PlanProblem(where, "", None, f"not valid JSON: {error.msg}")], source) from None
    except RecursionError:  # the decoder recurses per level: "[[[[…" deeper than the interpreter's stack
        where = _position(text, _too_deep(text))
        raise PlanInvalid([PlanProblem(where, "", None, f"not valid JSON: nested more than {_MAX_DEPTH} levels deep")],
                          source) from None
    except ValueError:  # an integer literal longer than sys.get_int_max_str_digits()
        long_number = re.search(r"[0-9]{100,}", text)
        where = _position(text, long_number.start() if long_number else None)
        raise PlanInvalid([PlanProblem(where, "", None, "not valid JSON: a number with too many digits")],
                          source) from None
    if duplicates:
        problems = [PlanProblem(f"key {shown(key)}", "", None, "appears twice in one object") for key in duplicates]
        raise PlanInvalid(problems, source)
    return data


_MAX_DEPTH = 64  # a plan is 5 levels deep
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[][{}]', re.DOTALL)
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def _too_deep(text: str) -> int | None:
    """The offset of the first bracket nested more than _MAX_DEPTH levels deep (strings skipped)."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return match.start()
        elif bracket in "]}":
            depth -= 1
    return None


def _position(text: str, offset: int | None) -> str:
    if offset is None:
        return "plan"
    line = text.count("\n", 0, offset) + 1
    return f"line {line} column {offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def _unstorable(data: Any, model: type[BaseModel]) -> list[PlanProblem]:
    """Strings (keys too) holding a NUL or a lone surrogate (a JSON "\\ud800" escape without its pair):
    JSON allows both, but neither is text that can be hashed as UTF-8 or stored in PostgreSQL."""
    problems, stack = [], [((), data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if _NOT_TEXT.search(key):
                    problems.append(_text_problem(loc + (key,), data, model, "key"))
                else:
                    stack.append((loc + (key,), item))
        elif isinstance(value, list):
            stack.extend((loc + (i,), item) for i, item in enumerate(value))
        elif isinstance(value, str) and _NOT_TEXT.search(value):
            problems.append(_text_problem(loc, data, model, "value"))
    return problems


def _text_problem(loc: tuple, data: Any, model: type[BaseModel], what: str) -> PlanProblem:
    where, path = _locate(loc, data, model)
    return PlanProblem(where, _dotted(path), None, f"the {what} holds a NUL character or a lone UTF-16 surrogate "
                                                   "(\\u0000, \\ud800-\\udfff): not text")


# Pydantic speaks of Python types; the operator wrote JSON.
_JSON_TYPES = {
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "string_type": "must be a JSON string",
    "int_type": "must be a whole number",
}


def _problem(error: Any, data: Any, model: type[BaseModel]) -> PlanProblem:
    """A pydantic error as a line an operator can act on: which task, which key, why."""
    loc = tuple(part for part in error["loc"] if part != "[key]")
    where, path = _locate(loc, data, model)
    kind = error["type"]
    if kind == "missing":
        return PlanProblem(where, _dotted(path), None, "is required")
    if kind == "extra_forbidden":
        allowed = ", ".join(_model_at(loc[:-1], model).model_fields)
        return PlanProblem(where, _dotted(path), None, f"unknown key; the keys are: {allowed}")
    reason = str(error["ctx"]["error"]) if kind == "value_error" else _JSON_TYPES.get(kind, error["msg"])
    # The value is shown on its own (shortened); a validator's message may quote all of it again.
    reason = _LONG_QUOTED.sub(lambda m: m.group()[:50] + "…" + m.group()[0], reason)
    value = error["input"]
    # A key's own value is shown; a whole object or a list of them is not.
    showable = path and not isinstance(value, dict) and not (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value))
    return PlanProblem(where, _dotted(path), shown(value) if showable else None, reason)


def _locate(loc: tuple, data: Any, model: type[BaseModel]) -> tuple[str, tuple]:
    """Who an error belongs to (the plan or a task, by task_id when readable) and the path inside."""
    if model is PlanTask:
        task, path, where = data, loc, "task"
    elif len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
        task, path, where = data["tasks"][loc[1]], loc[2:], f"tasks[{loc[1]}]"
    else:
        return "plan", loc
    task_id = task.get("task_id") if isinstance(task, dict) else None
    if isinstance(task_id, str) and _TASK_ID.fullmatch(task_id):
        where = f"task {task_id}"
    return where, path


def _model_at(loc: tuple, model: type[BaseModel]) -> type[BaseModel]:
    """The model whose keys an object at `loc` has."""
    keys = [part for part in loc if isinstance(part, str)]
    nested = {"tasks": PlanTask, "filter": TaskFilter, "filed_with": Filing, "special_campaign": SpecialCampaign,
              "withheld_items": ItemWithholding}
    return nested[keys[-1]] if keys else model


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, str) and not _PLAIN_KEY.fullmatch(part):
            part = shown(part)  # quoted, escaped, shortened
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
