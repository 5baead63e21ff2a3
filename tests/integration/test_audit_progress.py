"""The audit package's progress hooks (issue 6): export (PostgreSQL COPY, SQLite batches) and both
verifications tell `progress(rows so far, rows in all)` as they stream the population, and end on
(rows, rows). With no hook, nothing changes (the other audit package tests)."""
from __future__ import annotations

import pytest

import read.audit_package as audit_package
from read.audit_package import export_draw, verify_against_database, verify_from_files
from tests.integration.test_audit_package import build_draw

ENGINES = ["sqlite_engine", pytest.param("fresh_pg_engine", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue(request.param)


def check_calls(calls: list[tuple[int, int | None]], rows: int) -> None:
    assert calls, "no progress reported"
    assert calls[-1] == (rows, rows)
    done = [n for n, _ in calls]
    assert done == sorted(done) and len(calls) >= rows // 100  # told along the way, every 100 rows here
    assert {total for _, total in calls} == {rows}


def test_export_and_verify_report_progress(engine, tmp_path, monkeypatch):
    built = build_draw(engine)
    monkeypatch.setattr(audit_package, "_FETCH", 100)  # report often: a few thousand rows here, millions in a province

    calls: list[tuple[int, int | None]] = []
    summary = export_draw(engine, built.task_id, record_path=tmp_path / "r.json", population_path=tmp_path / "p.csv",
                          progress=lambda done, total: calls.append((done, total)))
    rows = summary["rows"]
    assert rows > 100
    check_calls(calls, rows)

    calls.clear()
    assert verify_from_files(tmp_path / "r.json", tmp_path / "p.csv",
                             progress=lambda done, total: calls.append((done, total))).ok
    check_calls(calls, rows)

    calls.clear()
    report = verify_against_database(engine, built.task_id, progress=lambda done, total: calls.append((done, total)))
    assert report.ok, str(report)
    check_calls(calls, rows)
