"""Audit packages (draw-protocol.md): export a draw and its dispatch, and verify a draw.

- `export_draw`: the public record plus `population_salt`, `selected` and `targeted` (JSON), and
  the population file (`uscc,stratum`, byte order, LF). Both files hold secrets for auditors
  only (the salt, the credit-risk classes, rule R29): they are written with mode 0600.
- `verify_from_files`: the package recomputed by the independent verifier (audit.verify), which
  needs nothing but the two files.
- `verify_against_database`: the stored package verified the same way, and then what only the
  database can show: the freeze rebuilt from the directory's history as of `frozen_at`, the
  ratios against the published plan, and the announcement and freeze as published before the
  reveal.
- `export_dispatch`: the dispatch record (sc-dispatch-v1).

Populations of millions of rows are streamed: memory stays constant in the population size.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from audit.verify import SHOWN, PackageError, VerifyReport, read_population_csv, verify_draw
from db.engine import Connection, Engine
from domain import draw as draw_protocol
from store import views
from store.directory import items_of, split, task_line

DISPATCH_PROTOCOL = "sc-dispatch-v1"
POPULATION_HEADER = "uscc,stratum\n"
EXPORTABLE = ("drawn", "superseded")  # a superseded draw stays on record and can be audited
_FETCH = 20_000  # rows between two progress reports
# progress(rows so far, rows in all or None): told every _FETCH rows and at the end (runtime/progress.py)
Progress = Callable[[int, int | None], None]


# --- files ------------------------------------------------------------------------------------
class _Staged:
    """A file written beside its target (mode 0600, as mkstemp makes it) and renamed over it when complete."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.target = Path(path)
        fd, self.name = tempfile.mkstemp(dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".tmp")
        self.file = os.fdopen(fd, "wb", buffering=1 << 20)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        Path(self.name).unlink(missing_ok=True)


@contextmanager
def _staged(*paths: str | os.PathLike) -> Iterator[list[_Staged]]:
    """Files written completely or not at all; renamed in the order given once every one is written."""
    files: list[_Staged] = []
    try:
        for path in paths:
            files.append(_Staged(path))
        yield files
        for staged in files:
            staged.finish()
    except BaseException:
        for staged in files:
            staged.discard()
        raise
    for staged in files:
        os.replace(staged.name, staged.target)


def _json_bytes(value: dict) -> bytes:
    return (json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode("utf-8")


# --- the stored draw --------------------------------------------------------------------------
def _draw_row(connection: Connection, task_id: str, draw_seq: int | None):
    """The draw to audit: `draw_seq`, or the latest one in state drawn."""
    row = views.draw_row(connection, task_id, draw_seq)
    if draw_seq is None:
        if row is None:
            found = ", ".join(f"#{r.draw_seq} {r.state}" for r in views.draw_states(connection, task_id))
            raise LookupError(f"task {task_id}: no drawn draw to audit ({found or 'no draw at all'})")
        return row
    if row is None:
        raise LookupError(f"task {task_id}: no draw #{draw_seq}")
    if row["state"] not in EXPORTABLE:
        raise LookupError(f"task {task_id} draw #{draw_seq} is {row['state']}: nothing drawn yet to audit")
    return row


def audit_record(connection: Connection, row) -> dict:
    """The audit package's record of a draw: its public record plus the salt, the selection, the targeted (and
    `targeted_refused` when the freeze excluded some for want of a legal basis: verifiers ignore the key).

    The report's verification reads the same record (read/report.py).
    """
    stored = json.loads(row["record"] or "{}")
    if "public" not in stored:
        raise LookupError(f"task {row['task_id']} draw #{row['draw_seq']}: the stored record has no public record")
    selected, targeted, refused = views.draw_selection(connection, row["task_id"], row["draw_seq"])
    return {**stored["public"], "population_salt": row["population_salt"], "selected": selected, "targeted": targeted,
            **({"targeted_refused": refused} if refused else {})}


def _write_population(connection: Connection, task_id: str, draw_seq: int, handle,
                      progress: Progress | None = None, total: int | None = None) -> int:
    handle.write(POPULATION_HEADER.encode("ascii"))
    counting = _CountingWriter(handle, progress, total) if progress is not None else handle
    rows = views.copy_population(connection, task_id, draw_seq, counting)
    if progress is not None:
        progress(rows, total)
    return rows


class _CountingWriter:
    """The population file, counting the lines written through it (COPY writes in chunks)."""

    def __init__(self, handle, progress: Progress, total: int | None) -> None:
        self._handle, self._progress, self._total = handle, progress, total
        self._lines = self._told = 0

    def write(self, data) -> int:
        written = self._handle.write(data)
        self._lines += (data if isinstance(data, (bytes, bytearray)) else bytes(data)).count(b"\n")
        while self._lines - self._told >= _FETCH:  # a write can hold many rows (SQLite's batches)
            self._told += _FETCH
            self._progress(self._told, self._total)
        return written


def _counted(rows: Iterable, progress: Progress | None, total: int | None) -> Iterable:
    """`rows` passed on unchanged; `progress` told every _FETCH rows and at the end."""
    if progress is None:
        return rows

    def counting() -> Iterator:
        done = 0
        for row in rows:
            yield row
            done += 1
            if done % _FETCH == 0:
                progress(done, total)
        progress(done, total)

    return counting()


def _population_size(record: dict) -> int | None:
    """The population the record's strata add up to, when they are counts (a progress bar's total)."""
    strata = record.get("strata")
    counts = [p.get("population") for p in strata.values() if isinstance(p, dict)] if isinstance(strata, dict) else []
    if not counts or not all(type(c) is int and c >= 0 for c in counts):
        return None
    return sum(counts)


# --- export -----------------------------------------------------------------------------------
def export_draw(engine: Engine, task_id: str, draw_seq: int | None = None, *,
                record_path: str | os.PathLike, population_path: str | os.PathLike,
                progress: Progress | None = None) -> dict:
    """Write the audit package of a draw (default: the task's latest drawn one); a summary of it."""
    if Path(record_path).resolve() == Path(population_path).resolve():
        raise ValueError(f"--record and --population name the same file {record_path}")
    # The population is renamed first: a record never names a population that is not there yet.
    with views.snapshot(engine) as connection, _staged(population_path, record_path) as (population, record):
        row = _draw_row(connection, task_id, draw_seq)
        package = audit_record(connection, row)
        rows = _write_population(connection, task_id, row["draw_seq"], population.file, progress,
                                 _population_size(package))
        record.file.write(_json_bytes(package))
    return {"task_id": task_id, "draw_seq": row["draw_seq"], "state": row["state"],
            "record": str(record_path), "population": str(population_path), "rows": rows,
            "selected": len(package["selected"]), "targeted": len(package["targeted"]),
            "population_digest": package.get("population_digest")}


def export_dispatch(engine: Engine, task_id: str, record_path: str | os.PathLike) -> dict:
    """Write the dispatch record of the task's dispatched draw; the record itself is returned."""
    with views.snapshot(engine) as connection:
        row = _draw_row(connection, task_id, None)
        stored = json.loads(row["record"])
        as_of = stored.get("dispatch_as_of")
        if as_of is None:
            raise LookupError(f"task {task_id} draw #{row['draw_seq']} is not dispatched yet")
        pools, dispatched_at, rows = views.dispatch_rows(connection, task_id)
        units = {p.unit_code: {"pool_digest": p.pool_digest, "team_size": p.team_size, "load_cap": p.load_cap}
                 for p in pools}
        line, _ = task_line(connection, task_id)
        required = sorted({item["qualification"] for item in items_of(connection, line["items"], dispatched_at)}) \
            if dispatched_at is not None else []
        teams: dict[str, list] = {}
        unstaffed: dict[str, list] = {}
        manual: dict[str, list] = {}
        for r in rows:
            if r.source == "draw":
                teams.setdefault(r.uscc, []).append({"unit": r.unit_code, "inspectors": split(r.inspectors)})
            elif r.source == "unstaffed":
                unstaffed.setdefault(r.uscc, []).append({"unit": r.unit_code, "reason": r.reason})
            else:
                manual.setdefault(r.uscc, []).append({"unit": r.unit_code, "inspectors": split(r.inspectors),
                                                      "by": r.assigned_by, "reason": r.reason,
                                                      "at": r.at.isoformat()})
    record = {"protocol": DISPATCH_PROTOCOL, "task_id": task_id, "as_of": as_of, "units": units,
              "teams": teams, "unstaffed": unstaffed, "manual": manual,
              # Beyond the spec's keys (readers ignore what they do not know): what a recomputation needs.
              "draw_seq": row["draw_seq"], "seed": stored["summary"]["seed"], "required_qualifications": required}
    with _staged(record_path) as (staged,):
        staged.file.write(_json_bytes(record))
    return record


# --- verification -----------------------------------------------------------------------------
def read_record(path: str | os.PathLike) -> dict:
    """The record file as a JSON object; PackageError when it is not one."""
    try:
        with open(path, "rb") as handle:
            record = json.loads(handle.read().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise PackageError(f"{path}: not UTF-8 ({error})") from None
    except json.JSONDecodeError as error:
        raise PackageError(f"{path}: not JSON: line {error.lineno} column {error.colno}: {error.msg}") from None
    if not isinstance(record, dict):
        raise PackageError(f"{path}: a draw record is a JSON object, found {type(record).__name__}")
    return record


def verify_from_files(record_path: str | os.PathLike, population_path: str | os.PathLike,
                      task_id: str | None = None, progress: Progress | None = None) -> VerifyReport:
    """Recompute the draw from the two files of its audit package, with the independent verifier.

    Files that are not a package at all (missing, not JSON, no population header) raise
    PackageError or OSError; everything else is a check in the report. With `task_id`, the record
    must also be that task's.
    """
    record = read_record(record_path)
    with open(population_path, "rb") as handle:
        header = handle.readline()
    if header != POPULATION_HEADER.encode("ascii"):
        raise PackageError(f"{population_path}: line 1 is {header[:60]!r}, expected the header "
                           "'uscc,stratum' (UTF-8, no BOM, LF)")
    report = verify_draw(record, _counted(read_population_csv(population_path), progress, _population_size(record)))
    if task_id is not None:
        found = record.get("task_id")
        report.add("requested task", found == task_id,
                   f"{found!r}" if found == task_id else f"the record is for task {found!r}, not {task_id!r}")
    return report


def verify_against_database(engine: Engine, task_id: str, draw_seq: int | None = None,
                            progress: Progress | None = None) -> VerifyReport:
    """The stored package verified, then checked against the directory's history and the published plan.

    The freeze is rebuilt from the directory as of `frozen_at`, in USCC byte order. A population
    recomputed so (every draw since migration 0006) feeds the independent verifier straight from
    that one stream, which also counts strata and exclusions. A stored one (older draws) is merged
    with it in one pass, and the two are compared: no join for the planner to get wrong on tables
    it has no statistics for yet, constant memory either way.
    """
    with views.snapshot(engine) as connection:
        row = _draw_row(connection, task_id, draw_seq)
        record = audit_record(connection, row)
        line, year = task_line(connection, task_id)
        frozen_at, problem = _frozen_at(record)
        comparison = None
        if frozen_at is not None and _recomputable_in_database(connection, row, record):
            report = _recompute_in_database(connection, row, record, line, year, frozen_at, progress)
            _check_plan(report, line, record)
            _check_published(report, connection, row, record, frozen_at)
            return report
        if frozen_at is None:
            rows = views.draw_population(connection, task_id, row["draw_seq"])
        else:
            comparison = _FreezeComparison(views.rebuilt_freeze(connection, row["task_id"], line, year, frozen_at))
            if views.population_stored(connection, task_id, row["draw_seq"]):
                rows = comparison.merge(views.draw_population(connection, task_id, row["draw_seq"]))
            else:  # the population is the freeze rebuilt: one stream feeds both
                rows = comparison.eligible()
        report = verify_draw(record, _counted(rows, progress, _population_size(record)))
        if comparison is None:
            report.add("freeze rebuilt", False, problem)
        else:
            comparison.finish()
            comparison.add_checks(report, record, frozen_at)
        _check_plan(report, line, record)
        _check_published(report, connection, row, record, frozen_at)
    return report


def _recomputable_in_database(connection: Connection, row, record: dict) -> bool:
    """A population recomputed from the directory, on PostgreSQL, in a record whose fields parse: the database
    ranks the keys. Anything else (SQLite, a stored population, a malformed record, which the independent
    verifier words field by field) goes through audit.verify row by row."""
    if not views.recomputes_in_database(connection) or views.population_stored(connection, row["task_id"],
                                                                                row["draw_seq"]):
        return False
    try:
        _recorded_inputs(record)
    except (draw_protocol.DrawError, KeyError, TypeError, ValueError, AttributeError):
        return False
    return True


def _recorded_inputs(record: dict) -> tuple[bytes, bytes, bytes, dict[str, str]]:
    """(salt, nonce, seed recomputed from the record, ratios) of a record, each validated (DrawError if not)."""
    nonce = bytes.fromhex(record["nonce"])
    seed = draw_protocol.draw_seed(record["task_id"], record["population_digest"], nonce, record["entropy"])
    ratios = {s: plan["ratio"] for s, plan in record["strata"].items()}
    draw_protocol.plan_strata({s: plan["population"] for s, plan in record["strata"].items()}, ratios)
    if not all(isinstance(u, str) for u in record["selected"]) or not all(
            isinstance(t["uscc"], str) for t in record["targeted"]):
        raise draw_protocol.DrawError("selected and targeted must list USCCs")
    if not all(type(plan["quota"]) is int for plan in record["strata"].values()):
        raise draw_protocol.DrawError("every stratum needs an integer quota")
    for key in ("commitment", "seed", "selection_digest", "population_salt"):
        draw_protocol.validate_digest(record[key], key)
    return bytes.fromhex(record["population_salt"]), nonce, seed, ratios


def _recompute_in_database(connection: Connection, row, record: dict, line: dict, year: int, frozen_at: datetime,
                           progress: Progress | None) -> VerifyReport:
    """sc-draw-v1 steps 1-6 and the commitment recomputed from the directory as of `frozen_at`.

    The population streams once, in byte order, through domain.draw's digest (its lines checked for
    shape and order, its strata counted); the exclusions are counted and the keys ranked by the
    database (store.draws.select_in_database), so only the selection comes back. Nothing is taken
    from the stored draw but its record: every value there is compared with its recomputation.
    """
    salt, nonce, seed, ratios = _recorded_inputs(record)
    report = VerifyReport()
    report.add("protocol", record.get("protocol") == draw_protocol.PROTOCOL,
               f"{record.get('protocol')!r}" + ("" if record.get("protocol") == draw_protocol.PROTOCOL
                                               else f", this verifier checks {draw_protocol.PROTOCOL!r}"))
    report.add("commitment", *_matches(record["commitment"], draw_protocol.commitment(nonce)))
    source, entropy = record.get("entropy_source"), record["entropy"]
    if source == draw_protocol.NO_ENTROPY:
        report.add("entropy", entropy == "", "no external entropy: the operator could have tried population variants"
                   if entropy == "" else f"source is 'none' but the record has entropy {entropy!r}")
    else:
        report.add("entropy", True, f"{entropy!r}: check it is the published value of {source}")
    report.add("seed", *_matches(record["seed"], seed.hex()))

    digest = draw_protocol.PopulationDigest(salt)
    total = _population_size(record)
    missing = {t["uscc"] for t in record["targeted"]}

    done = 0

    def block(lines: bytes) -> None:
        nonlocal done
        digest.add_lines(lines)
        missing.difference_update([u for u in missing if f"{u}\t".encode("ascii") in lines])
        done += lines.count(b"\n")
        if progress is not None:
            progress(done, total)

    try:
        rows = views.population_blocks(connection, row["task_id"], row["draw_seq"], block, _FETCH)
    except draw_protocol.DrawError as error:
        report.add("population rows", False, str(error))
        report.add("freeze rebuilt", False, f"the directory as of {frozen_at.isoformat()}: {error}")
        return report
    if progress is not None:
        progress(rows, total)
    counts = digest.counts
    report.add("population rows", True, f"{rows} rows, valid and in ascending byte order")
    report.add("population_digest", *_matches(record["population_digest"], digest.hexdigest()))
    recorded = {s: plan["population"] for s, plan in record["strata"].items() if plan["population"]}
    report.add("strata", recorded == counts, _compare_counts(recorded, counts, "population"))
    try:
        strata = draw_protocol.plan_strata(counts, ratios)
    except draw_protocol.DrawError as error:
        report.add("quotas", False, str(error))
        return report
    quotas = {s: p.quota for s, p in strata.items()}
    report.add("quotas", all(record["strata"][s]["quota"] == q for s, q in quotas.items()),
               ", ".join(f"{s} {record['strata'][s]['quota']}"
                         + (" (match)" if record["strata"][s]["quota"] == q else f" (recomputed {q})")
                         for s, q in sorted(quotas.items())))
    chosen = [u for u, _ in views.recomputed_selection(connection, row["task_id"], row["draw_seq"], seed, quotas,
                                                       counts)]
    extra, lacking = sorted(set(record["selected"]) - set(chosen)), sorted(set(chosen) - set(record["selected"]))
    report.add("selection", record["selected"] == chosen,
               f"{len(chosen)} entities, the smallest keys of each stratum (match)" if record["selected"] == chosen
               else f"recorded but not recomputed: {', '.join(extra[:SHOWN]) or 'none'}; recomputed but not "
                    f"recorded: {', '.join(lacking[:SHOWN]) or 'none'}" + ("" if extra or lacking else "; out of order"))
    report.add("selection_digest", *_matches(record["selection_digest"], draw_protocol.selection_digest(chosen)))
    report.add("targeted", not missing, "every targeted entity is in the population" if not missing
               else f"not in the population: {', '.join(sorted(missing)[:SHOWN])}")
    # Counted again by the database, apart from the stream: the freeze's own way of counting.
    tallied, exclusions = views.freeze_tally(connection, row["task_id"], line, year, frozen_at)
    when = frozen_at.isoformat()
    report.add("freeze rebuilt", tallied == counts,
               f"{rows} eligible entities in the directory as of {when}: the population, recomputed "
               "(population_digest checks it)" if tallied == counts else
               f"the directory as of {when} counts {_compare_counts(counts, tallied, 'population')}")
    report.add("freeze strata", recorded == tallied, _compare_counts(recorded, tallied, "population"))
    report.add("freeze exclusions", (record.get("exclusions") or {}) == exclusions,
               _compare_counts(record.get("exclusions") or {}, exclusions, "excluded"))
    return report


def _matches(recorded: object, recomputed: object) -> tuple[bool, str]:
    if recorded == recomputed:
        return True, f"{recomputed} (matches)"
    return False, f"record says {recorded}, recomputed {recomputed}"


def report_json(report: VerifyReport, **context) -> dict:
    return {**context, "ok": report.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks]}


def _frozen_at(record: dict) -> tuple[datetime | None, str]:
    try:
        frozen_at = datetime.fromisoformat(record["frozen_at"])
    except (KeyError, TypeError, ValueError):
        return None, f"not rebuilt: the record's frozen_at {record.get('frozen_at')!r} is not an instant"
    if frozen_at.tzinfo is None:
        return None, f"not rebuilt: the record's frozen_at {record['frozen_at']!r} has no time zone"
    return frozen_at, ""


# --- the freeze, rebuilt from the directory's history (store.views.rebuilt_freeze) --------------
class _Differences:
    """How many rows differ one way, and the first few."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.count = 0
        self.examples: list[str] = []

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < SHOWN:
            self.examples.append(example)

    def __str__(self) -> str:
        more = f" and {self.count - len(self.examples)} more" if self.count > len(self.examples) else ""
        return f"{self.count} {self.label}: {', '.join(self.examples)}{more}"


class _FreezeComparison:
    """The rebuilt freeze (uscc, stratum, reason) merged with the stored population (uscc, stratum).

    Both streams come in ascending USCC byte order; Python compares ASCII strings in byte order.
    """

    def __init__(self, rebuilt) -> None:
        self._rebuilt = iter(rebuilt)
        self.strata: dict[str, int] = {}
        self.exclusions: dict[str, int] = {}
        self.missing = _Differences("eligible then but not in the stored population")
        self.extra = _Differences("in the stored population but not eligible then")
        self.moved = _Differences("in another stratum then")
        self.recomputed = False
        self._merged = None

    def _next(self):
        for uscc, stratum, reason in self._rebuilt:
            if reason is None:
                self.strata[stratum] = self.strata.get(stratum, 0) + 1
            else:
                self.exclusions[reason] = self.exclusions.get(reason, 0) + 1
            return uscc, stratum, reason
        return None

    def eligible(self) -> Iterator[tuple[str, str]]:
        """The rebuilt freeze's eligible rows: the population itself, when it is recomputed rather than stored."""
        self.recomputed = True
        self._merged = self._eligible()
        return self._merged

    def _eligible(self) -> Iterator[tuple[str, str]]:
        while (rebuilt := self._next()) is not None:
            if rebuilt[2] is None:
                yield rebuilt[0], rebuilt[1]

    def merge(self, stored) -> Iterator[tuple[str, str]]:
        """The stored rows, passed on unchanged, compared with the rebuilt ones on the way."""
        self._merged = self._merge(stored)
        return self._merged

    def _merge(self, stored) -> Iterator[tuple[str, str]]:
        rebuilt = self._next()
        for uscc, stratum in stored:
            while rebuilt is not None and rebuilt[0] < uscc:
                if rebuilt[2] is None:
                    self.missing.add(f"{rebuilt[0]} ({rebuilt[1]})")
                rebuilt = self._next()
            if rebuilt is not None and rebuilt[0] == uscc:
                if rebuilt[2] is not None:
                    self.extra.add(f"{uscc} (excluded as {rebuilt[2]})")
                elif rebuilt[1] != stratum:
                    self.moved.add(f"{uscc} (directory {rebuilt[1]}, stored {stratum})")
                rebuilt = self._next()
            else:
                self.extra.add(f"{uscc} (not matched by the filter then)")
            yield uscc, stratum
        while rebuilt is not None:
            if rebuilt[2] is None:
                self.missing.add(f"{rebuilt[0]} ({rebuilt[1]})")
            rebuilt = self._next()

    def finish(self) -> None:
        for _ in self._merged or ():  # whatever the verifier did not read
            pass

    def add_checks(self, report: VerifyReport, record: dict, frozen_at: datetime) -> None:
        when = frozen_at.isoformat()
        differences = [str(d) for d in (self.missing, self.extra, self.moved) if d.count]
        if differences:
            report.add("freeze rebuilt", False, f"the directory as of {when} differs: " + "; ".join(differences))
        elif self.recomputed:
            report.add("freeze rebuilt", True, f"{sum(self.strata.values())} eligible entities in the directory as of "
                                               f"{when}: the population, recomputed (population_digest checks it)")
        else:
            report.add("freeze rebuilt", True, f"{sum(self.strata.values())} eligible entities in the directory as of "
                                               f"{when}: the same USCCs and strata as the stored population")
        strata = record.get("strata") if isinstance(record.get("strata"), dict) else {}
        recorded = {s: p.get("population") for s, p in strata.items() if isinstance(p, dict) and p.get("population")}
        report.add("freeze strata", recorded == self.strata, _compare_counts(recorded, self.strata, "population"))
        exclusions = record.get("exclusions") or {}
        report.add("freeze exclusions", exclusions == self.exclusions,
                   _compare_counts(exclusions, self.exclusions, "excluded"))


def _compare_counts(recorded: dict, rebuilt: dict, what: str) -> str:
    if recorded == rebuilt:
        return (", ".join(f"{k} {v}" for k, v in sorted(rebuilt.items())) or "none") + " (match)"
    return "; ".join(f"{k}: record says {what} {recorded.get(k, 0)}, rebuilt {rebuilt.get(k, 0)}"
                     for k in sorted(set(recorded) | set(rebuilt)) if recorded.get(k, 0) != rebuilt.get(k, 0))


# --- the published plan and register ------------------------------------------------------------
def _check_plan(report: VerifyReport, line: dict, record: dict) -> None:
    planned = line.get("ratios", {})
    strata = record.get("strata") if isinstance(record.get("strata"), dict) else {}
    differences = []
    for stratum, plan in sorted(strata.items()):
        ratio = plan.get("ratio") if isinstance(plan, dict) else None
        if stratum not in planned:
            differences.append(f"{stratum}: record says {ratio}, the plan has no ratio")
        elif planned[stratum] != ratio:
            differences.append(f"{stratum}: record says {ratio}, the plan says {planned[stratum]}")
    report.add("plan ratios", not differences, "; ".join(differences) or
               ", ".join(f"{s} {p['ratio']}" for s, p in sorted(strata.items())) + " (match the published plan)")
    differences = [f"{key}: record says {record.get(key)!r}, the plan says {line.get(key)!r}"
                   for key in ("task_code", "entropy_source") if record.get(key) != line.get(key)]
    report.add("plan task", not differences, "; ".join(differences) or "task_code and entropy_source match the plan")


def _instant(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def _check_published(report, connection, row, record, frozen_at) -> None:
    """The commitment was announced, and the digest published, before the reveal: what stops steering."""
    task_id, seq = row["task_id"], row["draw_seq"]
    announced = views.first_publication(connection, task_id, f"announce-{seq}")
    if announced is None:
        report.add("announced", False, f"no announcement of draw #{seq} in the register")
    else:
        payload = json.loads(announced.payload)
        differences = [f"{key}: record says {record.get(key)!r}, announced {payload.get(key)!r}"
                       for key in ("commitment", "entropy_source") if payload.get(key) != record.get(key)]
        if frozen_at is not None and announced.published_at > frozen_at:
            differences.append(f"announced at {announced.published_at.isoformat()}, after the freeze")
        report.add("announced", not differences, "; ".join(differences) or
                   f"commitment and entropy source published at {announced.published_at.isoformat()}, before the freeze")
    frozen = views.first_publication(connection, task_id, f"freeze-{seq}")
    if frozen is None:
        report.add("freeze published", False, f"no freeze of draw #{seq} in the register")
        return
    payload = json.loads(frozen.payload)
    population = sum(p.get("population", 0) for p in record.get("strata", {}).values() if isinstance(p, dict))
    differences = []
    if payload.get("population_digest") != record.get("population_digest"):
        differences.append(f"population_digest: record says {record.get('population_digest')}, "
                           f"published {payload.get('population_digest')}")
    if payload.get("population") != population:
        differences.append(f"population: record's strata sum to {population}, published {payload.get('population')}")
    if _instant(payload.get("frozen_at")) != _instant(record.get("frozen_at")):
        differences.append(f"frozen_at: record says {record.get('frozen_at')}, published {payload.get('frozen_at')}")
    if payload.get("exclusions") != record.get("exclusions"):
        differences.append(f"exclusions: record says {record.get('exclusions')}, published {payload.get('exclusions')}")
    drawn_at = row["drawn_at"]
    if drawn_at is not None and frozen.published_at > drawn_at:
        differences.append(f"published at {frozen.published_at.isoformat()}, after the draw")
    report.add("freeze published", not differences, "; ".join(differences) or
               f"frozen_at, digest, population and exclusions as published at {frozen.published_at.isoformat()}")


__all__ = ["export_draw", "export_dispatch", "verify_from_files", "verify_against_database", "read_record",
           "report_json", "PackageError", "VerifyReport"]
