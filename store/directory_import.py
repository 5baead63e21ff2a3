"""The directory import's SQL: the file's checked rows staged in a TEMP table, the checks over the
whole file (duplicate keys, references), and the set-based merge that writes versions.

One transaction per import (`staging`). The staging load is the only part that differs between
the databases: PostgreSQL takes COPY streamed straight from the row stream, SQLite (the demo)
batched INSERTs. Then a merge compares every value column (IS DISTINCT FROM) and writes versions
only for new and changed rows: the changed row's current version gets valid_to = now and a new
one is added (valid_from = now, the import's batch).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, Iterator

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
from domain.directory_rows import (
    ERRORS_KEPT,
    SPECS,
    CleanRun,
    DirectorySpec,
    ErrorLog,
    Reference,
    RowError,
    duplicate_key,
    in_utc,
)

_SQLITE_BATCH = 2_000
_COPY_CHUNK = 1 << 18
VERSIONING = ("valid_from", "valid_to", "batch_id")
TABLES = {"units": units, "items": items, "entities": entities, "inspectors": inspectors}

# The rules must cover the table exactly: a column added to the schema without a rule would be
# silently written as NULL (or fail NOT NULL) on every import.
for _spec in SPECS.values():
    assert _spec.columns == [c.name for c in TABLES[_spec.kind].columns if c.name not in VERSIONING], _spec.kind

Staged = CleanRun | tuple[int, int, list | None]  # see Staging.load


@dataclass(frozen=True)
class Batch:
    """The import_batches row of an import that changes something."""

    file_name: str
    file_sha256: str
    imported_at: datetime
    rows_read: int
    rows_changed: int


@dataclass(frozen=True)
class Changes:
    total: int  # rows to write: new keys and changed ones
    changed: int  # of which changed (a current version to close)
    first_late: int | None  # the first line whose current version is valid from the import's time or later


# --- the staging tables -------------------------------------------------------------------------
def _key_column(table: Table) -> Column:
    return next(c for c in table.primary_key.columns if c.name not in VERSIONING)


def _temp_table(name: str, columns: list[Column]) -> Table:
    return Table(name, MetaData(), *columns, prefixes=["TEMPORARY"])


def _stage_table(spec: DirectorySpec, first_line: int) -> Table:
    """Every checked row: good rows with their values, bad rows with their key only (NULL values).

    PostgreSQL numbers the rows itself (line: an identity from the first data line): every physical
    line of the file after the header is a row, in order, and the lines that stage nothing (a blank
    line, a bad key, the further lines of a quoted cell's record) are rows of NULLs (key NULL)."""
    columns = [Column(c.name, c.type) for c in TABLES[spec.kind].columns if c.name not in VERSIONING]
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
    columns = [Column(c.name, c.type) for c in TABLES[spec.kind].columns if c.name not in VERSIONING]
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


def _copy_run(run: CleanRun) -> str:
    """A clean run as COPY text: as it is, but for a backslash, COPY's escape."""
    return (run.text.replace("\\", "\\\\") if "\\" in run.text else run.text) + "\n"


class CopySource:
    """A file-like object for psycopg2's copy_expert: COPY text made from the row stream, a row
    for each physical line (the stage numbers them)."""

    def __init__(self, staged: Iterable[Staged], order: list[int]):
        self._staged = iter(staged)
        self._order = order  # the staged order of the values
        self._nothing = ",".join(["\\N"] * len(order)) + "\n"  # a line that stages nothing
        self.rows = 0
        self.failure: BaseException | None = None

    def read(self, size: int = _COPY_CHUNK) -> bytes:
        parts, length, order = [], 0, self._order
        try:
            for item in self._staged:
                if type(item) is CleanRun:
                    part, self.rows = _copy_run(item), self.rows + item.rows
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


# --- one import -------------------------------------------------------------------------------------
@contextmanager
def staging(engine: Engine, spec: DirectorySpec, first_line: int) -> Iterator[Staging]:
    """The import's one transaction, with its stage created: all or nothing."""
    with engine.begin() as conn:
        _begin_import(conn, spec.kind)
        staged = Staging(conn, spec, first_line)
        yield staged
        for table in (staged.stage, _changes_table(spec)):
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table.name}"')


def _begin_import(conn: Connection, kind: str) -> None:
    if conn.dialect.name != "postgresql":
        return
    # Two imports of one directory at once would both close the same current versions.
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"spotcheck.import.{kind}"})
    # The duplicate check and the merge hash millions of keys: let them do it in memory (a
    # province's 4 million rows need about 700 MB for a while, hence hash_mem_multiplier).
    conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
    conn.exec_driver_sql("SET LOCAL hash_mem_multiplier = 4")


class Staging:
    """A file's rows in the stage, and what is done with them within the import's transaction."""

    def __init__(self, conn: Connection, spec: DirectorySpec, first_line: int):
        self._conn = conn
        self._spec = spec
        self._table = TABLES[spec.kind]
        self._changes: Table | None = None
        self.stage = _stage_table(spec, first_line)
        _create(conn, self.stage)

    def load(self, rows: Iterable[Staged], columns: list[str], order: list[int]) -> int:
        """Stage the row stream; returns how many physical lines its items account for.

        The stream gives a CleanRun for rows staged as they are (cells in `columns` order), and
        (line, lines, values) for a record on `lines` physical lines from `line`: values in the
        directory's column order (a bad row: its key alone), or None when nothing is staged.
        `order`: the directory's values in `columns` order."""
        if self._conn.dialect.name == "postgresql":
            return self._copy(rows, columns, order)
        return self._insert(rows, columns)

    def _copy(self, rows: Iterable[Staged], columns: list[str], order: list[int]) -> int:
        names = ", ".join(f'"{c}"' for c in columns)
        cursor = self._conn.connection.dbapi_connection.cursor()  # the same connection: the same transaction
        source = CopySource(rows, order)
        try:
            cursor.copy_expert(f"COPY \"{self.stage.name}\" ({names}) FROM STDIN WITH (DELIMITER ',')", source, size=_COPY_CHUNK)
        finally:
            cursor.close()
        source.reraise_failure()
        return source.rows

    def _insert(self, rows: Iterable[Staged], columns: list[str]) -> int:
        names = ["line", *self._spec.columns]
        clean_names = ["line", *columns]
        batch: list[dict] = []
        lines = 0
        for item in rows:
            if type(item) is CleanRun:
                batch += [dict(zip(clean_names, (line, *cells))) for line, cells in item.cells()]
                lines += item.rows
            else:
                line, span, values = item
                lines += span
                if values is not None:
                    batch.append(dict(zip(names, (line, *values))))
            if len(batch) >= _SQLITE_BATCH:
                self._conn.execute(insert(self.stage), batch)
                batch = []
        if batch:
            self._conn.execute(insert(self.stage), batch)
        return lines

    # --- the first import: every row new ----------------------------------------------------------
    def empty_directory(self) -> bool:
        """Whether the first import into the directory can take the short way (PostgreSQL, no references)."""
        if self._conn.dialect.name != "postgresql" or self._spec.references:
            return False
        return self._conn.execute(select(self._table.c[self._spec.key]).limit(1)).first() is None

    def write_all(self, batch: Batch) -> int | None:
        """Write every staged row as a first version, at once, in key order: the batch id, or None
        when two rows share a key (the primary key refuses the insert; the batch id drawn is not
        used again, and nothing of this is written)."""
        try:
            with self._conn.begin_nested():
                batch_id = self._record_batch(batch)
                self._insert_versions(self.stage, batch.imported_at, batch_id)
        except IntegrityError:
            return None
        # The next import's plan depends on the directory's statistics; autovacuum may be late.
        _analyze(self._conn, self._table)
        return batch_id

    # --- checks over the whole file -----------------------------------------------------------------
    def find_errors(self, log: ErrorLog) -> None:
        """Duplicate keys and references to records that do not exist, added to `log`."""
        _analyze(self._conn, self.stage)
        log.add(*self._duplicate_errors())
        for ref in self._spec.references:
            log.add(*self._reference_errors(ref))

    def _duplicate_errors(self) -> tuple[list[RowError], int]:
        stage, spec = self.stage, self._spec
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
        rows = self._conn.execute(query).all()
        errors = [duplicate_key(r.line, spec.key, r[1], r.first_line) for r in rows]
        return errors, (rows[0].total if rows else 0)

    def _reference_errors(self, ref: Reference) -> tuple[list[RowError], int]:
        stage = self.stage
        value = stage.c[ref.column]
        target = TABLES[ref.target]
        missing = [
            value.is_not(None),  # a bad row's values are NULL
            ~exists().where(_key_column(target) == value, target.c.valid_to.is_(None)),
        ]
        if ref.within_file:
            in_file = stage.alias("in_file")
            missing.append(~exists().where(in_file.c[self._spec.key] == value))
        query = (
            select(stage.c.line, value, func.count().over().label("total"))
            .where(*missing)
            .order_by(stage.c.line)
            .limit(ERRORS_KEPT)
        )
        rows = self._conn.execute(query).all()
        return [RowError(r.line, ref.column, r[1], ref.reason) for r in rows], (rows[0].total if rows else 0)

    # --- the merge ----------------------------------------------------------------------------------
    def collect_changes(self, now: datetime) -> Changes:
        """Stage the new and changed rows: those without a current version or differing from it."""
        conn, spec, stage = self._conn, self._spec, self.stage
        changes = self._changes = _changes_table(spec, conn.dialect.name)
        _create(conn, changes)
        current = self._table.alias("current_version")
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
        total, changed, first_late = conn.execute(
            select(func.count(), func.count(changes.c.old_from), func.min(changes.c.line).filter(changes.c.old_from >= now))
        ).one()
        return Changes(total, changed, first_late)

    def current_version(self, line: int) -> tuple[object, datetime]:
        """The key of the changed row on `line`, and since when its current version is valid."""
        changes = self._changes
        key, valid_from = self._conn.execute(select(changes.c[self._spec.key], changes.c.old_from).where(changes.c.line == line)).one()
        return key, valid_from

    def write_changes(self, batch: Batch) -> int:
        """Close the changed rows' current versions and add the new versions: the batch id."""
        table, spec, changes, now = self._table, self._spec, self._changes, batch.imported_at
        batch_id = self._record_batch(batch)
        closing = [table.c[spec.key] == changes.c[spec.key], table.c.valid_from == changes.c.old_from, table.c.valid_to.is_(None)]
        if "old_row" in changes.c:
            # The version compared is fetched where it is: the planner would rather scan the whole
            # directory for a join on the key than look up a few thousand keys in its index.
            closing.insert(0, _row_address(table) == changes.c.old_row)
        self._conn.execute(update(table).where(*closing).values(valid_to=now))
        self._insert_versions(changes, now, batch_id)
        return batch_id

    def _record_batch(self, batch: Batch) -> int:
        return self._conn.execute(
            insert(import_batches).values(
                kind=self._spec.kind,
                file_name=batch.file_name,
                file_sha256=batch.file_sha256,
                imported_at=batch.imported_at,
                rows_read=batch.rows_read,
                rows_changed=batch.rows_changed,
            ).returning(import_batches.c.batch_id)
        ).scalar_one()

    def _insert_versions(self, rows: Table, now: datetime, batch_id: int) -> None:
        spec = self._spec
        self._conn.execute(
            insert(self._table).from_select(
                [*spec.columns, "valid_from", "batch_id"],
                # In key order: the index entries go in sequence instead of to random pages.
                select(*(rows.c[c] for c in spec.columns), literal(now, Instant()), literal(batch_id, Integer))
                .where(rows.c[spec.key].is_not(None))  # the stage's lines that stage nothing
                .order_by(rows.c[spec.key]),
            )
        )


# --- reading the directories ------------------------------------------------------------------------
def as_of_clause(table: Table, at: datetime) -> ColumnElement[bool]:
    """WHERE clause: the versions of `table` in force at instant `at` (the freeze reads with it)."""
    at = in_utc(at)
    return and_(table.c.valid_from <= at, or_(table.c.valid_to.is_(None), table.c.valid_to > at))


def current_clause(table: Table) -> ColumnElement[bool]:
    """WHERE clause: the current versions of `table`."""
    return table.c.valid_to.is_(None)
