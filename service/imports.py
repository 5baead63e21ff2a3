"""Directory imports (一单两库 and the units): a CSV file, checked row by row, merged as new versions.

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

How (a province has ~4 million entities, so memory stays flat whatever the file size): the file
is decoded a block at a time and read by csv.reader, each row checked in plain Python
(domain.directory_rows.RowChecker, the same code for both databases); runs of clean rows skip
csv.reader and go to the stage as they are. The stream of checked rows is staged, checked over
the whole file and merged in SQL (store.directory_import).
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from db.engine import Engine
from domain.directory_rows import (
    SPECS,
    CleanColumns,
    CleanRun,
    DirectorySpec,
    ErrorLog,
    ImportRejected,
    RowChecker,
    clock_behind,
    in_utc,
    unknown_directory,
)
from runtime.examples import EXAMPLES
from store import directory_import
from store.directory_import import Batch, Staging

__all__ = ["DIRECTORIES", "ImportRejected", "ImportSummary", "import_directory", "import_examples"]

PROGRESS_EVERY = 10_000  # rows between progress(rows) calls: a terminal's bar moves a few times a second
_BLOCK_BYTES = 1 << 20  # read at a time
_WINDOW = 256  # rows the fast path checks at once, at most
DIRECTORIES = ("units", "items", "entities", "inspectors")  # in dependency order


@dataclass(frozen=True)
class ImportSummary:
    kind: str
    file_name: str
    rows_read: int
    added: int
    changed: int
    unchanged: int
    batch_id: int | None  # None when nothing changed (no batch is written)


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


class _CleanRuns:
    """Takes runs of clean rows (CleanColumns) from the current block, in windows that narrow down
    to the first line that is not clean and grow back after clean windows."""

    def __init__(self, clean: CleanColumns):
        self._clean = clean
        self._window = _WINDOW

    def runs(self, lines: _Lines) -> Iterator[CleanRun]:
        """The clean runs at the start of the rest of the current block, taken from `lines`; stops
        at the block's end or at a line that is not clean (csv.reader takes that one)."""
        block = lines.block
        while lines.at < len(block):
            start = lines.at
            stop = min(start + self._window, len(block))
            text = self._clean.text(block[start:stop])
            if text is None:
                self._window = (stop - start) // 2
                if self._window == 0:
                    self._window = 1
                    return
                continue
            lines.at, first_line = stop, lines.number + 1
            lines.number += stop - start
            self._window = min(2 * self._window, _WINDOW)
            yield CleanRun(first_line, stop - start, text)


class _RowStream:
    """The file's data rows, checked, in file order, accounting for every physical line: a CleanRun
    for rows staged as they are (a line each), and (line, lines, values) for a record csv.reader read
    and RowChecker checked, on `lines` physical lines from `line`, where values are the row's (a bad
    row: its key alone), or None when nothing is staged (a blank line, a bad row without its key).
    Logs the errors."""

    def __init__(self, lines: _Lines, reader, checker: RowChecker, path: Path, progress: Callable[[int], None] | None):
        self.rows_read = 0
        self.errors = ErrorLog()
        self._lines = lines
        self._reader = reader
        self._checker = checker
        self._path = path
        self._progress = progress

    def __iter__(self) -> Iterator[CleanRun | tuple[int, int, list | None]]:
        lines, reader, check = self._lines, self._reader, self._checker.check
        clean = None if self._checker.clean is None else _CleanRuns(self._checker.clean)
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

    def batch(self, now: datetime, changed: int) -> Batch:
        """The import batch of the file, read to its end."""
        return Batch(self.file_name, self.sha256, now, self.rows.rows_read, changed)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _OpenedFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --- the import -----------------------------------------------------------------------------------
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
        raise unknown_directory(path.name, kind)
    now = in_utc(now)
    with _OpenedFile(spec, path, progress) as opened, directory_import.staging(engine, spec, opened.first_line) as staged:
        lines = staged.load(opened.rows, opened.checker.columns, opened.checker.order)
        if lines != opened.lines.number + 1 - opened.first_line:  # the stage would number the lines wrong
            raise RuntimeError(f"{opened.file_name}: {lines} rows staged for {opened.lines.number + 1 - opened.first_line} lines")
        errors = opened.rows.errors
        summary = None
        if not errors.total and staged.empty_directory():
            summary = _first_import(staged, spec, opened, now)
        if summary is None:
            staged.find_errors(errors)
            if errors.total:
                raise errors.rejection(opened.file_name)
            summary = _merge(staged, spec, opened, now)
        return summary


def _first_import(staged: Staging, spec: DirectorySpec, opened: _OpenedFile, now: datetime) -> ImportSummary | None:
    """The first import into a directory without any version: every row is new, so there is nothing
    to compare and nothing to close. Two rows with one key: None, and the usual way lists them."""
    rows_read = opened.rows.rows_read
    batch_id = None
    if rows_read:
        batch_id = staged.write_all(opened.batch(now, rows_read))
        if batch_id is None:
            return None
    return ImportSummary(
        kind=spec.kind,
        file_name=opened.file_name,
        rows_read=rows_read,
        added=rows_read,
        changed=0,
        unchanged=0,
        batch_id=batch_id,
    )


def _merge(staged: Staging, spec: DirectorySpec, opened: _OpenedFile, now: datetime) -> ImportSummary:
    rows_read = opened.rows.rows_read
    changes = staged.collect_changes(now)
    if changes.first_late is not None:
        key, valid_from = staged.current_version(changes.first_late)
        raise clock_behind(opened.file_name, changes.first_late, spec.key, key, valid_from, now)
    batch_id = None
    if changes.total:
        batch_id = staged.write_changes(opened.batch(now, changes.total))
    return ImportSummary(
        kind=spec.kind,
        file_name=opened.file_name,
        rows_read=rows_read,
        added=changes.total - changes.changed,
        changed=changes.changed,
        unchanged=rows_read - changes.total,
        batch_id=batch_id,
    )


def import_examples(engine: Engine, now: datetime) -> list[ImportSummary]:
    """The sample directories shipped in examples/, each imported in dependency order."""
    return [import_directory(engine, kind, EXAMPLES / f"{kind}.csv", now=now) for kind in DIRECTORIES]
