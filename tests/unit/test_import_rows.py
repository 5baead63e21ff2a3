"""Row validation of the directory import (domain.directory_rows.RowChecker) and the reading of the file
(service.imports): no database."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.uscc import ALPHABET, make_uscc
from domain.directory_rows import SPECS, ErrorLog, ImportRejected, RowChecker, RowError

USCC_A = make_uscc("91360200MA35XXXX1")
USCC_B = make_uscc("92360202000000001")

VALID = {
    "units": {"unit_code": "360202-SCJ", "name": "珠山区市场监督管理局", "parent_code": "360200-SCJ", "review_required": "true"},
    "items": {
        "item_code": "GS-001", "name": "企业公示信息抽查", "legal_basis": "《企业信息公示暂行条例》", "category": "general",
        "methods": "online;document", "qualification": "gs.inspector", "effective_from": "2025-01-01",
        "effective_to": "2025-12-31", "public_info_check": "true", "ratio_cap": "0.03", "target_labels": "",
        "checklist": "cp.capital;cp.annual",
    },
    "entities": {
        "uscc": USCC_A, "name": "景德镇市某某瓷业有限公司", "subject_type": "enterprise", "region": "360202",
        "industry": "C3071", "risk_class": "B", "status": "active", "address": "珠山区瓷都大道1号", "labels": "food",
    },
    "inspectors": {
        "inspector_id": "I001", "name": "张三", "unit_code": "360202-SCJ", "region": "360202",
        "qualifications": "gs.inspector", "expertise": "food", "recusal": USCC_B, "cert_no": "赣0001",
        "cert_expiry": "2027-12-31", "status": "active", "roles": "reviewer;inspector",
    },
}


def check(kind: str, row: dict, header: list[str] | None = None, line: int = 2):
    header = list(row) if header is None else header
    checker = RowChecker(SPECS[kind], header, f"{kind}.csv")
    return checker.check(line, [row.get(h, "") for h in header])


def values_of(kind: str, row: dict) -> dict:
    key, values, errors = check(kind, row)
    assert not errors, errors
    return dict(zip(SPECS[kind].columns, values))


def only_error(kind: str, **cells) -> RowError:
    key, values, errors = check(kind, {**VALID[kind], **cells})
    assert values is None and len(errors) == 1, errors
    return errors[0]


# --- good rows: normalized values and defaults ---------------------------------------------------
@pytest.mark.parametrize("kind", sorted(VALID))
def test_a_valid_row_has_no_errors(kind):
    key, values, errors = check(kind, VALID[kind])
    assert errors == () and key == VALID[kind][SPECS[kind].key] and len(values) == len(SPECS[kind].columns)


def test_lists_are_sorted_deduplicated_and_trimmed():
    values = values_of("items", {**VALID["items"], "methods": " online ; document;online;", "checklist": "b;a;;b"})
    assert values["methods"] == "document;online"
    assert values["checklist"] == "a;b"


def test_cells_are_stripped():
    assert values_of("entities", {**VALID["entities"], "name": "  某公司 ", "region": " 360202"})["region"] == "360202"


def test_typed_values():
    values = values_of("items", VALID["items"])
    assert str(values["effective_from"]) == "2025-01-01" and values["public_info_check"] is True
    assert values["ratio_cap"] == "0.03"


def test_absent_optional_columns_take_their_defaults():
    unit = {k: v for k, v in VALID["units"].items() if k != "review_required"}
    assert values_of("units", unit)["review_required"] is True
    inspector = {k: v for k, v in VALID["inspectors"].items() if k != "roles"}
    assert values_of("inspectors", inspector)["roles"] == "inspector"
    item = {k: VALID["items"][k] for k in ("item_code", "name", "legal_basis", "category", "methods", "qualification")}
    values = values_of("items", item)
    assert values["effective_from"] is None and values["public_info_check"] is False and values["ratio_cap"] is None
    assert values["target_labels"] == "" and values["checklist"] == ""


def test_empty_cells_take_defaults_too():
    assert values_of("units", {**VALID["units"], "review_required": ""})["review_required"] is True
    assert values_of("inspectors", {**VALID["inspectors"], "roles": ""})["roles"] == "inspector"
    assert values_of("units", {**VALID["units"], "parent_code": ""})["parent_code"] is None


def test_columns_in_any_order_and_unknown_columns_ignored():
    header = ["备注", *reversed(list(VALID["entities"]))]
    key, values, errors = check("entities", {**VALID["entities"], "备注": "whatever"}, header)
    assert not errors and values[0] == USCC_A


def test_empty_risk_class_is_unclassified():
    assert values_of("entities", {**VALID["entities"], "risk_class": ""})["risk_class"] == ""


# --- bad cells --------------------------------------------------------------------------------
BAD_CELLS = [
    ("units", "unit_code", "360202 SCJ", "ASCII"),
    ("units", "unit_code", "单位", "ASCII"),
    ("units", "unit_code", "x" * 33, "1-32"),
    ("units", "review_required", "yes", "true or false"),
    ("units", "name", "", "must not be empty"),
    ("items", "category", "major", "'general', 'key'"),
    ("items", "methods", "onsite;phone", "'phone' is not one of"),
    ("items", "methods", "", "at least one of"),
    ("items", "qualification", "", "ASCII"),
    ("items", "effective_from", "2025/01/01", "ISO date"),
    ("items", "effective_to", "2025-02-30", "ISO date"),
    ("items", "public_info_check", "1", "true or false"),
    ("items", "ratio_cap", "1.5", "exact ratio"),
    ("items", "ratio_cap", ".05", "exact ratio"),
    ("items", "ratio_cap", "0.0000001", "exact ratio"),
    ("items", "target_labels", "a b", "'a b' is not tags"),
    ("items", "checklist", "cp.1;检查点", "'检查点' is not tags"),
    ("items", "legal_basis", "", "must not be empty"),
    ("entities", "uscc", USCC_A[:17] + ("0" if USCC_A[17] != "0" else "1"), "check digit"),
    ("entities", "uscc", USCC_A.lower(), "charset"),
    ("entities", "uscc", USCC_A[:17], "18 characters"),
    ("entities", "subject_type", "company", "'enterprise'"),
    ("entities", "region", "36020", "6-digit"),
    ("entities", "region", "３６０２０２", "6-digit"),
    ("entities", "risk_class", "E", "'A', 'B', 'C', 'D', ''"),
    ("entities", "status", "closed", "'active'"),
    ("entities", "name", "", "must not be empty"),
    ("entities", "labels", "food;bad label", "'bad label' is not tags"),
    ("entities", "industry", "C30710000", "industry code"),
    ("entities", "address", "a\x00b", "NUL"),
    ("inspectors", "inspector_id", "I 001", "ASCII"),
    ("inspectors", "unit_code", "", "ASCII"),
    ("inspectors", "region", "", "6-digit"),
    ("inspectors", "qualifications", "gs inspector", "is not tags"),
    ("inspectors", "expertise", "食品", "is not tags"),
    ("inspectors", "recusal", f"{USCC_B};91360200MA35XXXX10", "'91360200MA35XXXX10' is not valid USCCs"),
    ("inspectors", "cert_no", "", "must not be empty"),
    ("inspectors", "cert_no", "9" * 65, "at most 64"),
    ("inspectors", "cert_expiry", "", "ISO date"),
    ("inspectors", "cert_expiry", "2027-12-31T00:00", "ISO date"),
    ("inspectors", "status", "retired", "'active', 'inactive'"),
    ("inspectors", "roles", "inspector;boss", "'boss' is not one of"),
]


@pytest.mark.parametrize("kind,column,value,reason", BAD_CELLS)
def test_a_bad_cell_names_line_column_value_and_reason(kind, column, value, reason):
    error = only_error(kind, **{column: value})
    assert (error.line, error.column, error.value) == (2, column, value.strip())
    assert reason in error.reason
    assert f"line 2, column {column}" in str(error) and reason in str(error)


def test_every_bad_cell_of_a_row_is_reported():
    key, values, errors = check("entities", {**VALID["entities"], "region": "x", "status": "y", "risk_class": "Z"})
    assert values is None and key == USCC_A
    assert [e.column for e in errors] == ["region", "risk_class", "status"]


def test_a_bad_key_stages_no_key():
    key, values, errors = check("entities", {**VALID["entities"], "uscc": "nonsense", "region": "x"})
    assert key is None and {e.column for e in errors} == {"uscc", "region"}


def test_effective_to_before_effective_from():
    error = only_error("items", effective_from="2026-01-01", effective_to="2025-12-31")
    assert (error.column, error.value) == ("effective_to", "2025-12-31") and "before effective_from 2026-01-01" in error.reason


def test_a_unit_is_not_its_own_parent():
    error = only_error("units", parent_code=VALID["units"]["unit_code"])
    assert error.column == "parent_code" and "own parent" in error.reason


# --- the row's shape --------------------------------------------------------------------------------
def test_a_short_row_is_one_error():
    checker = RowChecker(SPECS["units"], list(VALID["units"]), "units.csv")
    key, values, errors = checker.check(7, ["360202-SCJ", "珠山区"])
    assert key is None and values is None
    assert str(errors[0]) == "line 7: has 2 fields, the header has 4"


def test_trailing_empty_cells_are_tolerated_but_not_extra_values():
    checker = RowChecker(SPECS["units"], list(VALID["units"]), "units.csv")
    assert not checker.check(2, [*VALID["units"].values(), "", " "])[2]
    assert checker.check(2, [*VALID["units"].values(), "surplus"])[2][0].reason == "has 5 fields, the header has 4"


def test_missing_required_columns_name_the_file_and_the_columns():
    with pytest.raises(ImportRejected) as caught:
        RowChecker(SPECS["entities"], ["uscc", "name"], "entities.csv")
    message = str(caught.value)
    assert message.startswith("entities.csv: line 1: missing required column(s) subject_type, region, industry")
    assert "labels" not in message.split("(")[0]


def test_a_repeated_column_is_refused():
    with pytest.raises(ImportRejected, match="unit_code appear more than once"):
        RowChecker(SPECS["units"], ["unit_code", "name", "parent_code", "unit_code"], "units.csv")


# --- the error listing --------------------------------------------------------------------------
def test_the_listing_is_capped_at_50_lines_with_a_count_of_the_rest():
    errors = [RowError(line, "region", "x", "must be a 6-digit division code") for line in range(2, 122)]
    rejected = ImportRejected("entities.csv", "120 error(s); nothing was imported", errors, 120)
    lines = str(rejected).splitlines()
    assert lines[0] == "entities.csv: 120 error(s); nothing was imported"
    assert len(lines) == 1 + 50 + 1 and lines[-1] == "  … and 70 more"
    assert lines[1] == "  line 2, column region, value 'x': must be a 6-digit division code"
    assert rejected.total == 120 and len(rejected.errors) == 120


def test_the_count_includes_errors_not_kept():
    errors = [RowError(2, "region", "x", "bad")]
    assert str(ImportRejected("e.csv", "5000 error(s)", errors, 5000)).endswith("… and 4999 more")


def test_long_values_are_shortened_in_the_message():
    assert "…" in str(RowError(2, "name", "名" * 200, "bad")) and len(str(RowError(2, "name", "名" * 200, "bad"))) < 120


# --- properties ------------------------------------------------------------------------------------
@given(st.text(alphabet=ALPHABET, min_size=17, max_size=17))
def test_every_valid_uscc_is_accepted(body):
    assert values_of("entities", {**VALID["entities"], "uscc": make_uscc(body)})["uscc"] == make_uscc(body)


@given(st.text(alphabet=ALPHABET, min_size=17, max_size=17), st.sampled_from(ALPHABET))
def test_a_wrong_check_digit_is_refused(body, check_char):
    value = body + check_char
    accepted = not check("entities", {**VALID["entities"], "uscc": value})[2]
    assert accepted == (value == make_uscc(body))


@given(st.text(alphabet="0123456789.-+e ", max_size=9))
def test_a_ratio_is_accepted_only_as_an_exact_decimal_from_0_to_1(raw):
    key, values, errors = check("items", {**VALID["items"], "ratio_cap": raw})
    if not raw.strip():
        assert values is not None and values[SPECS["items"].columns.index("ratio_cap")] is None
        return
    raw = raw.strip()
    exact = (
        raw.replace(".", "", 1).isdigit()
        and not raw.startswith(".") and not raw.endswith(".")
        and (len(raw.split(".")[0]) == 1)
        and len(raw.partition(".")[2]) <= 6
        and Decimal(raw) <= 1
    )
    assert (not errors) == exact, (raw, errors)


# --- the fast path: clean rows staged as they are, exactly as the row checker would stage them -------
import csv  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402

from domain.uscc import all_valid, uscc_problem  # noqa: E402
from domain.directory_rows import CleanRun  # noqa: E402
from service import imports  # noqa: E402
from store.directory_import import CopySource  # noqa: E402


@given(st.lists(st.one_of(
    st.text(alphabet=ALPHABET, min_size=17, max_size=17).map(make_uscc),
    st.text(alphabet=ALPHABET + "IOSVZaé３\x00", min_size=16, max_size=19),
), max_size=8))
def test_all_valid_agrees_with_uscc_problem(values):
    assert all_valid(values) == all(uscc_problem(v) is None for v in values)


ENTITY_CELLS = {
    "uscc": [USCC_A, USCC_B, make_uscc("92360202000000002"), USCC_A.lower(), USCC_A[:17] + ("0" if USCC_A[17] != "0" else "1"),
             "", f" {USCC_B}"],
    "name": ["景德镇某公司", "A", " 某公司", "某公司\u3000", "", "a,b", 'say "hi"', "two\nlines", "back\\slash", "tab\there",
             "\x1c某", "a\x00b", "a\rb"],
    "subject_type": ["enterprise", "individual", "cooperative", "foreign_rep", "Enterprise", " individual", ""],
    "region": ["360202", "360203", "36020", "３６０２０２", " 360202", "36020a"],
    "industry": ["", "C3071", "C30710000", "C 30", "I6510 "],
    "risk_class": ["", "A", "B", "C", "D", "E", " B"],
    "status": ["active", "deregistered", "revoked", "closed", "active "],
    "address": ["", "珠山区瓷都大道1号", " 前导", "末尾 ", "a,b", "x\\y", "\u00a0", "中\t间"],
    "labels": ["", "food", "food;licence.sc", "licence.sc;food", "food;food", "a;;b", " food", "bad label", "a;b;c"],
}


def _reference(spec, data: bytes, progress=None):
    """The import's rows as the row checker alone would stage them: (line, values) for the rows staged,
    the errors, the count of rows read (the importer's way before the fast path)."""
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""))
    checker = RowChecker(spec, next(reader), "f.csv")
    staged, log, count, line_end = [], ErrorLog(), 0, reader.line_num
    for cells in reader:
        line, line_end = line_end + 1, reader.line_num
        if not cells or (not cells[0] and not any(cells)):
            continue
        count += 1
        if progress is not None and count % imports.PROGRESS_EVERY == 0:
            progress(count)
        key, values, errors = checker.check(line, cells)
        if not errors:
            staged.append((line, values))
            continue
        log.add(errors)
        if key is not None:
            staged.append((line, checker.key_only(key)))
    if progress is not None:
        progress(count)
    return staged, log.kept, count


def _copy_cells(row: str) -> list[str | None]:
    """One row of COPY text (delimiter ','), unescaped."""
    cells, cell, chars = [], [], iter(row)
    for char in chars:
        if char == ",":
            cells.append("".join(cell))
            cell = []
        elif char == "\\":
            escaped = next(chars)
            cell.append({"n": "\n", "r": "\r", "t": "\t", "N": "\x00NULL"}.get(escaped, escaped))
        else:
            cell.append(char)
    cells.append("".join(cell))
    return [None if c == "\x00NULL" else c for c in cells]


def _fast(spec, path, progress=None):
    """The import's rows as staged on PostgreSQL (COPY text read back, numbered by line) and on SQLite."""
    with imports._OpenedFile(spec, path, progress) as opened:
        checker, items = opened.checker, list(opened.rows)
        sha256, first_line, lines = opened.sha256, opened.first_line, opened.lines.number
        errors, count = opened.rows.errors.kept, opened.rows.rows_read
    to_spec_order = [checker.columns.index(c) for c in spec.columns]
    source = CopySource(iter(items), checker.order)
    text = b"".join(iter(lambda: source.read(97), b"")).decode("utf-8")
    source.reraise_failure()
    assert source.rows == lines + 1 - first_line
    postgresql = []
    for number, row in enumerate(text.split("\n")[:-1], first_line):
        cells = _copy_cells(row)
        if cells[checker.columns.index(spec.key)] is not None:
            postgresql.append((number, [cells[i] for i in to_spec_order]))
    sqlite = []
    for item in items:
        if isinstance(item, CleanRun):
            sqlite += [(line, [cells[i] for i in to_spec_order]) for line, cells in item.cells()]
        elif item[2] is not None:
            sqlite.append((item[0], item[2]))
    return postgresql, sqlite, errors, count, sha256


@given(st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_the_fast_path_stages_what_the_row_checker_would(tmp_path, monkeypatch, data):
    # Small blocks and windows: the file's rows cross block ends and windows narrow and grow.
    monkeypatch.setattr(imports, "_BLOCK_BYTES", data.draw(st.sampled_from([5, 64, 1 << 20])))
    monkeypatch.setattr(imports, "_WINDOW", data.draw(st.sampled_from([1, 4, 256])))
    monkeypatch.setattr(imports, "PROGRESS_EVERY", 3)
    spec = SPECS["entities"]
    columns = data.draw(st.sampled_from([
        spec.columns, list(reversed(spec.columns)), spec.columns[:-1], [*spec.columns, "备注"],
    ]))
    clean = data.draw(st.booleans())  # mostly clean rows, as in a real file, or anything
    rows = []
    for _ in range(data.draw(st.integers(0, 25))):
        if data.draw(st.integers(0, 9)) == 0:
            rows.append(data.draw(st.sampled_from([[], [""] * len(columns), ["", ""], [" "], ["x"] * (len(columns) + 1),
                                                   [*VALID["entities"].values(), "", " "]])))
            continue
        pick = (lambda c: ENTITY_CELLS[c][0] if c != "uscc" else data.draw(st.sampled_from(ENTITY_CELLS[c][:3])))
        row = [pick(c) if c in ENTITY_CELLS and clean and data.draw(st.integers(0, 5)) else
               data.draw(st.sampled_from(ENTITY_CELLS.get(c, ["备注", ""]))) for c in columns]
        rows.append(row)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=data.draw(st.sampled_from(["\n", "\r\n", "\r"])))
    writer.writerow(columns)
    writer.writerows(rows)
    text = out.getvalue()
    if data.draw(st.booleans()):
        text = text.rstrip("\r\n")  # no line end after the last row
    raw = ("\ufeff" if data.draw(st.booleans()) else "") + text
    path = tmp_path / "entities.csv"
    path.write_bytes(raw.encode("utf-8"))

    def outcome(run):
        seen = []
        try:
            return run(seen.append), seen
        except ImportRejected as rejected:
            return str(rejected), seen

    expected, expected_progress = outcome(lambda progress: _reference(spec, raw.encode("utf-8"), progress))
    got, got_progress = outcome(lambda progress: _fast(spec, path, progress))
    if isinstance(expected, str):
        assert got == expected
        return
    postgresql, sqlite, errors, count, sha256 = got
    staged = [(line, list(values)) for line, values in expected[0]]
    assert postgresql == staged
    assert sqlite == staged
    assert (errors, count) == (expected[1], expected[2])
    assert got_progress == expected_progress
    assert sha256 == hashlib.sha256(raw.encode("utf-8")).hexdigest()


def test_a_clean_file_goes_the_fast_way(tmp_path):
    rows = [[make_uscc(f"92360202{i:09d}"), f"公司{i}", "enterprise", "360202", "C3071", "B", "active", f"地址{i}", "a;b"]
            for i in range(1000)]
    path = tmp_path / "entities.csv"
    path.write_text("\n".join(",".join(r) for r in [SPECS["entities"].columns, *rows]) + "\n", encoding="utf-8")
    with imports._OpenedFile(SPECS["entities"], path, None) as opened:
        items = list(opened.rows)
    assert all(isinstance(item, CleanRun) for item in items)
    assert sum(item.rows for item in items) == 1000 and items[0].first_line == 2
