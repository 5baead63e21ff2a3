"""A command's identity: the one function that names a human step, shared by the doors and the workflows.

The workflow remembers the text of the last command it accepted (`command_text`); a door sends each
command under an update id (`command_key`) that names what it is and, for a target, how many commands
the target had taken before it. A client's retry of an accepted command reuses the id, so the server
answers it as accepted instead of running it twice; the same command sent again after it was recorded
matches the remembered text and is reported as already recorded, not refused.
"""
from __future__ import annotations

import hashlib

from pydantic import BaseModel


def command_text(verb: str, command: BaseModel) -> str:
    return f"{verb}:{command.model_dump_json()}"


def command_key(verb: str, command: BaseModel, seq: int | None = None) -> str:
    digest = hashlib.sha256(command_text(verb, command).encode()).hexdigest()[:16]
    return f"{verb}-{digest}" if seq is None else f"{verb}-{seq}-{digest}"
