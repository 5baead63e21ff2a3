"""The demo plays each special role once a year: on the first targets (USCC order) of the plan's first task,
whatever order the targets open in (store.targets.first_targets); every other target by its hash."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import insert

from cli.demo import SPECIAL_ROLES, role_for
from db import schema
from store.targets import first_targets

NOW = datetime(2026, 5, 11, 2, 0, tzinfo=timezone.utc)


def draw(engine, task_id: str, usccs: list[str], opened: list[str]) -> None:
    """The task's draw (its target rows at once), some of them opened already."""
    with engine.begin() as c:
        c.execute(insert(schema.targets), [
            dict(task_id=task_id, uscc=u, workflow_id=f"target/{task_id}/{u}" if u in opened else "",
                 kind="random", stage="drawn", overdue=False, updated_at=NOW) for u in usccs])


def test_the_special_roles_go_to_the_first_task_s_first_targets_whatever_opened_first(sqlite_engine):
    with sqlite_engine.begin() as c:
        c.execute(insert(schema.plans).values(plan_code="P", year=2026, owner_unit="360202-SCJ", document="{}",
                                              document_sha256="0" * 64, loaded_at=NOW))
        c.execute(insert(schema.plan_tasks), [dict(task_id=t, plan_code="P", document="{}", origin="plan")
                                              for t in ("P-0001", "P-0002")])  # the plan's tasks, loaded with it
    usccs = [f"91360202MA{n:07d}X" for n in range(8)]
    draw(sqlite_engine, "P-0002", usccs[:3], opened=usccs[:3])  # a later task drew and opened first
    with sqlite_engine.connect() as c:
        assert first_targets(c, "P", SPECIAL_ROLES) == []  # the first task has not drawn: nobody is special yet
    draw(sqlite_engine, "P-0001", usccs, opened=usccs[6:])  # its last targets open first
    with sqlite_engine.connect() as c:
        assert first_targets(c, "P", SPECIAL_ROLES) == [("P-0001", u) for u in usccs[:SPECIAL_ROLES]]


def test_each_special_role_once_and_every_other_target_by_its_hash():
    specials = [role_for("P-0001", f"U{n}", n) for n in range(SPECIAL_ROLES)]
    assert [r.wait_for for r in specials[:2]] == ["field-work-reminder", "field-work-escalation"]
    assert specials[2].slow_review and specials[3].returned_once and specials[4].substituted
    others = [role_for("P-0001", f"U{n}", None) for n in range(200)]
    assert not any(r.wait_for or r.slow_review or r.returned_once or r.substituted for r in others)
    assert len({r.category for r in others}) > 5 and others == [role_for("P-0001", f"U{n}", None) for n in range(200)]
