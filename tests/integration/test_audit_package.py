"""Audit packages on PostgreSQL: a real draw (the activities run directly), exported, verified, tampered with.

The draw is built by `DrawActivities` on the example directories, as the workers would build it:
announce, targeted entities, freeze, draw with an entropy value, dispatch. Then the package is
exported and verified from its files (the independent verifier) and against the database (the
freeze rebuilt from the directory's history as of `frozen_at`, the ratios against the plan).
One test runs the same on SQLite, the embedded demo's database.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update
from temporalio.testing import ActivityEnvironment

from activities.draws import DrawActivities, parse_pool
from audit.verify import PackageError, verify_dispatch
from db import schema
from db.engine import normalize_url
from domain.messages.task import TargetedStep, TaskStep
from domain.workdays import SHANGHAI
from read.audit_package import (
    export_dispatch,
    export_draw,
    verify_against_database,
    verify_from_files,
)
from runtime.examples import shifted_plan
from store.plans import load_plan
from service.imports import import_directory, import_examples
from store import views
from store.directory import in_force, task_line
from store.draws import eligible_population
from tests.conftest import own_schema

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
ENTROPY_SOURCE = "中国福利彩票3D 第2025091期开奖号码"
ENTROPY = "3D-2025091 538"
TARGETED_REASON = "complaint 12315-2025-0042"


# --- building a real draw ------------------------------------------------------------------------
def small_plan(today, plan_code: str, tasks: int = 1) -> bytes:
    """The first task of the demo template (tests/workflows/test_chain.py), `tasks` times, with a named entropy source."""
    plan = json.loads(shifted_plan(today, window_days=60))
    plan["plan_code"] = plan_code
    template = plan["tasks"][0]
    plan["tasks"] = [{**template, "task_id": f"{plan_code}-T{n}", "task_code": f"{template['task_code']}-{n}",
                      "entropy_source": ENTROPY_SOURCE} for n in range(1, tasks + 1)]
    return json.dumps(plan, ensure_ascii=False).encode()


@dataclasses.dataclass
class Drawn:
    engine: object
    task_id: str
    targeted: list[str]
    schema: str = ""
    url: str = ""


def run_activity(task_id: str, method, argument):
    env = ActivityEnvironment()
    # (workflow_id, step) keys the register rows, as the task workflow's id would.
    env.info = dataclasses.replace(ActivityEnvironment.default_info(), workflow_id=f"task/{task_id}")
    return env.run(method, argument)


def load_tasks(engine, tasks: int = 1) -> list[str]:
    """Directories as of yesterday and a plan of `tasks` tasks over the same entities."""
    import_examples(engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    code = f"AUDIT-{uuid.uuid4().hex[:6].upper()}"
    plan, created = load_plan(engine, small_plan(datetime.now(SHANGHAI).date(), code, tasks), "plan.json")
    assert created
    return [task.task_id for task in plan.tasks]


def run_draw(engine, task_id: str, targeted: list[str] = (), dispatch: bool = True) -> None:
    """announce → targeted → freeze → draw → dispatch, as the task workflow runs them."""
    activities = DrawActivities(engine)
    step = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY)
    run_activity(task_id, activities.announce, step)
    for uscc in targeted:
        run_activity(task_id, activities.record_targeted, TargetedStep(
            task_id=task_id, uscc=uscc, reason=TARGETED_REASON, at=datetime.now(timezone.utc)))
    run_activity(task_id, activities.freeze, step)
    assert run_activity(task_id, activities.draw, step).selected > 0
    if dispatch:
        run_activity(task_id, activities.dispatch, step)


def build_draw(engine) -> Drawn:
    (task_id,) = load_tasks(engine)
    with engine.connect() as connection:  # two eligible entities of the task's region, targeted
        e = schema.entities
        targeted = [r.uscc for r in connection.execute(
            select(e.c.uscc).where(in_force(e, datetime.now(timezone.utc)), e.c.region.startswith("360202"),
                                   e.c.subject_type == "enterprise", e.c.status == "active")
            .order_by(e.c.uscc).limit(2))]
    run_draw(engine, task_id, targeted)
    return Drawn(engine, task_id, targeted)


@pytest.fixture(scope="module")
def drawn(postgres_url):
    """A schema of its own for this module's read-only tests (the mutating ones build their own)."""
    with own_schema(postgres_url) as schema:
        built = build_draw(schema.engine)
        built.schema = schema.name
        built.url = postgres_url
        yield built


@pytest.fixture(scope="module")
def package(drawn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("package")
    summary = export_draw(drawn.engine, drawn.task_id, record_path=folder / "record.json",
                          population_path=folder / "population.csv")
    return summary, folder / "record.json", folder / "population.csv"


def copy_package(package, tmp_path) -> tuple[Path, Path]:
    _, record, population = package
    (tmp_path / "record.json").write_bytes(record.read_bytes())
    (tmp_path / "population.csv").write_bytes(population.read_bytes())
    return tmp_path / "record.json", tmp_path / "population.csv"


def failed(report) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if not c.ok}


# --- the export ----------------------------------------------------------------------------------
def test_export_writes_the_package_as_the_protocol_says(drawn, package):
    summary, record_path, population_path = package
    record = json.loads(record_path.read_text(encoding="utf-8"))
    raw = population_path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw and b'"' not in raw
    lines = raw.decode("ascii").split("\n")
    assert lines[0] == "uscc,stratum" and lines[-1] == ""
    rows = [line.split(",") for line in lines[1:-1]]
    usccs = [u for u, _ in rows]
    assert usccs == sorted(usccs, key=lambda u: u.encode()) and len(set(usccs)) == len(usccs)
    assert summary["rows"] == len(rows) == sum(p["population"] for p in record["strata"].values()) > 100

    for key in ("protocol", "task_id", "task_code", "draw_seq", "supersedes", "reason", "approver", "frozen_at",
                "population_digest", "strata", "exclusions", "commitment", "entropy_source", "entropy", "nonce",
                "seed", "selection_digest", "population_salt", "selected", "targeted"):
        assert key in record, key
    assert record["protocol"] == "sc-draw-v1" and record["task_id"] == drawn.task_id
    assert record["entropy_source"] == ENTROPY_SOURCE and record["entropy"] == ENTROPY
    assert record["selected"] == sorted(record["selected"]) and len(record["selected"]) == summary["selected"]
    assert record["targeted"] == [{"uscc": u, "reason": TARGETED_REASON} for u in drawn.targeted]
    with drawn.engine.connect() as connection:
        salt = connection.execute(select(schema.draws.c.population_salt).where(
            schema.draws.c.task_id == drawn.task_id)).scalar()
        chosen = sorted(r.uscc for r in connection.execute(select(schema.draw_selection.c.uscc).where(
            schema.draw_selection.c.task_id == drawn.task_id)))
    assert record["population_salt"] == salt and record["selected"] == chosen
    # Secrets for auditors only: not readable by others, and no temporary file left behind.
    assert oct(os.stat(record_path).st_mode & 0o777) == oct(0o600)
    assert sorted(p.name for p in record_path.parent.iterdir()) == ["population.csv", "record.json"]


def test_export_of_an_undrawn_task_is_refused_and_writes_nothing(drawn, tmp_path):
    with pytest.raises(LookupError, match="no draw"):
        export_draw(drawn.engine, "NO-SUCH-TASK", record_path=tmp_path / "r.json", population_path=tmp_path / "p.csv")
    with pytest.raises(LookupError, match="no draw #7"):
        export_draw(drawn.engine, drawn.task_id, 7, record_path=tmp_path / "r.json", population_path=tmp_path / "p.csv")
    assert list(tmp_path.iterdir()) == []


# --- verification from the files -----------------------------------------------------------------
def test_the_exported_package_verifies(package):
    _, record, population = package
    report = verify_from_files(record, population)
    assert report.ok, str(report)
    names = {c.name for c in report.checks}
    assert {"commitment", "seed", "population_digest", "strata", "quotas", "selection", "selection_digest",
            "targeted", "entropy"} <= names


def _tamper_seed(record, rows):
    digit = record["seed"][10]
    record["seed"] = record["seed"][:10] + ("0" if digit != "0" else "1") + record["seed"][11:]


def _tamper_ratio(record, rows):
    stratum = max(record["strata"], key=lambda s: record["strata"][s]["population"])
    record["strata"][stratum]["ratio"] = "0.5" if record["strata"][stratum]["ratio"] != "0.5" else "0.6"


def _tamper_salt(record, rows):
    record["population_salt"] = ("f" if record["population_salt"][0] != "f" else "e") + record["population_salt"][1:]


def _tamper_stratum(record, rows):
    index = len(rows) // 2
    rows[index][1] = "D" if rows[index][1] != "D" else "C"


def _tamper_drop_row(record, rows):
    del rows[len(rows) // 3]


@pytest.mark.parametrize("tamper, expected", [
    (_tamper_seed, {"seed"}),
    (_tamper_ratio, {"quotas"}),
    (_tamper_salt, {"population_digest"}),
    (_tamper_stratum, {"population_digest", "strata"}),
    (_tamper_drop_row, {"population_digest", "strata"}),
], ids=["seed digit", "ratio", "salt", "stratum of a row", "row dropped"])
def test_tampering_fails_naming_what_differs(package, tmp_path, tamper, expected):
    record_path, population_path = copy_package(package, tmp_path)
    record = json.loads(record_path.read_text(encoding="utf-8"))
    with open(population_path, newline="") as handle:
        rows = [row for row in csv.reader(handle)][1:]
    tamper(record, rows)
    record_path.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    population_path.write_text("uscc,stratum\n" + "".join(f"{u},{s}\n" for u, s in rows), encoding="utf-8")

    report = verify_from_files(record_path, population_path)
    assert not report.ok
    problems = failed(report)
    assert expected <= set(problems), str(report)
    for name in expected:
        assert "record says" in problems[name] or "recomputed" in problems[name], problems[name]


def test_tampered_seed_names_both_values(package, tmp_path):
    record_path, population_path = copy_package(package, tmp_path)
    record = json.loads(record_path.read_text(encoding="utf-8"))
    true_seed = record["seed"]
    _tamper_seed(record, [])
    record_path.write_text(json.dumps(record), encoding="utf-8")
    detail = failed(verify_from_files(record_path, population_path))["seed"]
    assert detail == f"record says {record['seed']}, recomputed {true_seed}"


def test_files_that_are_no_package_are_bad_input(package, tmp_path):
    record_path, population_path = copy_package(package, tmp_path)
    (tmp_path / "not.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PackageError, match="not JSON: line 1 column 2"):
        verify_from_files(tmp_path / "not.json", population_path)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + population_path.read_bytes())
    with pytest.raises(PackageError, match="line 1 is .* expected the header"):
        verify_from_files(record_path, tmp_path / "bom.csv")
    with pytest.raises(FileNotFoundError):
        verify_from_files(tmp_path / "missing.json", population_path)


# --- verification against the database -----------------------------------------------------------
def test_verify_against_the_database_passes(drawn):
    report = verify_against_database(drawn.engine, drawn.task_id)
    assert report.ok, str(report)
    names = {c.name for c in report.checks}
    assert {"seed", "population_digest", "selection", "freeze rebuilt", "freeze strata", "freeze exclusions",
            "plan ratios", "plan task", "announced", "freeze published"} <= names


def test_directory_changes_after_the_freeze_do_not_change_the_verification(fresh_pg_engine, tmp_path):
    built = build_draw(fresh_pg_engine)
    engine = built.engine
    assert verify_against_database(engine, built.task_id).ok
    e = schema.entities
    with engine.connect() as connection:
        # Not a selected one: the recomputed selection, and so the verdict, would depend on the draw's nonce.
        selected, *_ = views.draw_selection(connection, built.task_id, 1)
        member, stratum = next((u, s) for u, s in views.draw_population(connection, built.task_id, 1)
                               if s != "D" and u not in built.targeted and u not in selected)
        current = connection.execute(select(e).where(e.c.uscc == member, e.c.valid_to.is_(None))).mappings().one()

    # A new version after the freeze: reclassified to D and deregistered. The current directory
    # would now exclude it; the directory as of frozen_at still holds it in its old stratum.
    changed = {c: current[c] for c in ("uscc", "name", "subject_type", "region", "industry", "risk_class", "status",
                                       "address", "labels")}
    changed.update(risk_class="D", status="deregistered")
    path = tmp_path / "entities-changed.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(changed))
        writer.writeheader()
        writer.writerow(changed)
    summary = import_directory(engine, "entities", path, now=datetime.now(timezone.utc))
    assert summary.changed == 1
    with engine.connect() as connection:
        versions = connection.execute(select(func.count()).select_from(e).where(e.c.uscc == member)).scalar()
    assert versions == 2

    report = verify_against_database(engine, built.task_id)
    assert report.ok, str(report)

    # History rewritten: the version in force at the freeze loses the entity's class. The population
    # recomputed as of frozen_at no longer hashes to the published digest, and its strata differ.
    with engine.begin() as connection:
        connection.execute(update(e).where(e.c.uscc == member, e.c.valid_to.is_not(None)).values(risk_class="D"))
    report = verify_against_database(engine, built.task_id)
    problems = failed(report)
    # The selection is recomputed from that population too: when the moved entity changes a stratum's
    # quota (ceil(N × r) crosses a whole number) or its hash ranks, the selection checks fail as well.
    must = {"population_digest", "strata", "freeze strata"}
    assert must <= set(problems) <= must | {"selection", "selection_digest"}, str(report)


def test_ratios_are_checked_against_the_published_plan(fresh_pg_engine):
    built = build_draw(fresh_pg_engine)
    pt = schema.plan_tasks
    with built.engine.begin() as connection:
        line = json.loads(connection.execute(select(pt.c.document).where(pt.c.task_id == built.task_id)).scalar())
        line["ratios"]["B"] = "0.5"
        connection.execute(update(pt).where(pt.c.task_id == built.task_id).values(document=json.dumps(line)))
    problems = failed(verify_against_database(built.engine, built.task_id))
    assert set(problems) == {"plan ratios"}
    assert "B: record says 0.05, the plan says 0.5" in problems["plan ratios"]


def keep_population_as_before_0006(engine, task_id: str) -> None:
    """The draw as one made before migration 0006 left it: its population rows stored."""
    d, dp = schema.draws, schema.draw_population
    with engine.begin() as connection:
        rows = [dict(task_id=task_id, draw_seq=1, uscc=u, stratum=s)
                for u, s in views.draw_population(connection, task_id, 1)]
        connection.execute(insert(dp), rows)
        connection.execute(update(d).where(d.c.task_id == task_id).values(population_stored=True))


def test_a_draw_with_a_stored_population_verifies_from_its_rows(fresh_pg_engine, tmp_path):
    """Draws made before migration 0006 keep their population rows: exported and verified from them."""
    built = build_draw(fresh_pg_engine)
    keep_population_as_before_0006(built.engine, built.task_id)
    report = verify_against_database(built.engine, built.task_id)
    assert report.ok, str(report)
    assert "the same USCCs and strata as the stored population" in {c.name: c.detail for c in report.checks}[
        "freeze rebuilt"]
    export_draw(built.engine, built.task_id, record_path=tmp_path / "r.json", population_path=tmp_path / "p.csv")
    assert verify_from_files(tmp_path / "r.json", tmp_path / "p.csv").ok

    dp = schema.draw_population
    with built.engine.begin() as connection:
        uscc = connection.execute(select(dp.c.uscc).where(dp.c.task_id == built.task_id, dp.c.stratum == "B")
                                  .order_by(dp.c.uscc).limit(1)).scalar()
        connection.execute(update(dp).where(dp.c.task_id == built.task_id, dp.c.uscc == uscc).values(stratum="C"))
    problems = failed(verify_against_database(built.engine, built.task_id))
    assert f"1 in another stratum then: {uscc} (directory B, stored C)" in problems["freeze rebuilt"]
    assert "population_digest" in problems


def test_other_tasks_selections_count_as_they_stood_at_the_freeze(fresh_pg_engine):
    """R12 across tasks: T2's freeze excludes T1's selection; T1's later-drawn neighbours never touch T1's rebuild."""
    engine = fresh_pg_engine
    first, second = load_tasks(engine, tasks=2)
    run_draw(engine, first)
    run_draw(engine, second)
    with engine.connect() as connection:
        exclusions = json.loads(connection.execute(select(schema.draws.c.record).where(
            schema.draws.c.task_id == second)).scalar())["public"]["exclusions"]
    # The same entities: T1's selection is excluded from T2's population (frequency cap 1, A class).
    assert exclusions.get("frequency_cap", 0) + exclusions.get("a_class_already_drawn", 0) > 0
    # T1 was frozen before T2 drew: T2's selection is not "already drawn" as of T1's freeze,
    # though as of now it would be.
    with engine.connect() as connection:
        line, year = task_line(connection, first)
        now = eligible_population(connection, first, line, year, datetime.now(timezone.utc)).subquery()
        assert connection.execute(select(func.count()).select_from(now).where(now.c.reason.in_(
            ["frequency_cap", "a_class_already_drawn"]))).scalar() > 0
    report = verify_against_database(engine, first)
    assert report.ok, str(report)
    assert verify_against_database(engine, second).ok
    # T1 cancelled after T2's freeze: its selection still counted for T2, as it was then.
    with engine.begin() as connection:
        connection.execute(update(schema.plan_tasks).where(schema.plan_tasks.c.task_id == first)
                           .values(cancelled_at=datetime.now(timezone.utc), cancel_reason="test"))
    report = verify_against_database(engine, second)
    assert report.ok, str(report)


def test_a_redraw_verifies_and_the_superseded_draw_stays_auditable(fresh_pg_engine, tmp_path):
    engine = fresh_pg_engine
    (task_id,) = load_tasks(engine)
    run_draw(engine, task_id, dispatch=False)
    activities = DrawActivities(engine)
    first = TaskStep(task_id=task_id, draw_seq=1, entropy=ENTROPY, reason="wrong filter", approver="JDZ-S001")
    run_activity(task_id, activities.supersede_draw, first)
    second = TaskStep(task_id=task_id, draw_seq=2, entropy="3D-2025092 117", reason="wrong filter",
                      approver="JDZ-S001")
    for method in (activities.announce, activities.freeze, activities.draw):
        run_activity(task_id, method, second)

    latest = export_draw(engine, task_id, record_path=tmp_path / "r2.json", population_path=tmp_path / "p2.csv")
    assert (latest["draw_seq"], latest["state"]) == (2, "drawn")
    record = json.loads((tmp_path / "r2.json").read_text(encoding="utf-8"))
    assert (record["supersedes"], record["reason"], record["approver"]) == (1, "wrong filter", "JDZ-S001")
    assert verify_from_files(tmp_path / "r2.json", tmp_path / "p2.csv").ok
    assert verify_against_database(engine, task_id).ok
    old = export_draw(engine, task_id, 1, record_path=tmp_path / "r1.json", population_path=tmp_path / "p1.csv")
    assert old["state"] == "superseded"
    assert verify_from_files(tmp_path / "r1.json", tmp_path / "p1.csv").ok
    report = verify_against_database(engine, task_id, 1)
    assert report.ok, str(report)


def test_the_demo_database_sqlite_exports_and_verifies_too(sqlite_engine, tmp_path):
    built = build_draw(sqlite_engine)
    summary = export_draw(sqlite_engine, built.task_id, record_path=tmp_path / "r.json",
                          population_path=tmp_path / "p.csv")
    assert summary["rows"] > 100
    assert verify_from_files(tmp_path / "r.json", tmp_path / "p.csv").ok
    report = verify_against_database(sqlite_engine, built.task_id)
    assert report.ok, str(report)
    assert export_dispatch(sqlite_engine, built.task_id, tmp_path / "d.json")["teams"]


# --- the dispatch record -------------------------------------------------------------------------
def test_dispatch_export_recomputes_with_the_independent_verifier(drawn, tmp_path):
    record = export_dispatch(drawn.engine, drawn.task_id, tmp_path / "dispatch.json")
    assert json.loads((tmp_path / "dispatch.json").read_text(encoding="utf-8")) == record
    assert record["protocol"] == "sc-dispatch-v1" and record["task_id"] == drawn.task_id
    assert set(record["units"]) == {"360202-SCJ"}
    assert set(record["units"]["360202-SCJ"]) == {"pool_digest", "team_size", "load_cap"}
    assert record["teams"] and record["manual"] == {}
    for entries in record["teams"].values():
        assert [set(entry) for entry in entries] == [{"unit", "inspectors"}]
    with drawn.engine.connect() as connection:
        pools = {r.unit_code: r.pool_file.encode("ascii") for r in connection.execute(
            select(schema.dispatch_pools).where(schema.dispatch_pools.c.task_id == drawn.task_id))}
        targets = [r.uscc for r in connection.execute(select(schema.targets.c.uscc).where(
            schema.targets.c.task_id == drawn.task_id))]
    assert parse_pool(pools["360202-SCJ"].decode())  # the pool as frozen
    assert set(targets) == set(record["teams"]) | set(record["unstaffed"])
    report = verify_dispatch(record, pools, record["seed"], record["required_qualifications"], targets)
    assert report.ok, str(report)


def test_dispatch_export_lists_manual_assignments(fresh_pg_engine, tmp_path):
    built = build_draw(fresh_pg_engine)
    t = schema.teams
    at = datetime(2025, 5, 6, 9, 30, tzinfo=timezone.utc)
    with built.engine.begin() as connection:
        uscc = connection.execute(select(t.c.uscc).where(t.c.task_id == built.task_id).limit(1)).scalar()
        connection.execute(t.insert().values(task_id=built.task_id, uscc=uscc, unit_code="360202-SCJ",
                                             inspectors="JDZ-I021;JDZ-I022", source="manual", reason="I01 left",
                                             assigned_by="JDZ-S001", at=at, workflow_id="w", step="assign-1"))
    record = export_dispatch(built.engine, built.task_id, tmp_path / "d.json")
    assert record["manual"] == {uscc: [{"unit": "360202-SCJ", "inspectors": ["JDZ-I021", "JDZ-I022"],
                                        "by": "JDZ-S001", "reason": "I01 left", "at": at.isoformat()}]}


# --- the command line ----------------------------------------------------------------------------
def spotcheck(*args, tmp_path, env=None):
    environment = {**os.environ, "SPOTCHECK_DATA_DIR": str(tmp_path), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_cli_verify_from_files_exit_codes(package, tmp_path):
    record_path, population_path = copy_package(package, tmp_path)
    ok = spotcheck("draw", "verify", "--record", str(record_path), "--population", str(population_path),
                   tmp_path=tmp_path)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.strip().splitlines()
    assert all(line.startswith("PASS ") for line in lines[:-1]) and lines[-1] == "verified: every check passes"
    assert any(line.startswith("PASS seed: ") for line in lines)

    as_json = spotcheck("draw", "verify", "--json", "--record", str(record_path), "--population",
                        str(population_path), tmp_path=tmp_path)
    assert as_json.returncode == 0
    document = json.loads(as_json.stdout)
    assert document["ok"] is True and all(c["ok"] for c in document["checks"])

    record = json.loads(record_path.read_text(encoding="utf-8"))
    _tamper_ratio(record, [])
    record_path.write_text(json.dumps(record), encoding="utf-8")
    mismatch = spotcheck("draw", "verify", "--record", str(record_path), "--population", str(population_path),
                         tmp_path=tmp_path)
    assert mismatch.returncode == 1
    assert "FAIL quotas: " in mismatch.stdout and "MISMATCH" in mismatch.stdout

    wrong_task = spotcheck("draw", "verify", "OTHER-TASK", "--record", str(package[1]), "--population",
                           str(population_path), tmp_path=tmp_path)
    assert wrong_task.returncode == 1 and "FAIL requested task" in wrong_task.stdout

    for bad in (["--record", str(tmp_path / "missing.json"), "--population", str(population_path)],
                ["--record", str(population_path), "--population", str(population_path)],
                ["--record", str(record_path)],
                ["--record", str(record_path), "--population", str(population_path), "--draw-seq", "1"],
                []):
        result = spotcheck("draw", "verify", *bad, tmp_path=tmp_path)
        assert result.returncode == 2, (bad, result.stdout, result.stderr)
        assert result.stderr.startswith("spotcheck draw: ") and result.stdout == ""


def test_cli_export_and_verify_against_the_database(drawn, tmp_path):
    url = normalize_url(drawn.url).replace("postgresql+psycopg2://", "postgresql://")
    env = {"DATABASE_URL": f"{url}?options=-csearch_path%3D{drawn.schema}"}
    record, population, dispatch = tmp_path / "r.json", tmp_path / "p.csv", tmp_path / "d.json"
    exported = spotcheck("draw", "export", drawn.task_id, "--record", str(record), "--population", str(population),
                         "--json", env=env, tmp_path=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["rows"] == len(population.read_text().splitlines()) - 1
    verified = spotcheck("draw", "verify", drawn.task_id, env=env, tmp_path=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASS freeze rebuilt: " in verified.stdout and "PASS plan ratios: " in verified.stdout
    files = spotcheck("draw", "verify", drawn.task_id, "--record", str(record), "--population", str(population),
                      tmp_path=tmp_path)
    assert files.returncode == 0, files.stdout
    assert spotcheck("dispatch", "export", drawn.task_id, "--record", str(dispatch), env=env,
                     tmp_path=tmp_path).returncode == 0
    assert json.loads(dispatch.read_text(encoding="utf-8"))["protocol"] == "sc-dispatch-v1"
    unknown = spotcheck("draw", "verify", "NO-SUCH-TASK", env=env, tmp_path=tmp_path)
    assert unknown.returncode == 2 and "no drawn draw" in unknown.stderr
