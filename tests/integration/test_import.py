"""The directory import against a database: all or nothing, versions, errors found over the whole file.

Each test runs on SQLite (the demo) and on PostgreSQL (a fresh schema per test): both paths must
give the same results and the same errors.
"""
from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.schema import entities, import_batches, inspectors, items, units
from domain.uscc import make_uscc
from service.imports import ImportRejected, import_directory
from store.directory_import import as_of_clause, current_clause

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
T1 = T0 + timedelta(days=30)
T2 = T0 + timedelta(days=60)

ENGINES = ["sqlite_engine", pytest.param("fresh_pg_engine", marks=pytest.mark.postgres)]

USCCS = [make_uscc(f"91360200MA35{i:05d}") for i in range(6)]
NEW_USCC = make_uscc("92360202000001234")

UNITS = [
    {"unit_code": "360200-SCJ", "name": "景德镇市市场监督管理局", "parent_code": "", "review_required": "true"},
    {"unit_code": "360202-SCJ", "name": "珠山区市场监督管理局", "parent_code": "360200-SCJ", "review_required": "false"},
]
ITEMS = [
    {
        "item_code": "GS-001", "name": "企业公示信息抽查", "legal_basis": "《企业信息公示暂行条例》第十四条",
        "category": "general", "methods": "document;online", "qualification": "gs.inspector",
        "effective_from": "2025-01-01", "effective_to": "2025-12-31", "public_info_check": "true",
        "ratio_cap": "0.03", "target_labels": "", "checklist": "cp.annual;cp.capital",
    },
]
ENTITIES = [
    {
        "uscc": uscc, "name": f"景德镇市某某瓷业有限公司{i}", "subject_type": "enterprise", "region": "360202",
        "industry": "C3071", "risk_class": "B", "status": "active", "address": f"珠山区瓷都大道{i}号", "labels": "",
    }
    for i, uscc in enumerate(USCCS)
]
INSPECTORS = [
    {
        "inspector_id": "I001", "name": "张三", "unit_code": "360202-SCJ", "region": "360202",
        "qualifications": "gs.inspector", "expertise": "", "recusal": USCCS[0], "cert_no": "赣执0001",
        "cert_expiry": "2027-12-31", "status": "active", "roles": "inspector;reviewer",
    },
]
GOOD = {"units": UNITS, "items": ITEMS, "entities": ENTITIES, "inspectors": INSPECTORS}
TABLES = {"units": units, "items": items, "entities": entities, "inspectors": inspectors}


@pytest.fixture(params=ENGINES)
def engine(request):
    return request.getfixturevalue(request.param)


def write_csv(folder: Path, name: str, rows: list[dict], header: list[str] | None = None) -> Path:
    header = list(rows[0]) if header is None else header
    path = folder / name
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([[row.get(column, "") for column in header] for row in rows])
    return path


def load(engine, folder: Path, kind: str, rows: list[dict], at: datetime = T0, **kwargs):
    return import_directory(engine, kind, write_csv(folder, f"{kind}.csv", rows, **kwargs), now=at)


def load_all(engine, folder: Path, at: datetime = T0) -> None:
    for kind in ("units", "items", "entities", "inspectors"):  # inspectors name units
        load(engine, folder, kind, GOOD[kind], at)


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in {**TABLES, "batches": import_batches}.items()
        }


def rejected(engine, folder: Path, kind: str, rows: list[dict], **kwargs) -> ImportRejected:
    """Import a bad file: it must raise and change nothing."""
    before = counts(engine)
    with pytest.raises(ImportRejected) as caught:
        load(engine, folder, kind, rows, at=T1, **kwargs)
    assert counts(engine) == before
    return caught.value


def current(engine, table, key: str, at: datetime | None = None) -> dict:
    where = current_clause(table) if at is None else as_of_clause(table, at)
    key_column = table.primary_key.columns.values()[0]
    with engine.connect() as conn:
        return dict(conn.execute(select(table).where(where, key_column == key)).mappings().one())


# --- good files --------------------------------------------------------------------------------
def test_a_first_import_adds_every_row(engine, tmp_path):
    summaries = [load(engine, tmp_path, kind, GOOD[kind]) for kind in ("units", "items", "entities", "inspectors")]
    assert [(s.kind, s.rows_read, s.added, s.changed, s.unchanged) for s in summaries] == [
        ("units", 2, 2, 0, 0), ("items", 1, 1, 0, 0), ("entities", 6, 6, 0, 0), ("inspectors", 1, 1, 0, 0),
    ]
    assert all(s.batch_id is not None for s in summaries)
    assert counts(engine) == {"units": 2, "items": 1, "entities": 6, "inspectors": 1, "batches": 4}
    with engine.connect() as conn:
        batch = conn.execute(select(import_batches).where(import_batches.c.kind == "entities")).mappings().one()
    assert (batch["file_name"], batch["rows_read"], batch["rows_changed"], len(batch["file_sha256"])) == ("entities.csv", 6, 6, 64)


def test_values_are_stored_normalized(engine, tmp_path):
    load_all(engine, tmp_path)
    item = current(engine, items, "GS-001")
    assert item["methods"] == "document;online" and item["public_info_check"] is True and item["ratio_cap"] == "0.03"
    assert str(item["effective_to"]) == "2025-12-31"
    assert current(engine, units, "360200-SCJ")["parent_code"] is None
    assert current(engine, units, "360202-SCJ")["review_required"] is False
    assert current(engine, inspectors, "I001")["roles"] == "inspector;reviewer"


def test_reimporting_the_same_file_changes_nothing(engine, tmp_path):
    load_all(engine, tmp_path)
    before = counts(engine)
    for kind in ("units", "items", "entities", "inspectors"):
        summary = load(engine, tmp_path, kind, GOOD[kind], at=T1)
        assert (summary.added, summary.changed, summary.unchanged, summary.batch_id) == (0, 0, len(GOOD[kind]), None)
    assert counts(engine) == before


def test_a_changed_row_adds_a_version_and_keeps_the_old_one(engine, tmp_path):
    load(engine, tmp_path, "entities", ENTITIES, at=T0)
    changed = [dict(row) for row in ENTITIES]
    changed[2]["risk_class"] = "D"
    summary = load(engine, tmp_path, "entities", changed, at=T1)
    assert (summary.added, summary.changed, summary.unchanged) == (0, 1, 5) and summary.batch_id is not None
    assert counts(engine)["entities"] == 7
    assert current(engine, entities, USCCS[2])["risk_class"] == "D"
    assert current(engine, entities, USCCS[2], at=T1 - timedelta(seconds=1))["risk_class"] == "B"
    assert current(engine, entities, USCCS[2], at=T1)["risk_class"] == "D"
    assert current(engine, entities, USCCS[3], at=T0)["risk_class"] == "B"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(entities).where(as_of_clause(entities, T0 - timedelta(seconds=1)))).scalar_one() == 0
        versions = conn.execute(select(entities.c.risk_class, entities.c.batch_id).where(entities.c.uscc == USCCS[2])
                                .order_by(entities.c.valid_from)).all()
    assert [v.risk_class for v in versions] == ["B", "D"] and versions[1].batch_id == summary.batch_id
    with engine.connect() as conn:
        batch = conn.execute(select(import_batches).where(import_batches.c.batch_id == summary.batch_id)).mappings().one()
    assert (batch["rows_read"], batch["rows_changed"]) == (6, 1)


def test_a_file_is_an_update_not_a_replacement(engine, tmp_path):
    load(engine, tmp_path, "entities", ENTITIES, at=T0)
    new = {**ENTITIES[0], "uscc": NEW_USCC, "subject_type": "individual"}
    summary = load(engine, tmp_path, "entities", [ENTITIES[1], new], at=T1)
    assert (summary.added, summary.changed, summary.unchanged) == (1, 0, 1)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(entities).where(current_clause(entities))).scalar_one() == 7


def test_columns_in_any_order_unknown_columns_ignored_optional_columns_defaulted(engine, tmp_path):
    header = ["remark", "review_required", "parent_code", "name", "unit_code"]
    rows = [{**UNITS[0], "remark": "备注"}, {**UNITS[1], "review_required": ""}]
    assert load(engine, tmp_path, "units", rows, header=header).added == 2
    assert current(engine, units, "360202-SCJ")["review_required"] is True
    inspector = {k: v for k, v in INSPECTORS[0].items() if k != "roles"}
    assert load(engine, tmp_path, "inspectors", [inspector]).added == 1
    assert current(engine, inspectors, "I001")["roles"] == "inspector"


def test_a_parent_may_come_later_in_the_same_file(engine, tmp_path):
    assert load(engine, tmp_path, "units", list(reversed(UNITS))).added == 2


def test_a_bom_and_blank_lines_are_accepted(engine, tmp_path):
    path = write_csv(tmp_path, "units.csv", UNITS)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\r\n", b"\r\n\r\n,,,\r\n"))
    assert import_directory(engine, "units", path, now=T0).added == 2


def test_progress_is_reported(engine, tmp_path):
    seen = []
    import_directory(engine, "entities", write_csv(tmp_path, "e.csv", ENTITIES), now=T0, progress=seen.append)
    assert seen[-1] == len(ENTITIES)


# --- bad files change nothing ---------------------------------------------------------------------
BAD = [
    # kind, cells of line 3, column, reason
    ("units", {"unit_code": "珠山区局"}, "unit_code", "ASCII"),
    ("units", {"review_required": "是"}, "review_required", "true or false"),
    ("units", {"parent_code": "360000-SCJ"}, "parent_code", "no such unit in this file or the units directory"),
    ("units", {"parent_code": "360203-SCJ"}, "parent_code", "own parent"),
    ("items", {"category": "重点"}, "category", "'general', 'key'"),
    ("items", {"methods": "onsite;phone"}, "methods", "'phone' is not one of"),
    ("items", {"methods": ""}, "methods", "at least one of"),
    ("items", {"qualification": "gs inspector"}, "qualification", "ASCII"),
    ("items", {"effective_from": "2025-1-1"}, "effective_from", "ISO date"),
    ("items", {"effective_from": "2026-01-01"}, "effective_to", "before effective_from"),
    ("items", {"public_info_check": "TRUE"}, "public_info_check", "true or false"),
    ("items", {"ratio_cap": "5%"}, "ratio_cap", "exact ratio"),
    ("items", {"target_labels": "food;食品"}, "target_labels", "is not tags"),
    ("items", {"checklist": "cp 1"}, "checklist", "is not tags"),
    ("entities", {"uscc": NEW_USCC[:17] + ("0" if NEW_USCC[17] != "0" else "1")}, "uscc", "check digit"),
    ("entities", {"uscc": "91360200MA35OOOOOI"}, "uscc", "charset"),
    ("entities", {"subject_type": "company"}, "subject_type", "'enterprise'"),
    ("entities", {"region": "3602"}, "region", "6-digit"),
    ("entities", {"risk_class": "a"}, "risk_class", "'A'"),
    ("entities", {"status": "closed"}, "status", "'active'"),
    ("entities", {"name": " "}, "name", "must not be empty"),
    ("entities", {"labels": "licence food"}, "labels", "is not tags"),
    ("inspectors", {"inspector_id": "I-001/2"}, "inspector_id", "ASCII"),
    ("inspectors", {"unit_code": "360203-SCJ"}, "unit_code", "no such unit in the units directory"),
    ("inspectors", {"qualifications": "gs.inspector;食品"}, "qualifications", "is not tags"),
    ("inspectors", {"expertise": "a b"}, "expertise", "is not tags"),
    ("inspectors", {"recusal": "91360200MA3500000X"}, "recusal", "is not valid USCCs"),
    ("inspectors", {"cert_expiry": "31/12/2027"}, "cert_expiry", "ISO date"),
    ("inspectors", {"status": "retired"}, "status", "'active', 'inactive'"),
    ("inspectors", {"roles": "inspector;leader"}, "roles", "'leader' is not one of"),
]


def _bad_file(kind: str, cells: dict) -> list[dict]:
    """A good row on line 2, the bad one on line 3 (a new key, so only its own cell is wrong)."""
    good = GOOD[kind][-1]
    key = next(iter(good))
    fresh_key = {"units": "360203-SCJ", "items": "GS-002", "entities": NEW_USCC, "inspectors": "I002"}[kind]
    return [good, {**good, key: fresh_key, **cells}]


@pytest.mark.parametrize("kind,cells,column,reason", BAD, ids=[f"{b[0]}-{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_a_bad_row_changes_nothing_and_is_named(engine, tmp_path, kind, cells, column, reason):
    load_all(engine, tmp_path)
    error = rejected(engine, tmp_path, kind, _bad_file(kind, cells))
    assert error.total == 1 and len(error.errors) == 1
    row_error = error.errors[0]
    assert (row_error.line, row_error.column) == (3, column)
    assert reason in row_error.reason
    value = {**_bad_file(kind, cells)[1]}[column].strip()
    assert row_error.value == value
    assert str(error).startswith(f"{kind}.csv: 1 error(s); nothing was imported\n  line 3, column {column}, value {value!r}")


def test_a_duplicate_key_is_the_later_row_and_names_the_earlier_line(engine, tmp_path):
    load(engine, tmp_path, "entities", ENTITIES[:2])
    rows = [ENTITIES[0], ENTITIES[1], ENTITIES[2], {**ENTITIES[1], "risk_class": "C"}, ENTITIES[1]]
    error = rejected(engine, tmp_path, "entities", rows)
    assert [(e.line, e.column, e.value) for e in error.errors] == [(5, "uscc", USCCS[1]), (6, "uscc", USCCS[1])]
    assert all(e.reason == "duplicate key: already on line 3" for e in error.errors)


def test_a_duplicate_of_a_bad_row_is_reported_too(engine, tmp_path):
    rows = [{**ENTITIES[0], "region": "bad"}, ENTITIES[0]]
    error = rejected(engine, tmp_path, "entities", rows)
    assert [(e.line, e.column) for e in error.errors] == [(2, "region"), (3, "uscc")]
    assert error.errors[1].reason == "duplicate key: already on line 2"


def test_inspectors_of_unknown_or_closed_units_are_refused(engine, tmp_path):
    load(engine, tmp_path, "units", UNITS[:1])
    error = rejected(engine, tmp_path, "inspectors", INSPECTORS)
    assert [(e.line, e.column, e.value) for e in error.errors] == [(2, "unit_code", "360202-SCJ")]
    load(engine, tmp_path, "units", UNITS)
    assert load(engine, tmp_path, "inspectors", INSPECTORS).added == 1


def test_errors_of_all_passes_are_listed_in_line_order(engine, tmp_path):
    load(engine, tmp_path, "units", UNITS)
    rows = [
        INSPECTORS[0],
        {**INSPECTORS[0], "inspector_id": "I002", "unit_code": "nowhere"},  # line 3: reference (SQL)
        {**INSPECTORS[0], "inspector_id": "I003", "status": "x"},  # line 4: cell
        INSPECTORS[0],  # line 5: duplicate (SQL)
    ]
    error = rejected(engine, tmp_path, "inspectors", rows)
    assert [(e.line, e.column) for e in error.errors] == [(3, "unit_code"), (4, "status"), (5, "inspector_id")]


def test_a_long_error_list_is_capped(engine, tmp_path):
    rows = [{**row, "region": "36"} for row in ENTITIES] * 20  # 6 bad cells, then 114 duplicates as well
    error = rejected(engine, tmp_path, "entities", rows)
    assert error.total == 120 + 114
    lines = str(error).splitlines()
    assert len(lines) == 52 and lines[-1] == f"  … and {234 - 50} more"
    assert [e.line for e in error.errors] == sorted(e.line for e in error.errors)


def test_a_short_row_is_named(engine, tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("unit_code,name,parent_code\n360200-SCJ,市局,\n360202-SCJ,区局\n", encoding="utf-8")
    before = counts(engine)
    with pytest.raises(ImportRejected, match="line 3: has 2 fields, the header has 3"):
        import_directory(engine, "units", path, now=T0)
    assert counts(engine) == before


def test_going_back_in_time_is_refused(engine, tmp_path):
    load(engine, tmp_path, "entities", ENTITIES, at=T1)
    changed = [{**ENTITIES[0], "status": "revoked"}]
    before = counts(engine)
    with pytest.raises(ImportRejected, match="not before this import's time"):
        load(engine, tmp_path, "entities", changed, at=T0)
    with pytest.raises(ImportRejected, match="not before this import's time"):
        load(engine, tmp_path, "entities", changed, at=T1)
    assert counts(engine) == before
    assert load(engine, tmp_path, "entities", changed, at=T2).changed == 1


# --- bad files as a whole -------------------------------------------------------------------------
def test_a_missing_required_column_names_the_file_and_column(engine, tmp_path):
    rows = [{k: v for k, v in row.items() if k != "status"} for row in ENTITIES]
    error = rejected(engine, tmp_path, "entities", rows)
    assert str(error).startswith("entities.csv: line 1: missing required column(s) status")


def test_a_file_not_in_utf8_names_the_line(engine, tmp_path):
    path = write_csv(tmp_path, "entities.csv", ENTITIES)
    path.write_bytes(path.read_bytes().decode("utf-8").encode("gb18030"))
    before = counts(engine)
    with pytest.raises(ImportRejected, match=r"entities.csv: line 2 is not UTF-8 .*save the file as UTF-8"):
        import_directory(engine, "entities", path, now=T0)
    assert counts(engine) == before


def test_utf8_trouble_far_into_a_big_file_still_changes_nothing(engine, tmp_path):
    rows = [{**ENTITIES[0], "uscc": make_uscc(f"92360202{i:09d}")} for i in range(3000)]
    path = write_csv(tmp_path, "entities.csv", rows)
    path.write_bytes(path.read_bytes() + "末行".encode("gbk") + b"\r\n")
    before = counts(engine)
    with pytest.raises(ImportRejected, match="line 3002 is not UTF-8"):
        import_directory(engine, "entities", path, now=T0)
    assert counts(engine) == before


def test_an_empty_file(engine, tmp_path):
    path = tmp_path / "units.csv"
    path.write_bytes(b"")
    with pytest.raises(ImportRejected, match="units.csv: is empty"):
        import_directory(engine, "units", path, now=T0)


def test_an_unknown_kind_and_a_missing_file(engine, tmp_path):
    with pytest.raises(ImportRejected, match="units.csv: unknown directory 'unit'"):
        import_directory(engine, "unit", write_csv(tmp_path, "units.csv", UNITS), now=T0)
    with pytest.raises(ImportRejected, match="nowhere.csv: file not found"):
        import_directory(engine, "units", tmp_path / "nowhere.csv", now=T0)
    assert counts(engine)["batches"] == 0


def test_now_must_be_aware(engine, tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        import_directory(engine, "units", write_csv(tmp_path, "units.csv", UNITS), now=datetime(2025, 3, 1))
