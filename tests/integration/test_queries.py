"""The read side (read.metrics, read.register, read.tasks) and linking a case (service.cases) on a
hand-built year, on SQLite and on PostgreSQL.

The scenario is inserted straight into the projection tables, as the activities would have left
them; every expected figure below is counted by hand from the rows, with the rows named.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import insert, select

from db import schema
from domain.metrics import Metrics, Ratio, year_end
from read.metrics import metrics, on_time_publication_rate, year_summary
from read.register import case_list, publication_register
from read.tasks import task_rows, task_summary
from service.cases import CaseLinkConflict, link_case

UTC = timezone.utc
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
CONTRACT_REGISTER_KEYS = {"kind", "published_at", "task_id", "uscc", "category", "unit"}
CONTRACT_CASE_KEYS = {"lead_id", "kind", "task_id", "task_code", "uscc", "entity_name", "category", "state",
                      "opened_at", "closed_at"}


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def uscc(n: int) -> str:
    return f"91360200TEST{n:05d}X"


E = {n: uscc(n) for n in range(1, 13)}


@pytest.fixture(params=["sqlite_engine", "fresh_pg_engine"])
def engine(request):
    return request.getfixturevalue(request.param)


# --- the scenario ------------------------------------------------------------------------------
def entity(n, valid_from, valid_to=None, status="active", name=None):
    return dict(uscc=E[n], name=name or f"企业{n}", subject_type="enterprise", region="360202", industry="F52",
                risk_class="B", status=status, address="景德镇", labels="", valid_from=valid_from,
                valid_to=valid_to, batch_id=1)


ENTITIES = [
    entity(1, at(2024, 1, 1)),                                        # active
    entity(2, at(2024, 1, 1), at(2025, 6, 1)),                        # deregistered mid-year
    entity(2, at(2025, 6, 1), status="deregistered"),
    entity(3, at(2024, 1, 1), at(2026, 1, 10)),                       # active at year end, gone later
    entity(3, at(2026, 1, 10), status="deregistered"),
    entity(4, at(2025, 12, 31, 16, 30)),                              # 2026-01-01 00:30 Shanghai: too late
    entity(5, at(2024, 1, 1), status="revoked"),                      # revoked
    entity(6, at(2024, 1, 1), at(2025, 3, 1)),                        # renamed: two versions, one entity
    entity(6, at(2025, 3, 1), name="企业6（更名）"),
    entity(7, at(2025, 12, 31, 15, 0)),                               # 23:00 Shanghai on 31 Dec: counts
    entity(8, at(2024, 1, 1)),
    entity(9, at(2024, 1, 1)),
    entity(10, at(2024, 1, 1)),
    entity(11, at(2024, 1, 1)),
    entity(12, at(2024, 1, 1), at(2025, 12, 31, 15, 30)),             # deregistered 23:30 Shanghai, before 23:59
    entity(12, at(2025, 12, 31, 15, 30), status="deregistered"),
]
# Active at 2025-12-31 23:59 Asia/Shanghai: E1, E3, E6, E7, E8, E9, E10, E11.
ACTIVE_AT_2025_END = 8


def task(task_id, unit, partners=(), **extra):
    line = {"task_id": task_id, "task_code": f"景市监抽查〔2025〕{task_id[-1]}号", "name": task_id,
            "items": ["GS-001"], "unit": unit, "partner_units": list(partners), "starts": "2025-04-01",
            "ends": "2025-11-10", **extra}
    return json.dumps(line, ensure_ascii=False, sort_keys=True)


PLANS = [
    dict(plan_code="P-2024", year=2024, owner_unit="360200-SCJ", document="{}", document_sha256="0" * 64,
         loaded_at=at(2024, 3, 1)),
    dict(plan_code="P-2025", year=2025, owner_unit="360200-SCJ", document="{}", document_sha256="1" * 64,
         loaded_at=at(2025, 3, 1)),
]
PLAN_TASKS = [
    dict(task_id="T0", plan_code="P-2024", document=task("T0", "360202-SCJ", ["360200-SWJ"]), origin="plan"),
    dict(task_id="T1", plan_code="P-2025", document=task("T1", "360202-SCJ"), origin="plan"),
    dict(task_id="T2", plan_code="P-2025", document=task("T2", "360203-SCJ", ["360200-SWJ"]), origin="plan"),
    dict(task_id="T3", plan_code="P-2025", document=task("T3", "360202-SCJ", ["360200-WJW"]), origin="plan",
         cancelled_at=at(2025, 5, 2), cancel_reason="合并到T2"),
    dict(task_id="T4", plan_code="P-2025", document=task("T4", "360203-SCJ"), origin="adjustment"),
]
# joint_rate 2025: T1 own, T2 joint, T4 own; T3 (joint) cancelled; T0 is 2024's  -> 1/3


def target(name, task_id, n, stage, check=None, category=None, due=None, published=None, overdue=False,
           kind="random"):
    return dict(task_id=task_id, uscc=E[n], workflow_id=f"target/{task_id}/{E[n]}", kind=kind, stage=stage,
                check_date=check, category=category, publication_due=due, published_at=published,
                overdue=overdue, updated_at=at(2026, 1, 1)), name


TARGETS = dict(t[::-1] for t in [
    target("a", "T1", 1, "published", date(2025, 5, 10), "no_issue", at(2025, 6, 7), at(2025, 5, 20)),
    target("b", "T1", 3, "follow_up", date(2025, 6, 1), "failed", at(2025, 6, 29), at(2025, 7, 15), overdue=True),
    target("c", "T1", 6, "closed", date(2025, 7, 1), "unpublished_info", at(2025, 7, 29), at(2025, 7, 10)),
    target("d", "T1", 7, "entered", date(2025, 8, 1), "obstructed", at(2025, 9, 1)),
    target("e", "T1", 8, "checked", date(2025, 12, 20), None, at(2026, 1, 20), overdue=True),
    target("f", "T1", 9, "checked", date(2025, 12, 30), None, at(2026, 3, 10)),
    target("g", "T1", 10, "approved", date(2025, 12, 31), "passed", at(2026, 2, 1)),
    target("h", "T2", 1, "closed", date(2025, 9, 1), "ordered_to_correct", at(2025, 9, 29), at(2025, 9, 10)),
    target("i", "T2", 2, "published", date(2025, 4, 1), "no_activity", at(2025, 4, 29), at(2025, 5, 30),
           overdue=True),
    target("j", "T2", 11, "closed", date(2025, 10, 1), "failed", at(2025, 10, 29), at(2025, 10, 10),
           kind="targeted"),
    target("k", "T2", 3, "published", date(2026, 1, 5), "no_issue", at(2026, 2, 2), at(2026, 1, 20)),
    target("l", "T2", 6, "published", date(2025, 11, 1), "unreachable", at(2025, 11, 29), at(2025, 11, 10)),
    target("m", "T3", 9, "cancelled", date(2025, 5, 1), None, at(2025, 5, 29)),
    target("n", "T0", 1, "published", date(2024, 12, 20), "no_issue", at(2025, 1, 20), at(2024, 12, 25)),
])


def result_publication(name, on_time, year=2025):
    row = TARGETS[name]
    task_id, n = row["task_id"], next(k for k, v in E.items() if v == row["uscc"])
    unit = json.loads(next(t["document"] for t in PLAN_TASKS if t["task_id"] == task_id))["unit"]
    return dict(workflow_id=row["workflow_id"], step="publish-result", kind="result", published_at=row["published_at"],
                year=year, task_id=task_id, uscc=row["uscc"], category=row["category"], unit=unit,
                due_at=row["publication_due"], on_time=on_time,
                payload=json.dumps({"task_id": task_id, "task_code": f"code-{task_id}", "uscc": row["uscc"],
                                    "entity_name": f"企业{n}", "category": row["category"],
                                    "check_date": row["check_date"].isoformat(), "unit": unit}, ensure_ascii=False))


# In insertion order (publication_id); i and the T2 draw share an instant.
PUBLICATIONS = [
    dict(workflow_id="plan/P-2025", step="publish-plan", kind="plan", published_at=at(2025, 3, 20), year=2025,
         plan_code="P-2025", unit="360200-SCJ",
         payload=json.dumps({"plan_code": "P-2025", "year": 2025, "tasks": ["T1", "T2", "T3"]})),
    dict(workflow_id="task/T1", step="announce-1", kind="task", published_at=at(2025, 4, 1), year=2025,
         task_id="T1", unit="360202-SCJ",
         # A writer's slip the register must never show: an entity's credit-risk class.
         payload=json.dumps({"task_id": "T1", "task_code": "code-T1", "risk_class": "A",
                             "notes": [{"uscc": E[1], "risk_class": "A", "stratum": "A", "kept": True}]})),
    result_publication("a", True),
    result_publication("i", False),
    dict(workflow_id="task/T2", step="draw-1", kind="draw", published_at=at(2025, 5, 30), year=2025, task_id="T2",
         unit="360203-SCJ", payload=json.dumps({"task_id": "T2", "draw_seq": 1, "strata": {"B": {"quota": 2}}})),
    result_publication("c", True),
    result_publication("b", False),
    result_publication("h", True),
    result_publication("j", True),
    result_publication("l", True),
    result_publication("k", True, year=2026),
    result_publication("n", True, year=2024),
]
REGISTER_2025 = [("plan", None), ("task", None), ("result", "a"), ("result", "i"), ("draw", None),
                 ("result", "c"), ("result", "b"), ("result", "h"), ("result", "j"), ("result", "l")]


def follow_up(lead, name, kind, state, opened, closed=None, decision_no=None):
    row = TARGETS[name]
    return dict(lead_id=lead, kind=kind, task_id=row["task_id"], task_code=f"code-{row['task_id']}",
                uscc=row["uscc"], entity_name="某企业", category=row["category"], state=state, opened_at=opened,
                closed_at=closed, closed_by="accepted" if closed else None, decision_no=decision_no,
                workflow_id=row["workflow_id"], step=f"follow-up-{lead}")


FOLLOW_UPS = [
    follow_up("F1", "b", "case_lead", "open", at(2025, 7, 20)),
    follow_up("F2", "c", "order_to_publish", "closed", at(2025, 7, 12), at(2025, 7, 25)),
    follow_up("F3", "c", "abnormal_listing", "closed", at(2025, 8, 1), at(2025, 8, 2)),
    follow_up("F4", "h", "correction", "closed", at(2025, 9, 12), at(2025, 10, 14)),
    follow_up("F5", "h", "case_lead", "open", at(2025, 10, 15)),  # the re-check failed
    follow_up("F6", "j", "case_lead", "closed", at(2025, 10, 12), at(2025, 10, 13), "景市监罚〔2025〕12号"),
]


def draw(task_id, seq, state):
    return dict(task_id=task_id, draw_seq=seq, state=state, commitment="c" * 64, nonce="n" * 64,
                entropy_source="none", workflow_id=f"task/{task_id}", step=f"draw-{seq}")


DRAWS = [draw("T1", 1, "superseded"), draw("T1", 2, "drawn"), draw("T2", 1, "drawn")]
SELECTION = [
    ("T1", 1, 1, "A"), ("T1", 1, 3, "B"),  # superseded: not counted
    ("T1", 2, 1, "A"), ("T1", 2, 3, "B"), ("T1", 2, 6, "C"), ("T1", 2, 7, "U"),
    ("T1", 2, 8, "B"), ("T1", 2, 9, "B"), ("T1", 2, 10, "D"),
    ("T2", 1, 1, "A"), ("T2", 1, 2, "B"), ("T2", 1, 3, "B"), ("T2", 1, 6, "C"),
]


def alert(kind, task_id, n, step):
    return dict(kind=kind, task_id=task_id, uscc=E[n] if n else None, at=at(2025, 12, 1), details=kind,
                workflow_id=f"w/{task_id}", step=step)


ALERTS = [alert("reminder", "T1", 8, "r1"), alert("reminder", "T1", 7, "r2"), alert("escalation", "T1", 8, "e1"),
          alert("calendar", "T1", None, "cal"), alert("reminder", "T2", 1, "r3"),
          alert("escalation", "T0", 1, "e0")]


def build(engine) -> None:
    with engine.begin() as c:
        c.execute(insert(schema.import_batches).values(
            batch_id=1, kind="entities", file_name="entities.csv", file_sha256="f" * 64, imported_at=at(2024, 1, 1),
            rows_read=len(ENTITIES), rows_changed=len(ENTITIES)))
        c.execute(insert(schema.entities), ENTITIES)
        c.execute(insert(schema.plans), PLANS)
        c.execute(insert(schema.plan_tasks), [{"cancelled_at": None, "cancel_reason": None, **r} for r in PLAN_TASKS])
        c.execute(insert(schema.targets), list(TARGETS.values()))
        for row in PUBLICATIONS:  # one by one: publication_id follows the list
            c.execute(insert(schema.publications).values(
                **{"plan_code": None, "task_id": None, "uscc": None, "category": None, "unit": None, "due_at": None,
                   "on_time": None, **row}))
        c.execute(insert(schema.follow_ups), FOLLOW_UPS)
        c.execute(insert(schema.draws), DRAWS)
        c.execute(insert(schema.draw_selection), [
            dict(task_id=t, draw_seq=s, uscc=E[n], stratum=st) for t, s, n, st in SELECTION])
        c.execute(insert(schema.alerts), ALERTS)


@pytest.fixture
def year(engine):
    build(engine)
    return engine


# --- metrics -----------------------------------------------------------------------------------
def test_metrics_match_the_hand_counts(year):
    with year.connect() as c:
        m = metrics(c, 2025, as_of=AS_OF)
    # inspected: random + accepted + checked in 2025: a b c g h i l (not d entered, e f checked,
    # j targeted, k 2026, m cancelled, n 2024) / active at year end (ACTIVE_AT_2025_END)
    assert m.inspected_share == Ratio(7, ACTIVE_AT_2025_END)
    assert m.joint_rate == Ratio(1, 3)
    # on time: result publications of 2025 a b c h i j l (7), on time a c h j l (5);
    # overdue without publication at AS_OF: d (due 2025-09-01), e (2026-01-20), g (2026-02-01);
    # not f (due 2026-03-10), not m (cancelled task)
    assert m.on_time_publication_rate == Ratio(5, 7 + 3)
    # problems accepted in 2025: b failed, c unpublished_info, h ordered_to_correct, j failed,
    # l unreachable (d obstructed is not accepted yet); disposed: c (F2, F3 closed), j (F6 closed);
    # b has F1 open, h has F4 closed but F5 open, l has no follow-up yet
    assert m.problem_disposal_rate == Ratio(2, 5)
    assert m.as_json() == {
        "year": 2025,
        "inspected_share": {"value": 7 / 8, "numerator": 7, "denominator": 8},
        "joint_rate": {"value": 1 / 3, "numerator": 1, "denominator": 3},
        "on_time_publication_rate": {"value": 0.5, "numerator": 5, "denominator": 10},
        "problem_disposal_rate": {"value": 0.4, "numerator": 2, "denominator": 5},
    }


def test_overdue_results_depend_on_as_of(year):
    with year.connect() as c:
        assert on_time_publication_rate(c, 2025, at(2026, 1, 25)) == Ratio(5, 7 + 2)  # g not due yet
        assert on_time_publication_rate(c, 2025, at(2026, 3, 11)) == Ratio(5, 7 + 4)  # f due too
        with pytest.raises(ValueError, match="naive"):
            metrics(c, 2025, as_of=datetime(2026, 3, 1))


def test_other_years_and_empty_denominators(year):
    with year.connect() as c:
        m2024 = metrics(c, 2024, as_of=AS_OF)
        m2030 = metrics(c, 2030, as_of=AS_OF)
    # 2024: n only; active at 2024 end: E1 E2 E3 E6 E8 E9 E10 E11 E12 (E5 revoked; E4, E7 later) -> 9
    assert m2024.inspected_share == Ratio(1, 9)
    assert m2024.joint_rate == Ratio(1, 1)  # T0
    assert m2024.on_time_publication_rate == Ratio(1, 1)
    assert m2024.problem_disposal_rate == Ratio(0, 0)
    assert m2024.as_json()["problem_disposal_rate"] == {"value": None, "numerator": 0, "denominator": 0}
    # 2030: E1 E4 E6 E7 E8 E9 E10 E11 still active; nothing else happened
    assert m2030.as_json() == {
        "year": 2030,
        "inspected_share": {"value": 0.0, "numerator": 0, "denominator": 8},
        "joint_rate": {"value": None, "numerator": 0, "denominator": 0},
        "on_time_publication_rate": {"value": None, "numerator": 0, "denominator": 0},
        "problem_disposal_rate": {"value": None, "numerator": 0, "denominator": 0},
    }


def test_year_end_is_shanghai_time():
    assert year_end(2025) == at(2025, 12, 31, 15, 59)
    assert Ratio(0, 0).value is None and Ratio(3, 4).value == 0.75
    with pytest.raises(ValueError):
        Ratio(-1, 2)
    assert list(Metrics(2025, Ratio(1, 2), Ratio(0, 1), Ratio(1, 1), Ratio(0, 0)).as_json()) == [
        "year", "inspected_share", "joint_rate", "on_time_publication_rate", "problem_disposal_rate"]


# --- the register ------------------------------------------------------------------------------
def test_publication_register(year):
    with year.connect() as c:
        register = publication_register(c, 2025)
        everything = publication_register(c)
    assert len(everything) == len(PUBLICATIONS)
    assert [(r["kind"], r["uscc"]) for r in register] == [
        (kind, TARGETS[name]["uscc"] if name else None) for kind, name in REGISTER_2025]
    published = [r["published_at"] for r in register]
    assert published == sorted(published)
    for row in register:
        assert CONTRACT_REGISTER_KEYS <= set(row)
        assert datetime.fromisoformat(row["published_at"]).utcoffset() is not None
        assert "on_time" not in row and "due_at" not in row
    assert "risk_class" not in json.dumps(register) and '"stratum"' not in json.dumps(register)
    announce = register[1]
    assert announce["task_code"] == "code-T1" and announce["notes"] == [{"uscc": E[1], "kept": True}]
    result_a = register[2]
    assert result_a == {**result_a, "kind": "result", "task_id": "T1", "uscc": E[1], "category": "no_issue",
                        "unit": "360202-SCJ", "entity_name": "企业1", "check_date": "2025-05-10",
                        "published_at": at(2025, 5, 20).isoformat()}
    assert register[0]["plan_code"] == "P-2025" and register[0]["tasks"] == ["T1", "T2", "T3"]
    assert register[4]["strata"] == {"B": {"quota": 2}}  # a draw's public per-stratum record stays


# --- cases --------------------------------------------------------------------------------------
def test_case_list_and_filters(year):
    with year.connect() as c:
        cases = case_list(c)
        assert [r["lead_id"] for r in cases] == ["F2", "F1", "F3", "F4", "F6", "F5"]  # by opened_at
        assert all(CONTRACT_CASE_KEYS <= set(r) for r in cases)
        assert [r["lead_id"] for r in case_list(c, task_id="T1")] == ["F2", "F1", "F3"]
        assert [r["lead_id"] for r in case_list(c, state="open")] == ["F1", "F5"]
        assert [r["lead_id"] for r in case_list(c, task_id="T2", state="closed")] == ["F4", "F6"]
        assert case_list(c, task_id="nope") == []
        with pytest.raises(ValueError, match="'shut'"):
            case_list(c, state="shut")
    f6 = next(r for r in cases if r["lead_id"] == "F6")
    assert f6["decision_no"] == "景市监罚〔2025〕12号"
    assert f6["closed_at"] == at(2025, 10, 13).isoformat() and f6["uscc"] == E[11]


def test_link_case_rules(year):
    number = "景市监罚〔2026〕3号"
    with year.begin() as c:
        linked = link_case(c, "F1", number)
    assert linked["already_recorded"] is False and linked["decision_no"] == number
    assert linked["state"] == "open"  # linking does not close the lead
    with year.begin() as c:
        assert link_case(c, "F1", number)["already_recorded"] is True
        assert link_case(c, "F6", "景市监罚〔2025〕12号")["already_recorded"] is True
    with year.begin() as c:
        with pytest.raises(CaseLinkConflict) as conflict:
            link_case(c, "F1", "景市监罚〔2026〕4号")
        assert number in str(conflict.value) and "〔2026〕4号" in str(conflict.value) and "F1" in str(conflict.value)
        with pytest.raises(ValueError, match="order_to_publish"):
            link_case(c, "F2", number)
        with pytest.raises(LookupError, match="'F99'"):
            link_case(c, "F99", number)
        with pytest.raises(ValueError, match="empty"):
            link_case(c, "F5", "  ")
    with year.connect() as c:
        stored = dict(c.execute(select(schema.follow_ups.c.lead_id, schema.follow_ups.c.decision_no)).all())
    assert stored == {"F1": number, "F2": None, "F3": None, "F4": None, "F5": None, "F6": "景市监罚〔2025〕12号"}


# --- tasks and the summary ------------------------------------------------------------------------
def test_task_rows(year):
    with year.connect() as c:
        rows = {r["task_id"]: r for r in task_rows(c, plan="P-2025")}
        assert list(rows) == ["T1", "T2", "T3", "T4"]
        assert rows["T1"]["targets"] == {"approved": 1, "checked": 2, "closed": 1, "entered": 1, "follow_up": 1,
                                         "published": 1}
        assert rows["T1"]["overdue"] == 2  # b, e
        assert rows["T2"]["targets"] == {"closed": 2, "published": 3} and rows["T2"]["overdue"] == 1  # i
        assert rows["T3"]["targets"] == {"cancelled": 1} and rows["T3"]["cancelled_at"] is not None
        assert rows["T4"]["targets"] == {} and rows["T4"]["overdue"] == 0
        assert rows["T2"] == {**rows["T2"], "task_code": "景市监抽查〔2025〕2号", "plan_code": "P-2025",
                              "unit": "360203-SCJ", "partner_units": ["360200-SWJ"], "year": 2025}

        assert [r["task_id"] for r in task_rows(c)] == ["T0", "T1", "T2", "T3", "T4"]  # every plan's


def test_task_summary(year):
    # From the engine (a connection of its own) or from the caller's connection.
    t1 = task_summary(year, "T1")
    assert t1 == {"task_code": "景市监抽查〔2025〕1号",
                  "targets": {"approved": 1, "checked": 2, "closed": 1, "entered": 1, "follow_up": 1, "published": 1},
                  "overdue": [E[3], E[8]],  # b, e
                  "next_deadline": at(2025, 9, 1).isoformat()}  # d: the earliest of the unpublished d e f g
    with year.connect() as c:
        assert task_summary(c, "T2")["next_deadline"] is None  # every target published
        assert task_summary(c, "T4") == {"task_code": "景市监抽查〔2025〕4号", "targets": {}, "overdue": [],
                                         "next_deadline": None}
        assert task_summary(c, "nope") == {"task_code": None, "targets": {}, "overdue": [], "next_deadline": None}


def test_year_summary(year):
    with year.connect() as c:
        summary = year_summary(c, "P-2025", as_of=AS_OF)
        with pytest.raises(LookupError, match="'P-1999'"):
            year_summary(c, "P-1999")
    assert summary["year"] == 2025 and [r["task_id"] for r in summary["tasks"]] == ["T1", "T2", "T3", "T4"]
    assert summary["task_counts"] == {"total": 4, "cancelled": 1, "joint": 1}
    # selected in the current draws: T1 #2 (E1 A, E3 B, E6 C, E7 U, E8 B, E9 B, E10 D), T2 #1 (A B B C)
    assert summary["targets_by_stratum"] == {"A": 2, "B": 5, "C": 2, "D": 1, "U": 1}
    assert summary["targets_by_kind"] == {"random": 12, "targeted": 1}
    # accepted results of the plan's tasks: a k no_issue, b j failed, c, g, h, i, l
    assert summary["results_by_category"] == {"failed": 2, "no_activity": 1, "no_issue": 2, "ordered_to_correct": 1,
                                              "passed": 1, "unpublished_info": 1, "unreachable": 1}
    assert summary["publications"] == {"on_time": 6, "late": 2}  # a c h j k l / b i
    assert summary["follow_ups"] == {"abnormal_listing": {"open": 0, "closed": 1},
                                     "case_lead": {"open": 2, "closed": 1},
                                     "correction": {"open": 0, "closed": 1},
                                     "order_to_publish": {"open": 0, "closed": 1}}
    assert summary["alerts"] == {"calendar": 1, "escalation": 1, "reminder": 3}  # T0's escalation is 2024's plan
    with year.connect() as c:
        assert summary["metrics"] == metrics(c, 2025, as_of=AS_OF).as_json()
    json.dumps(summary, ensure_ascii=False)  # printable as is


def test_next_deadline_is_the_earliest_open_one_window_publication_or_order(year):
    """T1's earliest unpublished target (d) is due 2025-09-01; an open order and a target still
    awaiting its check each take the lead once earlier, and a closed order never does."""
    def next_deadline(*rows) -> str | None:
        with year.begin() as c:
            for table, row in rows:
                c.execute(insert(table).values(**row))
        return task_summary(year, "T1")["next_deadline"]

    closed_earlier = {**follow_up("F7", "d", "order_to_publish", "closed", at(2025, 8, 2), at(2025, 8, 5)),
                      "due_at": at(2025, 8, 16)}
    assert next_deadline((schema.follow_ups, closed_earlier)) == at(2025, 9, 1).isoformat()
    order = {**follow_up("F8", "d", "order_to_publish", "open", at(2025, 8, 2)), "due_at": at(2025, 8, 20)}
    assert next_deadline((schema.follow_ups, order)) == at(2025, 8, 20).isoformat()
    # A target dispatched, not yet checked, opens the window's deadline (2025-11-10 23:59:59 Beijing time):
    # later than the order, so it leads only once the order is closed and every result published.
    waiting, _ = target("k", "T1", 11, "dispatched")
    assert next_deadline((schema.targets, waiting)) == at(2025, 8, 20).isoformat()
    with year.begin() as c:
        c.execute(schema.follow_ups.update().where(schema.follow_ups.c.lead_id == "F8").values(state="closed"))
        tg = schema.targets
        unpublished = tg.update().where(tg.c.task_id == "T1", tg.c.published_at.is_(None))
        c.execute(unpublished.values(published_at=at(2025, 9, 2)))
    assert task_summary(year, "T1")["next_deadline"] == at(2025, 11, 10, 15, 59, 59).isoformat()
