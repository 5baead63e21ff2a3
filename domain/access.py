"""Who acts: the authenticated identity every command carries (api.md, Identities)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    unit: str | None = None
    method: str = "cli-local"  # password | oidc | cli-local
