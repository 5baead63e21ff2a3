"""Malformed directory files (issue 7): hypothesis writes CSV files with one thing wrong, on SQLite
(the demo) and on PostgreSQL (COPY), for each directory kind.

Every file is refused with ImportRejected, whose message names the line (the header is line 1) and,
for a bad cell, the column; and nothing changes: every directory table and import_batches hold
exactly the rows they held before (the file also changes good rows, so a partial import would show).
"""
from __future__ import annotations

import csv
import io
import os
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from db.schema import entities, import_batches, inspectors, items, units
from domain.uscc import make_uscc
from domain.directory_cells import Bad
from domain.directory_rows import SPECS
from service.imports import ImportRejected, import_directory

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
T1 = T0 + timedelta(days=30)
ENGINES = ["sqlite_engine", pytest.param("fresh_pg_engine", marks=pytest.mark.postgres)]
KINDS = ["units", "items", "entities", "inspectors"]
TABLES = [units, items, entities, inspectors, import_batches]
EXAMPLES = int(os.environ.get("SPOTCHECK_FUZZ_EXAMPLES", "25"))  # per engine and kind: the module stays under a minute

USCCS = [make_uscc(f"91360200MA35{i:05d}") for i in range(3)]
GOOD = {
    "units": [
        {"unit_code": "360200-SCJ", "name": "景德镇市市场监督管理局", "parent_code": "", "review_required": "true"},
        {"unit_code": "360202-SCJ", "name": "珠山区市场监督管理局", "parent_code": "360200-SCJ", "review_required": "false"},
        {"unit_code": "360203-SCJ", "name": "昌江区市场监督管理局", "parent_code": "360200-SCJ", "review_required": ""},
    ],
    "items": [
        {"item_code": f"GS-00{i}", "name": f"企业公示信息抽查{i}", "legal_basis": "《企业信息公示暂行条例》第十四条",
         "category": "general", "methods": "document;online", "qualification": "gs.inspector",
         "effective_from": "2025-01-01", "effective_to": "2025-12-31", "public_info_check": "true",
         "ratio_cap": "0.03", "target_labels": "", "checklist": "cp.annual;cp.capital"}
        for i in range(1, 4)
    ],
    "entities": [
        {"uscc": uscc, "name": f"景德镇市某某瓷业有限公司{i}", "subject_type": "enterprise", "region": "360202",
         "industry": "C3071", "risk_class": "B", "status": "active", "address": f"珠山区瓷都大道{i}号", "labels": "food"}
        for i, uscc in enumerate(USCCS)
    ],
    "inspectors": [
        {"inspector_id": f"I00{i}", "name": f"张{i}", "unit_code": "360202-SCJ", "region": "360202",
         "qualifications": "gs.inspector", "expertise": "", "recusal": USCCS[0], "cert_no": f"赣执000{i}",
         "cert_expiry": "2027-12-31", "status": "active", "roles": "inspector;reviewer"}
        for i in range(1, 4)
    ],
}

# Values each column refuses (after stripping). Free-text columns refuse only a NUL (or, when required, emptiness).
_TAG_BAD = ["", "a b", "x" * 33, "中文", "a/b", "a;b", "ａ", "-\u00a0-"]
BAD_VALUES: dict[str, list[str]] = {
    "unit_code": _TAG_BAD, "item_code": _TAG_BAD, "inspector_id": _TAG_BAD, "qualification": _TAG_BAD,
    "name": ["", "  ", "a\x00b"], "legal_basis": ["", "\x00"], "address": ["\x00", "瓷都\x00大道"],
    "parent_code": ["a b", "x" * 33, "中"],
    "review_required": ["yes", "TRUE", "1", "否"], "public_info_check": ["no", "False", "0"],
    "category": ["General", "key;general", "重点"],
    "methods": [";", "onsite;teleport", "ONSITE", "on site"],
    "effective_from": ["2025-02-30", "2025/01/01", "20250101", "2025-1-1", "０2025-01-01"],
    "effective_to": ["2025-13-01", "31.12.2025", "2025-12-31T00:00"],
    "ratio_cap": ["1.5", "5%", "0.1234567", ".5", "-0.1", "0,05"],
    "target_labels": ["a b", "x" * 33, "中;a"], "checklist": ["cp 1", "cp.1;" + "y" * 33],
    "uscc": ["", USCCS[0][:-1], USCCS[0][:-1] + ("0" if USCCS[0][-1] != "0" else "1"), USCCS[0].lower(),
             "I" * 18, USCCS[0] + "0"],
    "subject_type": ["company", "Enterprise", ""],
    "region": ["36020", "3602021", "３６０２０２", "36020a", "²60202", ""],
    "industry": ["C30711234", "中", "C 30"],
    "risk_class": ["E", "a", "AB", "U"], "status": ["closed", "Active", ""],
    "labels": ["a b", "x" * 33],
    "qualifications": ["a b", "中"], "expertise": ["x" * 40],
    "recusal": ["123", USCCS[0].lower(), USCCS[1] + ";bad"],
    "cert_no": ["", "x" * 65, "a\x00"], "cert_expiry": ["", "2027-02-29", "2027/12/31"],
    "roles": ["admin", "inspector;boss", "Inspector"],
}
INSPECTOR_STATUS_BAD = ["deregistered", "retired", ""]  # an inspector is active or inactive
FREE_TEXT = {"name", "legal_basis", "address", "cert_no"}  # almost any text is good: curated values only


def bad_values(kind: str, column: str) -> st.SearchStrategy[str]:
    """Values of `column` the importer must refuse: the curated ones, and generated text its rule refuses."""
    curated = INSPECTOR_STATUS_BAD if (kind, column) == ("inspectors", "status") else BAD_VALUES[column]
    parse = next(f.parse for f in SPECS[kind].fields if f.column == column)

    def refused(value: str) -> bool:
        try:
            parse(value.strip())
        except Bad:
            return True
        return False

    if column in FREE_TEXT:
        return st.sampled_from(curated)
    generated = st.text(st.characters(codec="utf-8") | st.sampled_from("\r\n\t\",;"), max_size=40).filter(refused)
    return st.sampled_from(curated) | generated


def snapshot(engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {table.name: sorted(map(tuple, connection.execute(select(table)).all()), key=repr) for table in TABLES}


def render(header: list[str], rows: list[list[str]]) -> tuple[bytes, list[int]]:
    """The file's bytes, and the line each row starts on (the header is line 1)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    starts, line = [], 2
    for row in rows:
        before = out.tell()
        writer.writerow(row)
        starts.append(line)
        # a quoted cell may hold line breaks: count them as the reader does (\n, \r and \r\n)
        line += len(io.StringIO(out.getvalue()[before:], newline="").readlines())
    return out.getvalue().encode("utf-8"), starts


@pytest.fixture(params=ENGINES)
def loaded(request, tmp_path):
    """An engine whose four directories hold the good rows."""
    engine = request.getfixturevalue(request.param)
    for kind in KINDS:
        header = list(GOOD[kind][0])
        data, _ = render(header, [[row[c] for c in header] for row in GOOD[kind]])
        path = tmp_path / f"{kind}.csv"
        path.write_bytes(data)
        import_directory(engine, kind, path, now=T0)
    return engine


CORRUPTIONS = ["cell", "cell", "cell", "wider", "narrower", "duplicate", "reference", "missing-column",
               "repeated-column", "not-utf8", "open-quote", "empty"]


@st.composite
def malformed(draw, kind: str):
    """(file bytes, what the message must contain): the good rows, changed (so a partial import would
    show), plus one corruption."""
    header = list(GOOD[kind][0])
    rows = [[row[c] for c in header] for row in GOOD[kind]]
    name_at = header.index("name")
    for row in rows:  # every good row changes: an import that went half through would change them
        row[name_at] += "（更名）"
    if draw(st.booleans()):  # and a new key
        extra = list(rows[-1])
        extra[0] = {"entities": make_uscc("92360202000001234")}.get(kind, "NEW-1")
        rows.append(extra)
    corruption = draw(st.sampled_from(CORRUPTIONS), label="corruption")
    index = draw(st.integers(0, len(rows) - 1), label="row")
    expect: list[str] = []
    if corruption == "cell":
        column = draw(st.sampled_from(header), label="column")
        value = draw(bad_values(kind, column), label="value")
        rows[index][header.index(column)] = value
        data, starts = render(header, rows)
        expect = [f"line {starts[index]}, column {column}"]
    elif corruption in ("wider", "narrower"):
        rows[index] = rows[index] + ["surplus"] if corruption == "wider" else rows[index][:-1]
        data, starts = render(header, rows)
        expect = [f"line {starts[index]}: has {len(rows[index])} fields, the header has {len(header)}"]
    elif corruption == "duplicate":
        rows.append(list(rows[index]))
        data, starts = render(header, rows)
        expect = [f"line {starts[-1]}, column {header[0]}", f"already on line {starts[index]}"]
    elif corruption == "reference":
        column = {"units": "parent_code", "inspectors": "unit_code"}.get(kind)
        assume(column is not None)
        rows[index][header.index(column)] = "NO-SUCH-UNIT"
        data, starts = render(header, rows)
        expect = [f"line {starts[index]}, column {column}", "no such unit"]
    elif corruption == "missing-column":
        required = [f.column for f in SPECS[kind].fields if f.required]
        column = draw(st.sampled_from(required), label="column")
        at = header.index(column)
        data, _ = render(header[:at] + header[at + 1:], [r[:at] + r[at + 1:] for r in rows])
        expect = ["line 1: missing required column(s)", column]
    elif corruption == "repeated-column":
        column = draw(st.sampled_from(header), label="column")
        data, _ = render(header + [column], [r + [r[header.index(column)]] for r in rows])
        expect = ["line 1: column(s)", column, "more than once"]
    elif corruption == "not-utf8":
        marker = "（更名）"
        data, starts = render(header, rows)
        # the first row holding the marker, in GBK (a spreadsheet's "CSV" on a Chinese Windows)
        first = data.index(marker.encode("utf-8"))
        data = data[:first] + marker.encode("gbk") + data[first + len(marker.encode("utf-8")):]
        expect = [f"line {starts[0]} is not UTF-8"]
    elif corruption == "open-quote":
        data, starts = render(header, rows)
        lines = data.split(b"\r\n")
        lines[starts[index] - 1] = lines[starts[index] - 1].replace(b",", b',"', 1)  # a quote never closed
        data = b"\r\n".join(lines)
        expect = [f"line {starts[index]}"]
    else:  # empty: no header at all
        data = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\r\n", b",,,\r\n", b" \r\n"]))
        expect = ["is empty: line 1 must be the header row"]
    return data, expect


def check_refused(engine, tmp_path, kind: str, data: bytes, expect: list[str]) -> str:
    """Import `data`: refused, the message naming `expect`, the database unchanged; the message."""
    before = snapshot(engine)
    path = tmp_path / f"fuzz-{kind}.csv"
    path.write_bytes(data)
    with pytest.raises(ImportRejected) as caught:
        import_directory(engine, kind, path, now=T1)
    message = str(caught.value)
    assert message.startswith(path.name + ": ") and re.search(r"line [0-9]+", message), message
    for part in expect:
        assert part in message, (part, message)
    assert snapshot(engine) == before, "a refused import changed the database"
    return message


@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_file_is_refused_and_changes_nothing(loaded, tmp_path, kind):
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.filter_too_much])
    @given(malformed(kind))
    def run(case):
        check_refused(loaded, tmp_path, kind, *case)

    run()


@pytest.mark.parametrize("kind", KINDS)
def test_every_bad_cell_of_a_file_is_listed_and_nothing_changes(loaded, tmp_path, kind):
    """Several bad cells at once: each one is listed by line and column, sorted by line."""
    header = list(GOOD[kind][0])

    @settings(max_examples=10, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.filter_too_much])
    @given(st.data())
    def run(data):
        rows = [[row[c] for c in header] for row in GOOD[kind]]
        spots = data.draw(st.lists(st.tuples(st.integers(0, len(rows) - 1), st.sampled_from(header[1:])),
                                   min_size=2, max_size=5, unique=True), label="spots")
        for index, column in spots:
            rows[index][header.index(column)] = data.draw(bad_values(kind, column), label=column)
        content, starts = render(header, rows)
        message = check_refused(loaded, tmp_path, kind, content,
                                [f"line {starts[index]}, column {column}" for index, column in spots])
        lines = [int(n) for n in re.findall(r"^  line ([0-9]+)", message, re.M)]
        assert lines == sorted(lines) and len(lines) >= len({index for index, _ in spots})

    run()
