"""The base of every message: frozen, no unknown field; a command's text must be storable and sendable."""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, field_validator

ID = r"^[A-Za-z0-9._-]{1,32}$"


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
