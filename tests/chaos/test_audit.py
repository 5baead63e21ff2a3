"""The chaos test's checks can fail: the audit finds each kind of doubled, lost and stuck row
(a clean run counts zero of everything, and a counter that cannot go up would prove nothing)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import insert

from db import schema
from tests.chaos.audit import audit, read_deliveries

TASK = "AUDIT-T1"
NOW = datetime(2026, 5, 6, 7, 8, tzinfo=timezone.utc)
# Five targets: A no issue; B an order re-checked in time; C an order that missed its deadline
# (its fallback case lead); D unreachable (an abnormal listing); E pending investigation (a case lead).
ENTERED = {"A": "no_issue", "B": "ordered_to_correct", "C": "ordered_to_correct", "D": "unreachable",
           "E": "pending_investigation"}
LEADS = {"B": [("follow-up", "correction")], "C": [("follow-up", "correction"), ("follow-up-fallback", "case_lead")],
         "D": [("follow-up", "abnormal_listing")], "E": [("follow-up", "case_lead")]}


def wf(uscc: str) -> str:
    return f"target/{TASK}/{uscc}"


def publication(uscc: str, workflow_id: str | None = None) -> dict:
    return dict(workflow_id=workflow_id or wf(uscc), step="publish-result", kind="result", published_at=NOW,
                year=2026, task_id=TASK, uscc=uscc, category=ENTERED[uscc], payload="{}")


def lead(uscc: str, step: str, kind: str, state: str = "closed") -> dict:
    return dict(lead_id=f"{TASK}/{uscc}/{step}", kind=kind, task_id=TASK, task_code="T1", uscc=uscc,
                entity_name=uscc, category=ENTERED[uscc], state=state, opened_at=NOW, workflow_id=wf(uscc), step=step)


def outbox(workflow_id: str, step: str, delivered: bool = True) -> dict:
    return dict(workflow_id=workflow_id, step=step, kind="x", payload="{}", created_at=NOW,
                delivered_at=NOW if delivered else None, attempts=1)


def clean_run(engine) -> list[str]:
    """The rows of a run that went right; returns the receiver's keys (B's feedback sent twice)."""
    with engine.begin() as c:
        c.execute(insert(schema.targets), [dict(task_id=TASK, uscc=u, workflow_id=wf(u), kind="random", stage="closed",
                                                category=cat, overdue=False, updated_at=NOW)
                                           for u, cat in ENTERED.items()])
        c.execute(insert(schema.publications), [publication(u) for u in ENTERED])
        c.execute(insert(schema.follow_ups), [lead(u, s, k) for u, steps in LEADS.items() for s, k in steps])
        rows = [outbox(wf(u), "credit-feedback") for u in ENTERED]
        rows += [outbox(wf(u), s) for u, steps in LEADS.items() for s, _ in steps]
        rows += [outbox(wf(u), "notify-team") for u in ENTERED] + [outbox(f"task/{TASK}", "announce")]
        c.execute(insert(schema.outbox), rows)
    return [f"{r['workflow_id']}/{r['step']}" for r in rows] + [f"{wf('B')}/credit-feedback"]


def test_a_clean_run_counts_nothing_wrong(sqlite_engine):
    keys = clean_run(sqlite_engine)
    verdict = audit(sqlite_engine, TASK, ENTERED, keys)
    assert (verdict.duplicates, verdict.lost, verdict.stuck) == (0, 0, 0)
    assert verdict.problems() == {}
    assert verdict.resent == 1 and verdict.outbox_rows == len(keys) - 1


def test_every_kind_of_fault_is_counted(sqlite_engine):
    keys = clean_run(sqlite_engine)
    with sqlite_engine.begin() as c:
        c.execute(schema.publications.delete().where(schema.publications.c.uscc == "A"))  # A never published
        c.execute(insert(schema.publications), [publication("B", workflow_id="target/other-run/B")])  # B twice
        c.execute(schema.follow_ups.delete().where(schema.follow_ups.c.uscc == "D"))  # D's listing lost
        c.execute(insert(schema.follow_ups), [lead("E", "follow-up-again", "case_lead", state="open")])  # E doubled
        c.execute(insert(schema.outbox), [outbox(wf("A"), "follow-up", delivered=False)])  # stuck
        c.execute(schema.outbox.delete().where(schema.outbox.c.workflow_id == wf("C"),
                                               schema.outbox.c.step == "credit-feedback"))  # C's feedback lost
        c.execute(schema.targets.update().where(schema.targets.c.uscc == "E").values(stage="follow_up"))
    keys.remove(f"{wf('B')}/follow-up")  # marked delivered, never received
    keys.append(f"{wf('C')}/credit-feedback")  # received, yet no row says so (kept: the row was deleted)
    verdict = audit(sqlite_engine, TASK, {**ENTERED, "B": "no_issue"}, keys)

    assert verdict.unpublished == ["A"]
    assert verdict.doubled_results == {"B": 2}
    assert verdict.doubled_leads == [("E", "case_lead", 2)]
    assert verdict.missing_leads == ["D"]
    assert verdict.unexpected_leads == ["B"]  # entered as no issue, yet with a follow-up
    assert verdict.missing_feedback == ["C"]
    assert verdict.unreceived == [f"{wf('B')}/follow-up"]
    assert verdict.phantom == [f"{wf('C')}/credit-feedback"]
    assert verdict.undelivered == [f"{wf('A')}/follow-up"]
    assert verdict.open_leads == [f"{TASK}/E/follow-up-again"]
    assert verdict.unclosed == {"E": "follow_up"}
    assert verdict.wrong_category == {"B": ("no_issue", "ordered_to_correct")}
    assert (verdict.duplicates, verdict.lost, verdict.stuck) == (2, 4, 2)


def test_the_receivers_file_is_read_past_a_torn_line(tmp_path):
    path = tmp_path / "outbox.jsonl"
    path.write_text('{"idempotency_key": "target/T/A/follow-up", "kind": "x"}\n{"idempotency_key": "targ\n'
                    '{"idempotency_key": "target/T/A/follow-up", "kind": "x"}\n', encoding="utf-8")
    assert read_deliveries(path) == (["target/T/A/follow-up"] * 2, 1)
    assert read_deliveries(tmp_path / "absent.jsonl") == ([], 0)
