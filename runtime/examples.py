"""The samples shipped in examples/ (service.imports.import_examples imports its directories), and the
demo plan built from its template."""
from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def shifted_plan(today: date, window_days: int, template: Path = EXAMPLES / "plan-template.json") -> bytes:
    """The template plan moved to `today`: every task starts today and runs `window_days` days.

    The plan code stays fixed, so a second demo finds the plan it ran before.
    """
    plan = json.loads(template.read_text(encoding="utf-8"))
    plan["year"] = today.year
    for task in plan["tasks"]:
        task["starts"] = today.isoformat()
        task["ends"] = (today + timedelta(days=window_days)).isoformat()
    return json.dumps(plan, ensure_ascii=False, indent=2).encode()
