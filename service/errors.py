"""What a command can answer besides success, the same for every door (the CLI's exit codes, the API's statuses)."""
from __future__ import annotations

from collections.abc import Sequence

from domain.dispatch import Breach


class CommandError(Exception):
    """A sentence for the person who sent the command; nothing was recorded."""


class Invalid(CommandError):
    """The command's fields are malformed (each bad field named)."""


class NotFound(CommandError):
    """No such plan, task, target or lead."""


class Refused(CommandError):
    """The rules refused the command (the workflow's validator, or a check before it); `breaches`: each rule
    broken, by name, when a check before the workflow knows them."""

    def __init__(self, message: str, breaches: Sequence[Breach] = ()):
        super().__init__(message)
        self.breaches = list(breaches)
