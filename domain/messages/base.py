"""The base of every message: frozen, no unknown field; a command's text must be storable and sendable."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from domain.text import TextRefused, check_id, check_line, check_note

ID = r"^[A-Za-z0-9._-]{1,32}$"

# Caps on what a person types into a command (issue 13): generous for any real entry, and small enough
# that every record a workflow keeps, queries and carries across continue-as-new stays far below
# Temporal's 2 MB payload limit whatever is sent.
NOTE_CAP = 2000  # characters of a note (findings, a review, a re-check): a page of prose
REASON_CAP = 500  # characters of a reason (an assignment, a targeted entity, a redraw, an adjustment)
LINE_CAP = 100  # characters of a code: a method, a check point, a unit code, a task id
MAX_PEOPLE = 20  # inspectors named in one command: a team, a check
USCC_CAP = 18  # characters of a unified social credit code (GB 32100)


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


class Command(Record):
    """What an operator sends (an update or a signal): its text must be storable and sendable. PostgreSQL
    refuses a NUL (the activity would retry for ever) and UTF-8 cannot encode a lone surrogate (what a
    non-UTF-8 command-line argument decodes to), so both are refused here, naming the field."""

    @field_validator("*")
    @classmethod
    def _text_only(cls, value: object) -> object:
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else \
            [*value, *value.values()] if isinstance(value, dict) else []
        if any(isinstance(text, str) and _NOT_TEXT.search(text) for text in texts):
            raise ValueError("must be text without NUL characters or lone surrogates (\\u0000, \\ud800-\\udfff)")
        return value


def ids(values: list[str], field: str) -> list[str]:
    """A list of user or inspector ids (domain.text.check_id each), at most MAX_PEOPLE of them."""
    if len(values) > MAX_PEOPLE:
        raise TextRefused(field, f"names {len(values)} people; the cap is {MAX_PEOPLE}")
    return [check_id(value, field) for value in values]


# How each text field a person types is bounded, by its name in the messages (and how a refusal names it).
_BOUNDS = {
    "note": lambda value: check_note(value, "note", NOTE_CAP),
    "grounds": lambda value: check_note(value, "grounds", NOTE_CAP),
    "reason": lambda value: check_line(value, "reason", REASON_CAP),
    "legal_basis": lambda value: check_line(value, "legal basis", REASON_CAP),
    "method": lambda value: check_line(value, "method", LINE_CAP),
    "unit": lambda value: check_line(value, "unit", LINE_CAP),
    "applicant": lambda value: check_line(value, "applicant", LINE_CAP),
    "task_id": lambda value: check_line(value, "task id", LINE_CAP),
    "uscc": lambda value: check_line(value, "USCC", USCC_CAP),
    "request": lambda value: check_line(value, "request", LINE_CAP),
    "inspectors": lambda values: ids(values, "inspector"),
    **{person: (lambda name: lambda value: check_id(value, name))(person)
       for person in ("inspector", "reviewer", "approver", "by", "marked_by", "decided_by")},
}


def _bound(cls: type, value: Any, info: ValidationInfo) -> Any:
    return value if value is None else _BOUNDS[info.field_name](value)


def bounded(*fields: str) -> Any:
    """The field validator that bounds these fields of a command, each as `_BOUNDS` says (issue 13)."""
    unknown = set(fields) - set(_BOUNDS)
    assert not unknown, f"no bound for {sorted(unknown)}"
    return field_validator(*fields)(_bound)


class HumanStep(Command):
    """A person's step: who authenticated and how (api.md: who acted is who authenticated), set by the
    command service from the actor, never from a door's field. None in histories from before."""

    actor: str | None = None
    auth_method: Literal["password", "oidc", "cli-local"] | None = None
