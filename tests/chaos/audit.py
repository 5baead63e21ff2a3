"""The chaos test's verdict, read from the tables and the receiver's file alone (not from what the
driver believes it did), so that it can fail: `test_audit.py` feeds it doubled, lost and stuck rows.

* results: one `publications` row of kind "result" per target, counted per USCC across workflow
  ids (the unique (workflow_id, step) key alone would hide a second workflow publishing it);
* follow-ups: at most one per (target, step) and per (target, kind); one "follow-up" for every
  target whose stored category calls for one (R24), and none for the others;
* the outbox: every row delivered, its idempotency key in the receiver's file (a re-send of the
  same key is at-least-once delivery, deduplicated by the receiver: counted, not a duplicate);
  a "credit-feedback" row for every target (R26); no key received that has no row;
* targets: every one closed, with the category the people entered; no follow-up left open.
"""
from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, func, select

from db import schema
from domain.categories import category


@dataclass
class Verdict:
    targets: int
    doubled_results: dict[str, int] = field(default_factory=dict)  # uscc -> publications
    doubled_leads: list[tuple] = field(default_factory=list)  # (uscc, step or kind, count)
    unpublished: list[str] = field(default_factory=list)
    missing_leads: list[str] = field(default_factory=list)  # a follow-up called for, none opened
    unexpected_leads: list[str] = field(default_factory=list)  # a follow-up nothing called for
    missing_feedback: list[str] = field(default_factory=list)  # no credit-feedback outbox row
    unreceived: list[str] = field(default_factory=list)  # delivered rows the receiver never saw
    phantom: list[str] = field(default_factory=list)  # received keys with no outbox row
    undelivered: list[str] = field(default_factory=list)  # outbox rows still waiting
    open_leads: list[str] = field(default_factory=list)
    unclosed: dict[str, str] = field(default_factory=dict)  # uscc -> stage
    wrong_category: dict[str, tuple] = field(default_factory=dict)  # uscc -> (entered, stored)
    resent: int = 0
    outbox_rows: int = 0

    @property
    def duplicates(self) -> int:
        return len(self.doubled_results) + len(self.doubled_leads)

    @property
    def lost(self) -> int:
        return (len(self.unpublished) + len(self.missing_leads) + len(self.missing_feedback)
                + len(self.unreceived))

    @property
    def stuck(self) -> int:
        return len(self.undelivered) + len(self.open_leads)

    def problems(self) -> dict[str, object]:
        """Every non-empty finding, truncated for an assertion message."""
        found = {}
        for name in ("doubled_results", "doubled_leads", "unpublished", "missing_leads",
                     "unexpected_leads", "missing_feedback", "unreceived", "phantom", "undelivered", "open_leads",
                     "unclosed", "wrong_category"):
            value = getattr(self, name)
            if value:
                items = list(value.items() if isinstance(value, dict) else value)
                found[name] = f"{len(items)}: {items[:8]}"
        return found


def read_deliveries(path: Path) -> tuple[list[str], int]:
    """The idempotency keys in the JSONL receiver's file, one per delivery (re-sends included), and
    the number of torn lines (a worker killed in mid-write: that delivery was not acknowledged, so
    it is sent again and counts as received only then)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return [], 0
    keys, torn = [], 0
    for line in lines:
        try:
            keys.append(json.loads(line)["idempotency_key"])
        except (ValueError, KeyError, TypeError):
            torn += bool(line.strip())
    return keys, torn


def _uscc_of(workflow_id: str, task_id: str) -> str | None:
    prefix = f"target/{task_id}/"
    return workflow_id[len(prefix):] if workflow_id.startswith(prefix) else None


def audit(engine: Engine, task_id: str, entered: dict[str, str], deliveries: list[str]) -> Verdict:
    """`entered`: uscc -> the category the people entered, for every target drawn."""
    t, p, f, o = schema.targets, schema.publications, schema.follow_ups, schema.outbox
    with engine.connect() as c:
        stored = {r.uscc: r for r in c.execute(select(t.c.uscc, t.c.stage, t.c.category)
                                                 .where(t.c.task_id == task_id)).all()}
        published = dict(c.execute(select(p.c.uscc, func.count()).where(p.c.task_id == task_id, p.c.kind == "result")
                                   .group_by(p.c.uscc)).all())
        leads = c.execute(select(f.c.uscc, f.c.step, f.c.kind, f.c.state, f.c.lead_id)
                          .where(f.c.task_id == task_id)).all()
        outbox = c.execute(select(o.c.workflow_id, o.c.step, o.c.delivered_at)).all()
    verdict = Verdict(targets=len(entered), outbox_rows=len(outbox))
    verdict.doubled_results = {u: n for u, n in sorted(published.items()) if n > 1}
    verdict.unpublished = sorted(u for u in entered if not published.get(u))
    verdict.unclosed = {u: (stored[u].stage if u in stored else "(no row)") for u in sorted(entered)
                        if u not in stored or stored[u].stage != "closed"}
    verdict.wrong_category = {u: (c, stored[u].category if u in stored else None) for u, c in sorted(entered.items())
                              if u not in stored or stored[u].category != c}

    per_step = collections.Counter((lead.uscc, lead.step) for lead in leads)
    per_kind = collections.Counter((lead.uscc, lead.kind) for lead in leads)
    verdict.doubled_leads = sorted([(u, s, n) for (u, s), n in per_step.items() if n > 1]
                                   + [(u, k, n) for (u, k), n in per_kind.items() if n > 1])
    first = {lead.uscc for lead in leads if lead.step == "follow-up"}
    called_for = {u for u, c in entered.items() if category(c).follow_up is not None}
    verdict.missing_leads = sorted(called_for - first)
    verdict.unexpected_leads = sorted({lead.uscc for lead in leads} - called_for)
    verdict.open_leads = sorted(lead.lead_id for lead in leads if lead.state != "closed")

    received = collections.Counter(deliveries)
    verdict.resent = sum(n - 1 for n in received.values())
    keys = {f"{row.workflow_id}/{row.step}" for row in outbox}
    verdict.undelivered = sorted(f"{row.workflow_id}/{row.step}" for row in outbox if row.delivered_at is None)
    verdict.unreceived = sorted(f"{row.workflow_id}/{row.step}" for row in outbox
                                if row.delivered_at is not None and f"{row.workflow_id}/{row.step}" not in received)
    verdict.phantom = sorted(set(received) - keys)
    feedback = {_uscc_of(row.workflow_id, task_id) for row in outbox if row.step == "credit-feedback"}
    verdict.missing_feedback = sorted(set(entered) - feedback)
    return verdict
