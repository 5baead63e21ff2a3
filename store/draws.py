"""Draws (draw-protocol.md): announcements, frozen populations and pools, selections, dispatched teams.

The eligibility filter lives here once, `eligible_population`. A draw's population is not stored:
it is what the filter returns as of the draw's `frozen_at` (the directory's history and the year's
earlier selections then), streamed in USCC byte order by `population_lines` for the freeze's
digest, the draw's selection and `draw verify` alike. A draw keeps only its selection
(draw_selection). Draws frozen before migration 0006 keep their stored rows (draw_population).

On PostgreSQL the freeze and the draw count and hash the population and rank its keys in the
database (`tally`, `population_digest`, `select_in_database`): only the selected rows leave it.
SQLite, the demo's embedded database, streams the lines to domain.draw instead.
"""
from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import (
    Connection,
    Engine,
    LargeBinary,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from db import schema
from store.common import NotFound, canonical_json, insert_once, one_by
from store.directory import has_any_label, in_force, items_of, split, task_line

d, dp, ds, e = schema.draws, schema.draw_population, schema.draw_selection, schema.entities
COUNTED = ("drawn", "superseded")  # states of a draw that selected (a superseded one did, until superseded)
_BATCH = 10_000
LINES_PER_BLOCK = 50_000  # population lines handed on at a time (a heartbeat each)
ROWS_PER_PAGE = 10_000  # selected rows written per statement (a heartbeat each)


def announce(connection: Connection, *, task_id: str, draw_seq: int, commitment: str, nonce: bytes,
             entropy_source: str, reason: str | None, approver: str | None, workflow_id: str, step: str):
    """The announced draw, stored once: a retry finds the first attempt's nonce and returns that row."""
    insert_once(connection, d, dict(
        task_id=task_id, draw_seq=draw_seq, state="announced", commitment=commitment, nonce=nonce.hex(),
        entropy_source=entropy_source, reason=reason, approver=approver, workflow_id=workflow_id, step=step,
    ), keys=("task_id", "draw_seq"))
    return draw(connection, task_id, draw_seq)


def draw(connection: Connection, task_id: str, draw_seq: int):
    row = one_by(connection, d, task_id=task_id, draw_seq=draw_seq)
    if row is None:
        raise NotFound(f"announcement of task {task_id} draw {draw_seq}")
    return row


def save(connection: Connection, task_id: str, draw_seq: int, *, record: dict, **columns) -> None:
    """The draw's stored record (and state, times, secrets) after a step."""
    connection.execute(update(d).where(d.c.task_id == task_id, d.c.draw_seq == draw_seq)
                       .values(record=canonical_json(record), **columns))


def fix_freeze(connection: Connection, task_id: str, draw_seq: int, frozen_at: datetime, salt: str) -> None:
    """The freeze's instant and salt, fixed by its first attempt: a retry recomputes the same digest."""
    connection.execute(update(d).where(d.c.task_id == task_id, d.c.draw_seq == draw_seq, d.c.frozen_at.is_(None))
                       .values(frozen_at=frozen_at, population_salt=salt))


def supersede(connection: Connection, task_id: str, draw_seq: int) -> None:
    connection.execute(update(d).where(d.c.task_id == task_id, d.c.draw_seq == draw_seq, d.c.state == "drawn")
                       .values(state="superseded"))


def latest_frozen_at(connection: Connection, task_id: str) -> datetime | None:
    """When the task's latest draw was frozen (None while it is announced only)."""
    row = connection.execute(select(d.c.frozen_at).where(d.c.task_id == task_id).order_by(d.c.draw_seq.desc())).first()
    if row is None:
        raise NotFound(f"draw of task {task_id}")
    return row.frozen_at


def lock_year(connection: Connection, year: int) -> None:
    """R12 across tasks: freezes, draws and supersessions of one plan year take turns, so each freeze sees
    every selection committed before its `frozen_at` and none after it."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(7233100 + year)))


def record_targeted(connection: Connection, task_id: str, uscc: str, reason: str, at: datetime,
                    legal_basis: str | None = None) -> None:
    """The targeted entity, once; a legal basis given later (the entity first targeted without one) is kept."""
    tg = schema.targeted
    if not insert_once(connection, tg, dict(task_id=task_id, uscc=uscc, reason=reason, added_at=at,
                                            legal_basis=legal_basis), keys=("task_id", "uscc")) and legal_basis:
        connection.execute(update(tg).where(tg.c.task_id == task_id, tg.c.uscc == uscc, tg.c.legal_basis.is_(None))
                           .values(legal_basis=legal_basis))


CAP_REASONS = ("a_class_already_drawn", "frequency_cap")  # the exclusions a legal basis lifts (R12, R14)


def cap_exclusion(connection: Connection, task_id: str, uscc: str, at: datetime) -> str | None:
    """The reason the frequency cap (R12, R14) excludes the entity from the task's population at `at`, or None."""
    line, year = task_line(connection, task_id)
    rows = eligible_population(connection, task_id, line, year, at).subquery()
    reason = connection.execute(select(rows.c.reason).where(rows.c.uscc == uscc)).scalar()
    return reason if reason in CAP_REASONS else None


def refused_targeted(connection: Connection, task_id: str, line: dict, year: int, at: datetime) -> dict[str, str]:
    """{uscc: reason} of the task's targeted entities the frequency cap (R12, R14) excluded at `at` for want of a
    legal basis: targeted when nothing excluded them, drawn by another task before this freeze. Not inspected."""
    tg = schema.targeted
    if connection.execute(select(tg.c.uscc).where(tg.c.task_id == task_id).limit(1)).first() is None:
        return {}  # most tasks target nobody: no population query under the year's lock for them
    rows = eligible_population(connection, task_id, line, year, at).subquery()
    return dict(connection.execute(
        select(tg.c.uscc, rows.c.reason).join(rows, rows.c.uscc == tg.c.uscc)
        .where(tg.c.task_id == task_id, tg.c.added_at <= at, rows.c.reason.in_(CAP_REASONS))).all())


def lawfully_targeted(task_id: str, at: datetime | None = None):
    """The USCCs the task targets with a legal basis (recorded by `at`): the frequency cap does not exclude them."""
    tg = schema.targeted
    query = select(tg.c.uscc).where(tg.c.task_id == task_id, tg.c.legal_basis.is_not(None))
    return query if at is None else query.where(tg.c.added_at <= at)


# --- the population ---------------------------------------------------------------------------
def selections(year: int, other_than_task: str, as_of: datetime | None = None):
    """How often each entity was selected in the plan year by tasks other than this one.

    Without `as_of`, as the draws stand now: drawn, their task not cancelled. With it, as they stood
    then: drawn by then, not superseded by then, their task not cancelled by then — what a freeze at
    `as_of` saw, whatever happened since.
    """
    pt, plans = schema.plan_tasks, schema.plans
    if as_of is None:
        counted = [d.c.state == "drawn", pt.c.cancelled_at.is_(None)]
    else:
        pub = schema.publications
        superseded_by_then = exists().where(
            pub.c.kind == "draw", pub.c.task_id == d.c.task_id,
            pub.c.step == literal("supersede-") + cast(d.c.draw_seq, String), pub.c.published_at <= as_of)
        counted = [d.c.state.in_(COUNTED), d.c.drawn_at <= as_of, ~superseded_by_then,
                   or_(pt.c.cancelled_at.is_(None), pt.c.cancelled_at > as_of)]
    return (
        select(ds.c.uscc, func.count().label("times"))
        .join(d, and_(d.c.task_id == ds.c.task_id, d.c.draw_seq == ds.c.draw_seq))
        .join(pt, pt.c.task_id == ds.c.task_id)
        .join(plans, plans.c.plan_code == pt.c.plan_code)
        .where(plans.c.year == year, ds.c.task_id != other_than_task, *counted)
        .group_by(ds.c.uscc)
        .subquery()
    )


def eligible_population(connection: Connection, task_id: str, line: dict, year: int, at: datetime) -> Select:
    """(uscc, stratum, reason) of every entity the task's filter matches at `at`; reason NULL when eligible.

    The filter: entity and item versions in force at `at`, the task line's subject types, region and
    industry prefixes and labels, each item's target labels. The exclusions, by reason: not active;
    an A-class entity another task already drew this year (R12); the year's frequency cap (R14). Neither
    of the last two excludes an entity the task targets with a legal basis recorded by `at` (R12's exception).
    """
    conditions = [in_force(e, at)]
    task_filter = line.get("filter", {})
    if task_filter.get("subject_type"):
        conditions.append(e.c.subject_type.in_(task_filter["subject_type"]))
    for column in ("region", "industry"):
        if task_filter.get(column):
            conditions.append(or_(*(e.c[column].startswith(p) for p in task_filter[column])))
    if task_filter.get("labels"):
        conditions.append(has_any_label(e.c.labels, task_filter["labels"]))
    for item in items_of(connection, line["items"], at):
        if item["target_labels"]:
            conditions.append(has_any_label(e.c.labels, split(item["target_labels"])))

    selected = selections(year, task_id, as_of=at)
    capped = ~e.c.uscc.in_(lawfully_targeted(task_id, at))
    reason = case(
        (e.c.status != "active", e.c.status),
        (and_(e.c.risk_class == "A", selected.c.times.is_not(None), capped), literal("a_class_already_drawn")),
        (and_(selected.c.times >= int(line["frequency_cap"]), capped), literal("frequency_cap")),
        else_=literal(None, String),
    ).label("reason")
    stratum = case((e.c.risk_class == "", literal("U")), else_=e.c.risk_class).label("stratum")
    return (select(e.c.uscc, stratum, reason)
            .select_from(e.outerjoin(selected, selected.c.uscc == e.c.uscc))
            .where(*conditions))


def tally(connection: Connection, task_id: str, line: dict, year: int, at: datetime) -> tuple[dict[str, int],
                                                                                            dict[str, int]]:
    """(eligible entities by stratum, excluded ones by reason) of what the filter matches at `at`, counted
    by the database in one pass."""
    candidates = eligible_population(connection, task_id, line, year, at).subquery()
    counted = connection.execute(select(candidates.c.stratum, candidates.c.reason, func.count())
                                 .group_by(candidates.c.stratum, candidates.c.reason)).all()
    strata: dict[str, int] = {}
    excluded: dict[str, int] = {}
    for stratum, reason, n in sorted(counted, key=lambda r: (r[0], r[1] or "")):
        if reason is None:
            strata[stratum] = n
        else:
            excluded[reason] = excluded.get(reason, 0) + n
    return strata, dict(sorted(excluded.items()))


def population_query(connection: Connection, draw) -> Select:
    """(uscc, stratum) of the draw's population in USCC byte order: its stored rows (a draw frozen
    before migration 0006) or the eligible entities as of its `frozen_at`."""
    population = _population(connection, draw).subquery()
    return select(population.c.uscc, population.c.stratum).order_by(byte_order(connection, population.c.uscc))


def _population(connection: Connection, draw) -> Select:
    """(uscc, stratum) of the draw's population, in no particular order."""
    if draw.population_stored:
        return select(dp.c.uscc, dp.c.stratum).where(dp.c.task_id == draw.task_id, dp.c.draw_seq == draw.draw_seq)
    line, year = task_line(connection, draw.task_id)
    rebuilt = eligible_population(connection, draw.task_id, line, year, draw.frozen_at).subquery()
    return select(rebuilt.c.uscc, rebuilt.c.stratum).where(rebuilt.c.reason.is_(None))


# --- the draw computed by PostgreSQL --------------------------------------------------------------
def in_database(connection: Connection | Engine) -> bool:
    """Whether the database hashes and ranks a population itself (PostgreSQL's sha256), so that only the
    selection leaves it; SQLite streams the population to domain.draw."""
    return connection.dialect.name == "postgresql"


def _roomy(connection: Connection, memory: str = "256MB") -> None:
    # A province's population sorted in memory, not in temporary files; for this transaction only.
    connection.execute(text(f"SET LOCAL work_mem = '{memory}'"))


def _ascii(value) -> object:
    return func.convert_to(value, literal("UTF8"))  # the protocol's ASCII text, as bytes


def population_digest(connection: Connection, draw, salt: bytes) -> str:
    """D = hex(sha256(salt || L)) of the draw's population (draw-protocol.md step 1), computed by
    PostgreSQL: L is aggregated in USCC byte order in the database and never leaves it. Its sort holds
    about 150 bytes a line: 4 million entities sort in memory within 1 GB, for the statement's seconds."""
    _roomy(connection, "1GB")
    population = _population(connection, draw).subquery()
    lines = func.string_agg(_ascii(population.c.uscc + "\t" + population.c.stratum + "\n"),
                            aggregate_order_by(literal(b"", LargeBinary), byte_order(connection, population.c.uscc)))
    digest = func.sha256(literal(salt, LargeBinary).op("||")(func.coalesce(lines, literal(b"", LargeBinary))))
    return connection.execute(select(func.encode(digest, literal("hex")))).scalar_one()


_EVERY = b"\xff" * 33  # above every 32-byte key: the whole stratum is a candidate


def select_in_database(connection: Connection, draw, seed: bytes, quotas: dict[str, int],
                       populations: dict[str, int]) -> list[tuple[str, str]]:
    """(uscc, stratum) of the q_s smallest keys sha256(seed || uscc) per stratum (steps 4-5), by USCC.

    Keys are computed and ranked by PostgreSQL. Only the candidates under a stratum's bar are ranked:
    keys are uniform, so a bar set for q_s plus eight standard deviations holds the q_s smallest keys
    all but never; a stratum that gets fewer than q_s candidates is ranked again whole, so the
    selection is exactly the protocol's whatever the bar.
    """
    bars = {s: _bar(q, populations.get(s, 0)) for s, q in quotas.items()}
    chosen = _candidates(connection, draw, seed, quotas, bars)
    found = Counter(stratum for _, stratum in chosen)
    short = {s for s, q in quotas.items() if found[s] < q and bars[s] != _EVERY}
    if short:
        bars.update({s: _EVERY for s in short})
        chosen = [r for r in chosen if r[1] not in short] + _candidates(
            connection, draw, seed, {s: quotas[s] for s in short}, bars)
    return sorted(chosen)


def _bar(quota: int, population: int) -> bytes:
    """The key prefix under which a stratum's q smallest keys lie, but for a chance below 1e-15."""
    if quota == 0:
        return b""  # no key is below the empty string
    expected = quota + 8 * math.sqrt(quota) + 32
    if expected >= population:
        return _EVERY
    return int(expected / population * 2 ** 64).to_bytes(8, "big")


def _candidates(connection: Connection, draw, seed: bytes, quotas: dict[str, int],
                bars: dict[str, bytes]) -> list[tuple[str, str]]:
    _roomy(connection)
    population = _population(connection, draw).subquery()
    key = func.sha256(literal(seed, LargeBinary).op("||")(_ascii(population.c.uscc)))
    # Per stratum constants in CASEs, not a join: the planner keeps the one scan, no sort by stratum.
    bar = case({s: literal(bars[s], LargeBinary) for s in quotas}, value=population.c.stratum,
               else_=literal(b"", LargeBinary))
    candidates = (select(population.c.uscc, population.c.stratum, key.label("key"))
                  .where(population.c.stratum.in_(list(quotas)), key < bar).subquery())
    rank = func.row_number().over(partition_by=candidates.c.stratum,
                                  order_by=(candidates.c.key, byte_order(connection, candidates.c.uscc)))
    ranked = select(candidates.c.uscc, candidates.c.stratum, rank.label("rank")).subquery()
    quota = case({s: q for s, q in quotas.items()}, value=ranked.c.stratum, else_=0)
    return [tuple(r) for r in connection.execute(
        select(ranked.c.uscc, ranked.c.stratum).where(ranked.c.rank <= quota))]


def byte_order(connection: Connection, column):
    # Byte order, as the protocol hashes and the population file lists (draw-protocol.md); PostgreSQL's
    # default collation is not, SQLite's BINARY is.
    return column.collate("C") if connection.dialect.name == "postgresql" else column


def copy_lines(connection: Connection, query: Select, separator: str, block: Callable[[bytes], None],
               lines_per_block: int = LINES_PER_BLOCK) -> int:
    """The query's two text columns as lines "a<separator>b\n", handed to `block` a block at a time; how many.

    On PostgreSQL one COPY streams them as the server sends them (no Python object per row).
    """
    sink = _Blocks(block, lines_per_block)
    if connection.dialect.name == "postgresql":
        compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            sql = cursor.mogrify(str(compiled), compiled.params).decode("utf-8")
            option = "" if separator == "\t" else f" WITH (DELIMITER '{separator}')"
            cursor.copy_expert(f"COPY ({sql}) TO STDOUT{option}", sink, size=1 << 20)
        finally:
            cursor.close()
    else:
        for first, second in connection.execute(query.execution_options(yield_per=_BATCH)):
            sink.write(f"{first}{separator}{second}\n".encode("utf-8"))
    return sink.finish()


class _Blocks:
    """COPY's output (one write per row) gathered into blocks of whole lines."""

    def __init__(self, block: Callable[[bytes], None], lines_per_block: int) -> None:
        self._block, self._size = block, lines_per_block
        self._lines: list[bytes] = []
        self.count = 0

    def write(self, data) -> None:
        self._lines.append(bytes(data))
        if len(self._lines) >= self._size:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            self.count += len(self._lines)
            self._block(b"".join(self._lines))
            self._lines = []

    def finish(self) -> int:
        self._flush()
        return self.count


def population_lines(connection: Connection, draw, block: Callable[[bytes], None],
                     lines_per_block: int = LINES_PER_BLOCK) -> int:
    """The draw's population as the digest's lines "uscc\tstratum\n", in byte order, a block at a time."""
    return copy_lines(connection, population_query(connection, draw), "\t", block, lines_per_block)


def selection(connection: Connection, task_id: str, draw_seq: int) -> list[tuple[str, str]]:
    """(uscc, stratum) of the draw's stored selection, by USCC; empty before the draw stored it."""
    return [tuple(r) for r in connection.execute(
        select(ds.c.uscc, ds.c.stratum).where(ds.c.task_id == task_id, ds.c.draw_seq == draw_seq)
        .order_by(byte_order(connection, ds.c.uscc)))]


def save_selection(connection: Connection, task_id: str, draw_seq: int, selected: list[tuple[str, str]],
                   page: Callable[[int], None], rows_per_page: int = ROWS_PER_PAGE) -> None:
    """The draw's selection, a page of rows per statement; `page(rows so far)` told after each."""
    for start in range(0, len(selected), rows_per_page):
        rows = selected[start:start + rows_per_page]
        insert_rows(connection, ds, [dict(task_id=task_id, draw_seq=draw_seq, uscc=u, stratum=s) for u, s in rows])
        page(start + len(rows))


def insert_rows(connection: Connection, table, rows: list[dict]) -> None:
    """Many rows into `table` (each dict with the same keys): on PostgreSQL one COPY, several times faster
    than a multi-row INSERT for the hundreds of thousands of rows of a province's selection."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    columns = list(rows[0])
    # Column by column, each distinct value converted once: most columns repeat one value (the task,
    # the instant, the stage) down hundreds of thousands of rows.
    cells = []
    for c in columns:
        converted: dict = {}
        cells.append([converted[v] if v in converted else converted.setdefault(v, _copy_text(v))
                      for v in (row[c] for row in rows)])
    data = "".join(["\t".join(line) + "\n" for line in zip(*cells)])
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN", io.StringIO(data))
    finally:
        cursor.close()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: instants must carry their time zone")
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def conflicts(connection: Connection, task_id: str, draw_seq: int, year: int, frequency_cap: int) -> int:
    """Selected entities another task drew after this freeze, which R12 or R14 now exclude (but for those the
    task targets with a legal basis).

    Freezes and draws of a year hold one lock, but a freeze waits for its entropy before drawing:
    two frozen tasks can both hold an A-class entity. The later draw then is superseded and a
    new freeze excludes it, so the record of every draw stays reproducible.
    """
    others = selections(year, task_id)
    return connection.execute(
        select(func.count()).select_from(ds.join(others, others.c.uscc == ds.c.uscc)).where(
            ds.c.task_id == task_id, ds.c.draw_seq == draw_seq,
            or_(ds.c.stratum == "A", others.c.times >= frequency_cap), ds.c.uscc.not_in(lawfully_targeted(task_id)))
    ).scalar()


# --- inspector pools and dispatch (sc-dispatch-v1) --------------------------------------------------
def save_pool(connection: Connection, *, task_id: str, unit: str, pool_digest: str, pool_file: bytes,
              team_size: int, load_cap: int, frozen_at: datetime) -> None:
    insert_once(connection, schema.dispatch_pools, dict(
        task_id=task_id, unit_code=unit, pool_digest=pool_digest, pool_file=pool_file.decode("ascii"),
        team_size=team_size, load_cap=load_cap, frozen_at=frozen_at,
    ), keys=("task_id", "unit_code"))


def pools(connection: Connection, task_id: str) -> list:
    p = schema.dispatch_pools
    return connection.execute(select(p).where(p.c.task_id == task_id).order_by(p.c.unit_code)).mappings().all()


def dispatched(connection: Connection, task_id: str) -> dict[str, int] | None:
    """The task's dispatched teams counted by source (draw, unstaffed); None before its dispatch."""
    t = schema.teams
    existing = connection.execute(
        select(t.c.source, func.count()).where(t.c.task_id == task_id, t.c.step == "dispatch").group_by(t.c.source)
    ).all()
    return dict(existing) if existing else None


def save_dispatch(connection: Connection, task_id: str, teams: Iterable[tuple[str, str, list[str] | None, str | None]],
                  at: datetime, workflow_id: str) -> None:
    """(uscc, unit, team or None, reason unstaffed) rows of the dispatch, as one step."""
    rows = [dict(task_id=task_id, uscc=uscc, unit_code=unit, inspectors=";".join(team or []),
                 source="draw" if team else "unstaffed", reason=reason, at=at, workflow_id=workflow_id,
                 step="dispatch")
            for uscc, unit, team, reason in teams]
    insert_rows(connection, schema.teams, rows)
