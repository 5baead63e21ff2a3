"""The rows of a directory file (一单两库 and the units): what each directory holds, the header and
row checks, and every problem an import reports, with its message.

Pure: no I/O, no database. The cells' rules are in directory_cells.py; service/imports.py reads the
file and store/directory_import.py stages and merges the rows (and finds the problems that need
the whole file or the directories: duplicate keys, references, a clock going back).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import repeat
from typing import Callable, Iterator, Sequence

from domain.directory_cells import (
    CLEAN,
    Bad,
    cert_no,
    flag,
    free_text,
    industry,
    iso_date,
    name,
    one_of,
    optional_iso_date,
    optional_tag,
    ratio,
    region,
    subset_of,
    tag,
    tags,
    uscc,
    usccs,
)

ERRORS_SHOWN = 50  # lines of str(ImportRejected); the rest are counted
ERRORS_KEPT = 1000  # ImportRejected.errors holds the first ERRORS_KEPT by line; .total counts all


# --- what an import reports ------------------------------------------------------------------
@dataclass(frozen=True)
class RowError:
    line: int  # the header is line 1
    column: str  # '' when the row as a whole is wrong (its number of fields)
    value: str
    reason: str

    def __str__(self) -> str:
        if not self.column:
            return f"line {self.line}: {self.reason}"
        return f"line {self.line}, column {self.column}, value {_shorten(self.value)!r}: {self.reason}"


def _shorten(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


class ImportRejected(ValueError):
    """The file changes nothing: why, naming the file, and the bad rows (sorted by line)."""

    def __init__(self, file_name: str, problem: str, errors: Sequence[RowError] = (), total: int | None = None):
        self.file_name = file_name
        self.problem = problem
        self.errors = list(errors)
        self.total = len(self.errors) if total is None else total
        super().__init__(self._describe())

    def _describe(self) -> str:
        lines = [f"{self.file_name}: {self.problem}"]
        shown = self.errors[:ERRORS_SHOWN]
        lines += [f"  {error}" for error in shown]
        if self.total > len(shown):
            lines.append(f"  … and {self.total - len(shown)} more")
        return "\n".join(lines)


class ErrorLog:
    """Errors from several passes: the first ERRORS_KEPT by line, and how many in all."""

    def __init__(self) -> None:
        self.kept: list[RowError] = []
        self.total = 0

    def add(self, errors: Sequence[RowError], total: int | None = None) -> None:
        """Errors of one pass, in line order; `total`: how many it found (an SQL pass returns at most ERRORS_KEPT)."""
        self.total += len(errors) if total is None else total
        if self.kept and errors and errors[0].line < self.kept[-1].line:
            # A later pass reaching back to earlier lines (stable: within a line, earlier passes first).
            self.kept = sorted([*self.kept, *errors], key=lambda e: e.line)[:ERRORS_KEPT]
        else:
            self.kept.extend(errors[: ERRORS_KEPT - len(self.kept)])

    def rejection(self, file_name: str) -> ImportRejected:
        return ImportRejected(file_name, f"{self.total} error(s); nothing was imported", self.kept, self.total)


def duplicate_key(line: int, column: str, value: str, first_line: int) -> RowError:
    """Of two rows with the same key the later one is bad, and its message names the earlier line."""
    return RowError(line, column, value, f"duplicate key: already on line {first_line}")


def clock_behind(file_name: str, line: int, key_column: str, key: object, valid_from: object, now: datetime) -> ImportRejected:
    """Time moves forward: a version valid from the import's time or later is not closed by it."""
    return ImportRejected(
        file_name,
        f"line {line}: the current version of {key_column} {key!r} is valid from {valid_from}, "
        f"not before this import's time {now.isoformat()}; check the clock",
    )


def unknown_directory(file_name: str, kind: str) -> ImportRejected:
    return ImportRejected(file_name, f"unknown directory {kind!r}: expected one of {', '.join(SPECS)}")


def in_utc(now: datetime) -> datetime:
    """An instant of the directories' versions: timezone-aware, written in UTC.

    SQLite stores instants without their offset: written all in UTC they compare."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(timezone.utc)


# --- what each directory holds ---------------------------------------------------------------
@dataclass(frozen=True)
class FieldRule:
    column: str
    parse: Callable[[str], object]
    required: bool = True  # the header must have it; an absent optional column reads as empty cells


@dataclass(frozen=True)
class Reference:
    """A column naming a current record of another directory (or, within_file, of this file)."""

    column: str
    target: str  # the directory's kind
    within_file: bool
    reason: str


RowRule = Callable[[dict], list[tuple[str, str]]]  # values by column -> [(column, reason)]


@dataclass(frozen=True)
class DirectorySpec:
    kind: str
    fields: tuple[FieldRule, ...]  # the key first, then every value column in table order
    row_rule: RowRule | None = None
    references: tuple[Reference, ...] = ()

    @property
    def key(self) -> str:
        return self.fields[0].column

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.fields]

    @property
    def value_columns(self) -> list[str]:
        return self.columns[1:]


def _unit_rule(values: dict) -> list[tuple[str, str]]:
    if values["parent_code"] is not None and values["parent_code"] == values["unit_code"]:
        return [("parent_code", "a unit cannot be its own parent")]
    return []


def _item_rule(values: dict) -> list[tuple[str, str]]:
    start, end = values["effective_from"], values["effective_to"]
    if start is not None and end is not None and start > end:
        return [("effective_to", f"is before effective_from {start.isoformat()}")]
    return []


SPECS: dict[str, DirectorySpec] = {
    spec.kind: spec
    for spec in (
        DirectorySpec(
            "units",
            (
                FieldRule("unit_code", tag),
                FieldRule("name", name),
                FieldRule("parent_code", optional_tag),
                FieldRule("review_required", flag(True), required=False),
            ),
            row_rule=_unit_rule,
            references=(Reference("parent_code", "units", True, "no such unit in this file or the units directory"),),
        ),
        DirectorySpec(
            "items",
            (
                FieldRule("item_code", tag),
                FieldRule("name", name),
                FieldRule("legal_basis", name),
                FieldRule("category", one_of("general", "key")),
                FieldRule("methods", subset_of("onsite", "document", "online", "entrusted")),
                FieldRule("qualification", tag),
                FieldRule("effective_from", optional_iso_date, required=False),
                FieldRule("effective_to", optional_iso_date, required=False),
                FieldRule("public_info_check", flag(False), required=False),
                FieldRule("ratio_cap", ratio, required=False),
                FieldRule("target_labels", tags, required=False),
                FieldRule("checklist", tags, required=False),
            ),
            row_rule=_item_rule,
        ),
        DirectorySpec(
            "entities",
            (
                FieldRule("uscc", uscc),
                FieldRule("name", name),
                FieldRule("subject_type", one_of("enterprise", "individual", "cooperative", "foreign_rep")),
                FieldRule("region", region),
                FieldRule("industry", industry),
                FieldRule("risk_class", one_of("A", "B", "C", "D", "")),
                FieldRule("status", one_of("active", "deregistered", "revoked")),
                FieldRule("address", free_text),
                FieldRule("labels", tags, required=False),
            ),
        ),
        DirectorySpec(
            "inspectors",
            (
                FieldRule("inspector_id", tag),
                FieldRule("name", name),
                FieldRule("unit_code", tag),
                FieldRule("region", region),
                FieldRule("qualifications", tags),
                FieldRule("expertise", tags),
                FieldRule("recusal", usccs),
                FieldRule("cert_no", cert_no),
                FieldRule("cert_expiry", iso_date),
                FieldRule("status", one_of("active", "inactive")),
                FieldRule("roles", subset_of("inspector", "reviewer", "supervisor", default="inspector"), required=False),
            ),
            references=(Reference("unit_code", "units", False, "no such unit in the units directory"),),
        ),
    )
}


# --- one row ----------------------------------------------------------------------------------
class RowChecker:
    """Checks the rows of one file against a directory's rules; both databases use it."""

    def __init__(self, spec: DirectorySpec, header: Sequence[str], file_name: str):
        header = [h.strip() for h in header]
        repeated = sorted({h for h in header if h and header.count(h) > 1})
        if repeated:
            raise ImportRejected(file_name, f"line 1: column(s) {', '.join(repeated)} appear more than once")
        missing = [f.column for f in spec.fields if f.required and f.column not in header]
        if missing:
            raise ImportRejected(
                file_name,
                f"line 1: missing required column(s) {', '.join(missing)} "
                f"(a {spec.kind} file needs {', '.join(f.column for f in spec.fields if f.required)})",
            )
        self.spec = spec
        self.width = len(header)
        # An absent optional column reads from one empty cell appended to the row (position width).
        self._pad = any(f.column not in header for f in spec.fields)
        self._plan = [
            (f.column, header.index(f.column) if f.column in header else self.width, f.parse) for f in spec.fields
        ]
        self._parsers = [(position, parse) for _, position, parse in self._plan]
        self._padding = [None] * (len(spec.fields) - 1)
        # The fast path (CleanColumns) takes a file with exactly the directory's columns, in any order,
        # when every rule can check a whole column and no rule is about the row as a whole.
        self.columns = spec.columns  # the staged columns, in the order the rows are written to the stage
        self.clean: CleanColumns | None = None
        if sorted(header) == sorted(spec.columns) and spec.row_rule is None and all(f.parse in CLEAN for f in spec.fields):
            self.columns = header
            self.clean = CleanColumns([(header.index(f.column), CLEAN[f.parse]) for f in spec.fields], self.width)
        self.order = [spec.columns.index(column) for column in self.columns]  # values (in spec order) as staged

    def check(self, line: int, cells: list[str]) -> tuple[object | None, list | None, Sequence[RowError]]:
        """(key, values, errors): key is None when the key cell itself is bad, values None when any cell is."""
        if len(cells) != self.width:
            if not self._only_empty_beyond_header(cells):
                return None, None, [RowError(line, "", "", f"has {len(cells)} fields, the header has {self.width}")]
            cells = cells[: self.width]
        if self._pad:
            cells = [*cells, ""]
        try:
            # The common case, every cell good, in one comprehension (this runs 4 million times).
            values = [parse(cells[position].strip()) for position, parse in self._parsers]
        except Bad:
            return self._bad_cells(line, cells)
        if self.spec.row_rule is not None:
            errors = self._row_rule_errors(line, cells, values)
            if errors:
                return values[0], None, errors
        return values[0], values, ()

    def key_only(self, key: object) -> list:
        """What a bad row stages: its key alone, so a later duplicate of it is still reported."""
        return [key, *self._padding]

    def _only_empty_beyond_header(self, cells: Sequence[str]) -> bool:
        # Spreadsheets often pad rows with empty trailing cells; a short row is always wrong.
        return len(cells) > self.width and not any(c.strip() for c in cells[self.width:])

    def _bad_cells(self, line: int, cells: list[str]) -> tuple[object | None, None, list[RowError]]:
        """Every bad cell of a row with at least one."""
        errors = []
        for column, position, parse in self._plan:
            raw = cells[position].strip()
            try:
                parse(raw)
            except Bad as bad:
                errors.append(RowError(line, column, raw, str(bad)))
        key_ok = errors[0].column != self.spec.key
        return (cells[self._plan[0][1]].strip() if key_ok else None), None, errors

    def _row_rule_errors(self, line: int, cells: list[str], values: list) -> list[RowError]:
        problems = self.spec.row_rule(dict(zip(self.spec.columns, values)))
        positions = {column: position for column, position, _ in self._plan}
        return [RowError(line, column, cells[positions[column]].strip(), reason) for column, reason in problems]


# --- clean rows: the fast path ------------------------------------------------------------------
@dataclass(frozen=True)
class CleanRun:
    """Consecutive rows of the file, every one clean: their text, LF-separated, cells in the header's order."""

    first_line: int
    rows: int
    text: str

    def cells(self) -> Iterator[tuple[int, list[str]]]:
        return zip(range(self.first_line, self.first_line + self.rows), (row.split(",") for row in self.text.split("\n")))


class CleanColumns:
    """Recognises clean rows: lines whose cells csv.reader would read as a plain split at ',' and
    whose every cell is clean (directory_cells.CLEAN), so that RowChecker would stage them unchanged."""

    def __init__(self, checks: list[tuple[int, Callable[[Sequence[str]], bool]]], width: int):
        self._checks = checks  # (position in the row, check of that column's cells)
        self._width = width

    def text(self, lines: list[str]) -> str | None:
        """The lines, LF-separated, when every one is a clean row; None when any is not."""
        text = "\n".join(lines)
        if "\r" in text:  # CR LF line ends are fine, a lone CR (a line end too) is not
            text = text.replace("\r\n", "\n")
            if text.endswith("\r"):
                text = text[:-1]
            if "\r" in text:
                return None
        if '"' in text or "\x00" in text:  # quoted cells: csv.reader's business
            return None
        limit = csv.field_size_limit()  # beyond it csv.reader refuses the cell
        if len(text) > limit and max(map(len, lines)) > limit:
            return None
        width = self._width
        if set(map(str.count, lines, repeat(","))) != {width - 1}:
            return None
        cells = text.replace("\n", ",").split(",")
        for position, check in self._checks:
            if not check(cells[position::width]):
                return None
        return text
