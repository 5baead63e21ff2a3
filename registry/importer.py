"""Directory import (一单两库 and the units): a CSV file, checked row by row, merged as new versions.

What an import does (operator contract, "CSV files"):
- All or nothing, in one transaction. A file with any bad row changes nothing and raises
  ImportRejected listing the bad rows (line with the header as line 1, column, value, reason).
  Of two rows with the same key the later one is bad, and its message names the earlier line.
- A file is an update, not a full replacement: a key absent from the file is left as it is. To
  retire an entity import it with status `deregistered` (an inspector: `inactive`).
- A row identical to the current version writes nothing. A changed row closes the current
  version (valid_to = now) and adds a new one (valid_from = now, the import's batch); a new key
  adds its first version. `now` is also the batch's `imported_at`.
- An import that changes no row writes no import batch either: re-importing a file changes
  nothing at all, and its summary has batch_id None.
- Cells are stripped of surrounding whitespace. An optional column that is absent reads as empty
  cells, which take the column's default. List columns are stored sorted, without duplicates or
  empty members, ';'-joined. A UTF-8 byte order mark (Excel's "CSV UTF-8") is accepted.
- Time moves forward: an import that would close a version valid from `now` or later is refused
  (a wrong clock would otherwise rewrite history).

How (a province has ~4 million entities, so memory stays flat whatever the file size): csv.reader
and plain-Python checks per row (RowChecker, the same code for both databases); the checked rows
are staged in a TEMP table (PostgreSQL: COPY streamed straight from the reader; SQLite, the demo:
batched INSERTs); duplicate keys and references are checked in SQL over the staging table; then a
set-based merge compares every value column (IS DISTINCT FROM) and writes versions only for new
and changed rows. Only the staging load differs between the databases.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from itertools import repeat
from typing import Callable, Iterator, Sequence

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Identity,
    Integer,
    MetaData,
    Table,
    and_,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import UserDefinedType

from db.schema import Instant, entities, import_batches, inspectors, items, units
from domain.uscc import all_valid, uscc_problem

ERRORS_SHOWN = 50  # lines of str(ImportRejected); the rest are counted
ERRORS_KEPT = 1000  # ImportRejected.errors holds the first ERRORS_KEPT by line; .total counts all
PROGRESS_EVERY = 10_000  # rows between progress(rows) calls: a terminal's bar moves a few times a second
_SQLITE_BATCH = 2_000
_COPY_CHUNK = 1 << 18
_BLOCK_BYTES = 1 << 20  # read at a time
_WINDOW = 256  # rows the fast path checks at once, at most
VERSIONING = ("valid_from", "valid_to", "batch_id")


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


@dataclass(frozen=True)
class ImportSummary:
    kind: str
    file_name: str
    rows_read: int
    added: int
    changed: int
    unchanged: int
    batch_id: int | None  # None when nothing changed (no batch is written)


class _ErrorLog:
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


# --- cell rules: plain functions, raising Bad with the reason -----------------------------------
class Bad(Exception):
    """A cell's value is not acceptable; the message is the reason."""


# Rule -> check of a whole column of clean cells (see "clean columns" below).
_CLEAN: dict[Callable[[str], object], Callable[[Sequence[str]], bool]] = {}


_TAG = re.compile(r"[A-Za-z0-9._-]{1,32}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RATIO = re.compile(r"0(\.[0-9]{1,6})?|1(\.0{1,6})?")
TAG_RULE = "1-32 ASCII characters from A-Z a-z 0-9 . _ -"


def tag(raw: str) -> str:
    """Codes, tags and labels: every identifier in these files except names."""
    if _TAG.fullmatch(raw) is None:
        raise Bad(f"must be {TAG_RULE}")
    return raw


def optional_tag(raw: str) -> str | None:
    return tag(raw) if raw else None


def industry(raw: str) -> str:
    # A GB/T 4754 code (at most 5 characters) fits the 8-character column; empty: not classified.
    if raw and (len(raw) > 8 or _TAG.fullmatch(raw) is None):
        raise Bad("must be an industry code of 1-8 ASCII characters from A-Z a-z 0-9 . _ -, or empty")
    return raw


def free_text(raw: str) -> str:
    if "\x00" in raw:
        raise Bad("must not contain a NUL character")
    return raw


def name(raw: str) -> str:
    if not raw:
        raise Bad("must not be empty")
    return free_text(raw)


def cert_no(raw: str) -> str:
    if len(raw) > 64:
        raise Bad("must be at most 64 characters")
    return name(raw)


def region(raw: str) -> str:
    if len(raw) != 6 or not raw.isdigit() or not raw.isascii():  # isdigit alone takes '３' and '²'
        raise Bad("must be a 6-digit division code")
    return raw


def uscc(raw: str) -> str:
    problem = uscc_problem(raw)
    if problem:
        raise Bad(f"not a valid USCC: {problem}")
    return raw


def iso_date(raw: str) -> date:
    if _ISO_DATE.fullmatch(raw) is None:
        raise Bad("must be an ISO date YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise Bad(f"must be an ISO date YYYY-MM-DD ({exc})") from None


def optional_iso_date(raw: str) -> date | None:
    return iso_date(raw) if raw else None


def ratio(raw: str) -> str | None:
    if not raw:
        return None
    if _RATIO.fullmatch(raw) is None:
        raise Bad("must be an exact ratio from 0 to 1 with at most 6 decimals, such as 0.05")
    return raw


def one_of(*allowed: str) -> Callable[[str], str]:
    choices = frozenset(allowed)
    listing = ", ".join(repr(a) for a in allowed)

    def parse(raw: str) -> str:
        if raw not in choices:
            raise Bad(f"must be one of {listing}")
        return raw

    _CLEAN[parse] = choices.issuperset
    return parse


def flag(default: bool) -> Callable[[str], bool]:
    def parse(raw: str) -> bool:
        if raw == "true":
            return True
        if raw == "false":
            return False
        if raw == "":
            return default
        raise Bad(f"must be true or false (empty: {'true' if default else 'false'})")

    return parse


def _members(raw: str) -> list[str]:
    return sorted({member.strip() for member in raw.split(";")} - {""})


def _list_of(member: Callable[[str], object], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw:
            return ""
        members = _members(raw)
        bad = []
        for value in members:
            try:
                member(value)
            except Bad:
                bad.append(value)
        if bad:
            raise Bad(f"{', '.join(repr(b) for b in bad)} {'is' if len(bad) == 1 else 'are'} not {what}")
        return ";".join(members)

    return parse


_TAG_LIST = re.compile(r"[A-Za-z0-9._-]{1,32}(?:;[A-Za-z0-9._-]{1,32})*")
_tag_list = _list_of(tag, f"tags ({TAG_RULE})")


def tags(raw: str) -> str:
    # Labels are on every entity row: a list already clean (no spaces, no empty members) is
    # recognised by one regex; anything else takes the general path, which names the bad members.
    if not raw or _TAG_LIST.fullmatch(raw) is None:
        return _tag_list(raw)
    return raw if ";" not in raw else ";".join(sorted(set(raw.split(";"))))


usccs = _list_of(uscc, "valid USCCs")


def subset_of(*allowed: str, default: str | None = None) -> Callable[[str], str]:
    """A non-empty ';'-list drawn from `allowed`; an empty cell means `default` (or is an error)."""
    member = one_of(*allowed)
    checked = _list_of(member, f"one of {', '.join(allowed)}")

    def parse(raw: str) -> str:
        value = checked(raw)
        if value:
            return value
        if default is None:
            raise Bad(f"must list at least one of {', '.join(allowed)}")
        return default

    return parse


# --- clean columns: what the fast path checks ---------------------------------------------------
# Most rows of a big file are clean: every cell valid and already as it is stored (stripped, a list
# sorted). For a rule whose clean cells are stored exactly as written, _CLEAN holds a check of a
# whole column at once, True when every cell is clean; those cells are then staged as they are
# (_CleanRows). The checks are only given cells without '"', NUL, CR or LF.
_TAG_CHARS = re.compile(r"[A-Za-z0-9._-]*")
_TAG_LISTS = re.compile(rf"(?:{_TAG_LIST.pattern})?(?:\n(?:{_TAG_LIST.pattern})?)*")


def _stripped(cells: Sequence[str]) -> bool:
    return all(map(str.__eq__, cells, map(str.strip, cells)))


def _clean_tags(cells: Sequence[str]) -> bool:
    return min(map(len, cells)) >= 1 and max(map(len, cells)) <= 32 and _TAG_CHARS.fullmatch("".join(cells)) is not None


def _clean_industries(cells: Sequence[str]) -> bool:
    return max(map(len, cells)) <= 8 and _TAG_CHARS.fullmatch("".join(cells)) is not None


def _clean_names(cells: Sequence[str]) -> bool:
    return "" not in cells and _stripped(cells)


def _clean_regions(cells: Sequence[str]) -> bool:
    digits = "".join(cells)
    return set(map(len, cells)) == {6} and digits.isascii() and digits.isdigit()


def _in_order(members: list[str]) -> bool:
    return all(a < b for a, b in zip(members, members[1:]))


def _clean_tag_lists(cells: Sequence[str]) -> bool:
    # A list is clean when its members are already sorted and distinct; each distinct list once.
    return _TAG_LISTS.fullmatch("\n".join(cells)) is not None and all(
        _in_order(value.split(";")) for value in set(cells) if ";" in value
    )


_CLEAN.update({
    tag: _clean_tags,
    industry: _clean_industries,
    free_text: _stripped,
    name: _clean_names,
    region: _clean_regions,
    uscc: all_valid,
    tags: _clean_tag_lists,
})


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
    target: Table
    within_file: bool
    reason: str


RowRule = Callable[[dict], list[tuple[str, str]]]  # values by column -> [(column, reason)]


@dataclass(frozen=True)
class DirectorySpec:
    kind: str
    table: Table
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
            units,
            (
                FieldRule("unit_code", tag),
                FieldRule("name", name),
                FieldRule("parent_code", optional_tag),
                FieldRule("review_required", flag(True), required=False),
            ),
            row_rule=_unit_rule,
            references=(Reference("parent_code", units, True, "no such unit in this file or the units directory"),),
        ),
        DirectorySpec(
            "items",
            items,
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
            entities,
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
            inspectors,
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
            references=(Reference("unit_code", units, False, "no such unit in the units directory"),),
        ),
    )
}

# The rules must cover the table exactly: a column added to the schema without a rule would be
# silently written as NULL (or fail NOT NULL) on every import.
for _spec in SPECS.values():
    assert _spec.columns == [c.name for c in _spec.table.columns if c.name not in VERSIONING], _spec.kind


def _key_column(table: Table) -> Column:
    return next(c for c in table.primary_key.columns if c.name not in VERSIONING)


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
        # The fast path (_CleanRows) takes a file with exactly the directory's columns, in any order,
        # when every rule can check a whole column and no rule is about the row as a whole.
        self.columns = spec.columns  # the staged columns, in the order the rows are written to the stage
        self.clean: _CleanRows | None = None
        if sorted(header) == sorted(spec.columns) and spec.row_rule is None and all(f.parse in _CLEAN for f in spec.fields):
            self.columns = header
            self.clean = _CleanRows([(header.index(f.column), _CLEAN[f.parse]) for f in spec.fields], self.width)
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


# --- reading the file -------------------------------------------------------------------------
def _not_utf8(path: Path, file_name: str) -> ImportRejected:
    """The refusal of a file that is not UTF-8, naming the first bad line (found by a second read)."""
    with open(path, "rb") as binary:
        for number, raw in enumerate(binary, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                where = f"line {number} is not UTF-8 (byte {raw[exc.start]:#04x} at byte {exc.start + 1} of the line)"
                return ImportRejected(file_name, f"{where}; save the file as UTF-8")
    return ImportRejected(file_name, "is not UTF-8; save the file as UTF-8")


class _Lines:
    """The file's text, read a block at a time, for two readers taking turns.

    csv.reader iterates over it and gets the physical lines one by one, exactly as iterating over
    the file would give them (ends kept; CR LF, LF and a lone CR each end a line). The fast path
    takes whole runs of lines from the current block instead (`block`, from `at`). `number` counts
    the physical lines taken by either: it is the file's line number of the last one taken.
    """

    def __init__(self, read: Callable[[int], bytes]):
        self._read = read
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()  # Excel's "CSV UTF-8" starts with a byte order mark
        self._carry = ""  # text after the last LF read: the start of the next block
        self.block: list[str] = []  # the current block's lines, without their LF
        self.at = 0  # the block's next line
        self._last_ended = True  # whether the block's last line had its LF (not at the end of the file)
        self._pieces: list[str] = []  # the rest of a line that lone CRs cut into physical lines, reversed
        self.number = 0

    @property
    def in_block(self) -> bool:
        """Whether the next physical line starts one of the block's lines (one the fast path may take)."""
        return not self._pieces and self.at < len(self.block)

    @property
    def mid_line(self) -> bool:
        return bool(self._pieces)

    def next_block(self) -> bool:
        """Read the next block (its lines end at an LF, but at the end of the file); False at the end."""
        while True:
            data = self._read(_BLOCK_BYTES)
            text = self._decoder.decode(data, final=not data)
            if not data:  # the end of the file: the last line, if it has no LF
                last, self._carry = self._carry + text, ""
                if not last:
                    return False
                self.block, self.at, self._last_ended = [last], 0, False
                return True
            lines = text.split("\n")
            if len(lines) == 1:
                self._carry += text
                continue
            lines[0] = self._carry + lines[0]
            self._carry = lines.pop()
            self.block, self.at, self._last_ended = lines, 0, True
            return True

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._pieces:
            self.number += 1
            return self._pieces.pop()
        if self.at == len(self.block) and not self.next_block():
            raise StopIteration
        line = self.block[self.at]
        self.at += 1
        if self.at < len(self.block) or self._last_ended:
            line += "\n"
        if line.count("\r") > line.endswith("\r\n"):  # a lone CR: more than one physical line
            first, *rest = io.StringIO(line, newline="").readlines()
            line, self._pieces = first, rest[::-1]
        self.number += 1
        return line


@dataclass(frozen=True)
class _CleanRun:
    """Consecutive rows of the file, every one clean: their text, LF-separated, cells in the header's order."""

    first_line: int
    rows: int
    text: str

    def copy_text(self) -> str:
        """The rows as COPY text (delimiter ','): as they are, but for a backslash, COPY's escape."""
        return (self.text.replace("\\", "\\\\") if "\\" in self.text else self.text) + "\n"

    def cells(self) -> Iterator[tuple[int, list[str]]]:
        return zip(range(self.first_line, self.first_line + self.rows), (row.split(",") for row in self.text.split("\n")))


class _CleanRows:
    """Finds runs of clean rows: lines whose cells csv.reader would read as a plain split at ',' and
    whose every cell is clean (_CLEAN), so that RowChecker would stage them unchanged."""

    def __init__(self, checks: list[tuple[int, Callable[[Sequence[str]], bool]]], width: int):
        self._checks = checks  # (position in the row, check of that column's cells)
        self._width = width
        self._window = _WINDOW

    def runs(self, lines: _Lines) -> Iterator[_CleanRun]:
        """The clean runs at the start of the rest of the current block, taken from `lines`; stops
        at the block's end or at a line that is not clean (csv.reader takes that one)."""
        block = lines.block
        while lines.at < len(block):
            start = lines.at
            stop = min(start + self._window, len(block))
            text = self._clean_text(block[start:stop])
            if text is None:
                # Narrow down to the first line that is not clean; grow back after clean windows.
                self._window = (stop - start) // 2
                if self._window == 0:
                    self._window = 1
                    return
                continue
            lines.at, first_line = stop, lines.number + 1
            lines.number += stop - start
            self._window = min(2 * self._window, _WINDOW)
            yield _CleanRun(first_line, stop - start, text)

    def _clean_text(self, lines: list[str]) -> str | None:
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


class _RowStream:
    """The file's data rows, checked, in file order, accounting for every physical line: a _CleanRun
    for rows staged as they are (a line each), and (line, lines, values) for a record csv.reader read
    and RowChecker checked, on `lines` physical lines from `line`, where values are the row's (a bad
    row: its key alone), or None when nothing is staged (a blank line, a bad row without its key).
    Logs the errors."""

    def __init__(self, lines: _Lines, reader, checker: RowChecker, path: Path, progress: Callable[[int], None] | None):
        self.rows_read = 0
        self.errors = _ErrorLog()
        self._lines = lines
        self._reader = reader
        self._checker = checker
        self._path = path
        self._progress = progress

    def __iter__(self) -> Iterator[_CleanRun | tuple[int, int, list | None]]:
        lines, reader, check, clean = self._lines, self._reader, self._checker.check, self._checker.clean
        progress, count = self._progress, 0
        try:
            while True:
                if clean is not None and lines.in_block:
                    for run in clean.runs(lines):
                        before, count = count, count + run.rows
                        if progress is not None:
                            for done in range((before // PROGRESS_EVERY + 1) * PROGRESS_EVERY, count + 1, PROGRESS_EVERY):
                                progress(done)
                        yield run
                    if lines.at == len(lines.block):
                        if not lines.next_block():
                            break
                        continue
                line = lines.number + 1  # a row starts after the previous one ends
                cells = next(reader, None)
                if cells is None:
                    break
                span = lines.number + 1 - line
                if not cells or (not cells[0] and not any(cells)):
                    yield line, span, None  # a blank line, or one of empty cells as spreadsheets leave
                    continue
                count += 1
                if progress is not None and count % PROGRESS_EVERY == 0:
                    progress(count)
                key, values, errors = check(line, cells)
                if not errors:
                    yield line, span, values
                    continue
                self.errors.add(errors)
                yield line, span, (None if key is None else self._checker.key_only(key))
        except csv.Error as exc:
            raise ImportRejected(self._path.name, f"line {lines.number}: not readable as CSV ({exc})") from None
        except UnicodeDecodeError:
            raise _not_utf8(self._path, self._path.name) from None
        finally:
            self.rows_read = count
        if progress is not None:
            progress(count)


class _OpenedFile:
    """The CSV file, opened: its header checked, its rows ready to stream, its digest as read."""

    def __init__(self, spec: DirectorySpec, path: Path, progress: Callable[[int], None] | None):
        self.file_name = path.name
        self._digest = hashlib.sha256()
        try:
            self._raw = open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise ImportRejected(str(path), "file not found") from None
        except IsADirectoryError:
            raise ImportRejected(str(path), "is a directory, not a CSV file") from None
        except OSError as exc:
            raise ImportRejected(str(path), f"cannot be read ({exc.strerror})") from None
        try:
            lines = _Lines(self._read)
            reader = csv.reader(lines)
            header = self._header(reader, path)
            self.first_line = lines.number + 1  # of the data
            self.lines = lines
            self.checker = RowChecker(spec, header, self.file_name)
            self.rows = _RowStream(lines, reader, self.checker, path, progress)
        except BaseException:
            self.close()
            raise

    def _header(self, reader, path: Path) -> list[str]:
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ImportRejected(self.file_name, f"line 1: not readable as CSV ({exc})") from None
        except UnicodeDecodeError:
            raise _not_utf8(path, self.file_name) from None
        if not header or not any(h.strip() for h in header):
            raise ImportRejected(self.file_name, "is empty: line 1 must be the header row")
        return header

    def _read(self, size: int) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)  # the file's bytes, hashed as they are read
        return data

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _OpenedFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --- the staging tables -------------------------------------------------------------------------
def _temp_table(name: str, columns: list[Column]) -> Table:
    return Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])


def _stage_table(spec: DirectorySpec, first_line: int) -> Table:
    """Every checked row: good rows with their values, bad rows with their key only (NULL values).

    PostgreSQL numbers the rows itself (line: an identity from the first data line): every physical
    line of the file after the header is a row, in order, and the lines that stage nothing (a blank
    line, a bad key, the further lines of a quoted cell's record) are rows of NULLs (key NULL)."""
    columns = [Column(c.name, c.type) for c in spec.table.columns if c.name not in VERSIONING]
    line = Column("line", Integer, Identity(start=first_line), nullable=False)
    return _temp_table(f"_import_stage_{spec.kind}", [line, *columns])


class _RowAddress(UserDefinedType):
    """PostgreSQL's tid: where a row version is (its ctid)."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "tid"


def _row_address(table) -> ColumnElement:
    return literal_column(f'"{table.name}".ctid', _RowAddress())


def _changes_table(spec: DirectorySpec, dialect: str = "") -> Table:
    """The rows to write: new keys (old_from NULL) and changed ones (old_from: the version to close;
    on PostgreSQL old_row: where that version is, so that closing it needs no join)."""
    columns = [Column(c.name, c.type) for c in spec.table.columns if c.name not in VERSIONING]
    address = [Column("old_row", _RowAddress(), nullable=True)] if dialect == "postgresql" else []
    return _temp_table(
        f"_import_changes_{spec.kind}",
        [Column("line", Integer, nullable=False), *columns, Column("old_from", Instant(), nullable=True), *address],
    )


def _create(conn: Connection, table: Table) -> None:
    # A pooled connection may still hold the table: SQLite's driver runs DDL outside the
    # transaction, so a rolled-back import does not drop it.
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table.name}"')
    table.create(conn)


def _analyze(conn: Connection, table: Table) -> None:
    # Autovacuum never sees temp tables: without statistics the planner guesses their size.
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f'ANALYZE "{table.name}"')


# PostgreSQL: COPY text format with ',' as the delimiter, so that a clean row goes as it is -----------
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", ",": "\\,", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, date):
        return value.isoformat()
    return value.translate(_COPY_ESCAPES)


def _copy_row(values: list) -> str:
    try:
        joined = ",".join(values)  # TypeError: a value that is not a string (None, a date, a flag)
    except TypeError:
        pass
    else:  # almost no value holds a character COPY must escape: check the joined row once
        if joined.count(",") == len(values) - 1 and "\\" not in joined and "\n" not in joined and "\r" not in joined:
            return joined + "\n"
    return ",".join(map(_copy_value, values)) + "\n"


class _CopySource:
    """A file-like object for psycopg2's copy_expert: COPY text made from the row stream, a row
    for each physical line (the stage numbers them)."""

    def __init__(self, staged: Iterator[_CleanRun | tuple[int, int, list | None]], order: list[int]):
        self._staged = iter(staged)
        self._order = order  # the staged order of the values
        self._nothing = ",".join(["\\N"] * len(order)) + "\n"  # a line that stages nothing
        self.rows = 0
        self.failure: BaseException | None = None

    def read(self, size: int = _COPY_CHUNK) -> bytes:
        parts, length, order = [], 0, self._order
        try:
            for item in self._staged:
                if type(item) is _CleanRun:
                    part, self.rows = item.copy_text(), self.rows + item.rows
                else:
                    line, span, values = item
                    part = self._nothing * span if values is None else _copy_row([values[i] for i in order]) + self._nothing * (span - 1)
                    self.rows += span
                parts.append(part)
                length += len(part)
                if length >= size:
                    break
        except BaseException as exc:  # noqa: BLE001 - re-raised by reraise_failure, once COPY is over
            # psycopg2 would turn it into a QueryCanceled; end the data here and raise it as it is.
            self.failure = exc
            return b""
        return "".join(parts).encode("utf-8")

    def reraise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


def _load_stage_postgresql(conn: Connection, stage: Table, opened: _OpenedFile) -> None:
    columns = ", ".join(f'"{c}"' for c in opened.checker.columns)
    cursor = conn.connection.dbapi_connection.cursor()  # the same connection: the same transaction
    source = _CopySource(opened.rows, opened.checker.order)
    try:
        cursor.copy_expert(f"COPY \"{stage.name}\" ({columns}) FROM STDIN WITH (DELIMITER ',')", source, size=_COPY_CHUNK)
    finally:
        cursor.close()
    source.reraise_failure()
    if source.rows != opened.lines.number + 1 - opened.first_line:  # the lines would be numbered wrong
        raise RuntimeError(f"{opened.file_name}: {source.rows} rows staged for {opened.lines.number + 1 - opened.first_line} lines")


def _load_stage_sqlite(conn: Connection, stage: Table, opened: _OpenedFile) -> None:
    names = ["line", *opened.checker.spec.columns]
    clean_names = ["line", *opened.checker.columns]
    batch: list[dict] = []
    for item in opened.rows:
        if type(item) is _CleanRun:
            batch += [dict(zip(clean_names, (line, *cells))) for line, cells in item.cells()]
        else:
            line, _, values = item
            if values is not None:
                batch.append(dict(zip(names, (line, *values))))
        if len(batch) >= _SQLITE_BATCH:
            conn.execute(insert(stage), batch)
            batch = []
    if batch:
        conn.execute(insert(stage), batch)


# --- checks over the whole file, in SQL -----------------------------------------------------------
def _duplicate_errors(conn: Connection, spec: DirectorySpec, stage: Table) -> tuple[list[RowError], int]:
    key = stage.c[spec.key]
    first = (
        select(key.label("key"), func.min(stage.c.line).label("first_line"))
        .where(key.is_not(None))  # the lines that stage nothing
        .group_by(key)
        .having(func.count() > 1)
        .subquery()
    )
    query = (
        select(stage.c.line, key, first.c.first_line, func.count().over().label("total"))
        .join(first, first.c.key == key)
        .where(stage.c.line > first.c.first_line)
        .order_by(stage.c.line)
        .limit(ERRORS_KEPT)
    )
    rows = conn.execute(query).all()
    errors = [RowError(r.line, spec.key, r[1], f"duplicate key: already on line {r.first_line}") for r in rows]
    return errors, (rows[0].total if rows else 0)


def _reference_errors(conn: Connection, spec: DirectorySpec, stage: Table, ref: Reference) -> tuple[list[RowError], int]:
    value = stage.c[ref.column]
    target_key = _key_column(ref.target)
    missing = [
        value.is_not(None),  # a bad row's values are NULL
        ~exists().where(target_key == value, ref.target.c.valid_to.is_(None)),
    ]
    if ref.within_file:
        in_file = stage.alias("in_file")
        missing.append(~exists().where(in_file.c[spec.key] == value))
    query = (
        select(stage.c.line, value, func.count().over().label("total"))
        .where(*missing)
        .order_by(stage.c.line)
        .limit(ERRORS_KEPT)
    )
    rows = conn.execute(query).all()
    return [RowError(r.line, ref.column, r[1], ref.reason) for r in rows], (rows[0].total if rows else 0)


def _file_errors(conn: Connection, spec: DirectorySpec, stage: Table, log: _ErrorLog) -> None:
    log.add(*_duplicate_errors(conn, spec, stage))
    for ref in spec.references:
        log.add(*_reference_errors(conn, spec, stage, ref))


# --- the merge ------------------------------------------------------------------------------------
def _collect_changes(conn: Connection, spec: DirectorySpec, stage: Table) -> Table:
    """Stage the new and changed rows: those without a current version or differing from it."""
    changes = _changes_table(spec, conn.dialect.name)
    _create(conn, changes)
    current = spec.table.alias("current_version")
    same_key = and_(current.c[spec.key] == stage.c[spec.key], current.c.valid_to.is_(None))
    differs = or_(*(current.c[c].is_distinct_from(stage.c[c]) for c in spec.value_columns))
    address = [_row_address(current)] if "old_row" in changes.c else []
    rows = (
        select(stage.c.line, *(stage.c[c] for c in spec.columns), current.c.valid_from, *address)
        .select_from(stage.outerjoin(current, same_key))
        .where(stage.c[spec.key].is_not(None), or_(current.c.valid_from.is_(None), differs))
    )
    conn.execute(insert(changes).from_select(["line", *spec.columns, "old_from", *(["old_row"] if address else [])], rows))
    _analyze(conn, changes)
    return changes


def _going_back_in_time(conn: Connection, spec: DirectorySpec, changes: Table, line: int, now: datetime, file_name: str) -> ImportRejected:
    late = conn.execute(select(changes.c[spec.key], changes.c.old_from).where(changes.c.line == line)).one()
    return ImportRejected(
        file_name,
        f"line {line}: the current version of {spec.key} {late[0]!r} is valid from {late.old_from}, "
        f"not before this import's time {now.isoformat()}; check the clock",
    )


def _record_batch(conn: Connection, spec: DirectorySpec, opened: _OpenedFile, now: datetime, rows_read: int, changed: int) -> int:
    return conn.execute(
        insert(import_batches).values(
            kind=spec.kind,
            file_name=opened.file_name,
            file_sha256=opened.sha256,
            imported_at=now,
            rows_read=rows_read,
            rows_changed=changed,
        ).returning(import_batches.c.batch_id)
    ).scalar_one()


def _write_versions(conn: Connection, spec: DirectorySpec, changes: Table, now: datetime, batch_id: int) -> None:
    table = spec.table
    closing = [table.c[spec.key] == changes.c[spec.key], table.c.valid_from == changes.c.old_from, table.c.valid_to.is_(None)]
    if "old_row" in changes.c:
        # The version compared is fetched where it is: the planner would rather scan the whole
        # directory for a join on the key than look up a few thousand keys in its index.
        closing.insert(0, _row_address(table) == changes.c.old_row)
    conn.execute(update(table).where(*closing).values(valid_to=now))
    _insert_versions(conn, spec, changes, now, batch_id)


def _insert_versions(conn: Connection, spec: DirectorySpec, rows: Table, now: datetime, batch_id: int) -> None:
    conn.execute(
        insert(spec.table).from_select(
            [*spec.columns, "valid_from", "batch_id"],
            # In key order: the index entries go in sequence instead of to random pages.
            select(*(rows.c[c] for c in spec.columns), literal(now, Instant()), literal(batch_id, Integer))
            .where(rows.c[spec.key].is_not(None))  # the stage's lines that stage nothing
            .order_by(rows.c[spec.key]),
        )
    )


# --- the import -----------------------------------------------------------------------------------
def _begin_import(conn: Connection, kind: str) -> None:
    if conn.dialect.name != "postgresql":
        return
    # Two imports of one directory at once would both close the same current versions.
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"spotcheck.import.{kind}"})
    # The duplicate check and the merge hash millions of keys: let them do it in memory (a
    # province's 4 million rows need about 700 MB for a while, hence hash_mem_multiplier).
    conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
    conn.exec_driver_sql("SET LOCAL hash_mem_multiplier = 4")


def _utc(now: datetime) -> datetime:
    # SQLite stores instants without their offset: write them all in UTC so they compare.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(timezone.utc)


def import_directory(
    engine: Engine,
    kind: str,
    path: Path,
    *,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Validate the CSV file at `path` and merge it into directory `kind`: all or nothing (see module doc)."""
    path = Path(path)
    spec = SPECS.get(kind)
    if spec is None:
        raise ImportRejected(path.name, f"unknown directory {kind!r}: expected one of {', '.join(SPECS)}")
    now = _utc(now)
    with _OpenedFile(spec, path, progress) as opened, engine.begin() as conn:
        _begin_import(conn, kind)
        stage = _stage_table(spec, opened.first_line)
        _create(conn, stage)
        load = _load_stage_postgresql if conn.dialect.name == "postgresql" else _load_stage_sqlite
        load(conn, stage, opened)
        errors = opened.rows.errors
        summary = None
        if not errors.total and _empty_directory(conn, spec):
            summary = _first_import(conn, spec, stage, opened, now)
        if summary is None:
            _analyze(conn, stage)
            _file_errors(conn, spec, stage, errors)
            if errors.total:
                raise ImportRejected(opened.file_name, f"{errors.total} error(s); nothing was imported", errors.kept, errors.total)
            summary = _merge(conn, spec, stage, opened, now)
        for table in (stage, _changes_table(spec)):
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table.name}"')
        return summary


def _empty_directory(conn: Connection, spec: DirectorySpec) -> bool:
    """Whether the first import into the directory can take the short way (PostgreSQL, no references)."""
    if conn.dialect.name != "postgresql" or spec.references:
        return False
    return conn.execute(select(spec.table.c[spec.key]).limit(1)).first() is None


def _first_import(conn: Connection, spec: DirectorySpec, stage: Table, opened: _OpenedFile, now: datetime) -> ImportSummary | None:
    """The first import into a directory without any version: every row is new, so there is nothing
    to compare and nothing to close, and the staged rows are written at once, in key order. Two
    rows with one key would make the primary key refuse the insert: then this gives up (None) and
    the usual way lists the duplicates (the batch id drawn here is not used again)."""
    rows_read = opened.rows.rows_read
    batch_id = None
    if rows_read:
        try:
            with conn.begin_nested():
                batch_id = _record_batch(conn, spec, opened, now, rows_read, rows_read)
                _insert_versions(conn, spec, stage, now, batch_id)
        except IntegrityError:
            return None
        # The next import's plan depends on the directory's statistics; autovacuum may be late.
        _analyze(conn, spec.table)
    return ImportSummary(
        kind=spec.kind,
        file_name=opened.file_name,
        rows_read=rows_read,
        added=rows_read,
        changed=0,
        unchanged=0,
        batch_id=batch_id,
    )


def _merge(conn: Connection, spec: DirectorySpec, stage: Table, opened: _OpenedFile, now: datetime) -> ImportSummary:
    rows_read = opened.rows.rows_read
    changes = _collect_changes(conn, spec, stage)
    total, changed, first_late = conn.execute(
        select(func.count(), func.count(changes.c.old_from), func.min(changes.c.line).filter(changes.c.old_from >= now))
    ).one()
    if first_late is not None:
        raise _going_back_in_time(conn, spec, changes, first_late, now, opened.file_name)
    batch_id = None
    if total:
        batch_id = _record_batch(conn, spec, opened, now, rows_read, total)
        _write_versions(conn, spec, changes, now, batch_id)
    return ImportSummary(
        kind=spec.kind,
        file_name=opened.file_name,
        rows_read=rows_read,
        added=total - changed,
        changed=changed,
        unchanged=rows_read - total,
        batch_id=batch_id,
    )


# --- reading the directories ------------------------------------------------------------------------
def as_of_clause(table: Table, at: datetime) -> ColumnElement[bool]:
    """WHERE clause: the versions of `table` in force at instant `at` (the freeze reads with it)."""
    at = _utc(at)
    return and_(table.c.valid_from <= at, or_(table.c.valid_to.is_(None), table.c.valid_to > at))


def current_clause(table: Table) -> ColumnElement[bool]:
    """WHERE clause: the current versions of `table`."""
    return table.c.valid_to.is_(None)
