"""Independent verifier of sc-draw-v1 and sc-dispatch-v1 audit packages.

Written from shared/spec/draw-protocol.md alone and deliberately importing nothing from
domain.draw or domain.dispatch: this is the one place where the protocol is implemented twice,
so that a bug in either implementation shows up as a disagreement. It reports every check with
what the record says and what was recomputed, instead of stopping at the first difference.
"""
from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from domain.uscc import check_char, uscc_problem

DRAW_PROTOCOL = "sc-draw-v1"
DISPATCH_PROTOCOL = "sc-dispatch-v1"
SHOWN = 5  # differences listed in a detail before "and N more"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TASK_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_STRATUM = re.compile(r"[A-Z][A-Za-z0-9_-]{0,15}")
_RATIO = re.compile(r"(0)(?:\.([0-9]{1,6}))?|(1)(?:\.(0{1,6}))?")
_ENTROPY = re.compile(r"[\x20-\x7e]{0,256}")
_CODE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_ENTROPY_SOURCE = re.compile(r".+", re.DOTALL)
_USCC = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")  # GB 32100-2015 charset: no I, O, S, V, Z
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class PackageError(ValueError):
    """A package file that cannot be read at all (not a mismatch: those are failed checks)."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def __str__(self) -> str:
        return "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.checks)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _listing(items: Iterable[str], total: int) -> str:
    shown = list(items)[:SHOWN]
    more = f" and {total - len(shown)} more" if total > len(shown) else ""
    return ", ".join(shown) + more


def _check_protocol(report: VerifyReport, record: Mapping, expected: str) -> None:
    # Records verify under the version they name; this verifier knows only version 1.
    found = record.get("protocol")
    report.add("protocol", found == expected, f"{found!r}" if found == expected
               else f"record says {found!r}, this verifier checks {expected!r}")


def _differs(recorded: object, recomputed: object) -> tuple[bool, str]:
    if recorded == recomputed:
        return True, f"{recomputed} (matches)"
    return False, f"record says {recorded}, recomputed {recomputed}"


# --- population file ----------------------------------------------------------------------------
def read_population_csv(path: str | Path) -> Iterator[tuple[str, str]]:
    """The (uscc, stratum) rows of a population file with header `uscc,stratum`."""
    with open(path, encoding="utf-8", newline="") as handle:
        header = handle.readline()
        if header != "uscc,stratum\n":
            raise PackageError(f"{path}: line 1 is {header!r}, expected the header 'uscc,stratum' (UTF-8, no BOM, LF)")
        for line_number, line in enumerate(handle, start=2):
            fields = line[:-1].split(",") if line.endswith("\n") else line.split(",")
            if len(fields) != 2:
                raise PackageError(f"{path}: line {line_number} {line!r} must be 'uscc,stratum'")
            yield fields[0], fields[1]


# --- record fields ------------------------------------------------------------------------------
class _Fields:
    """The record's values, each validated; a bad or missing one is noted and reads as None."""

    def __init__(self, record: Mapping) -> None:
        self.record = record
        self.problems: list[str] = []

    def get(self, key: str, valid) -> object:
        if key not in self.record:
            self.problems.append(f"{key}: missing")
            return None
        value = self.record[key]
        problem = valid(value)
        if problem:
            self.problems.append(f"{key} {value!r}: {problem}")
            return None
        return value


def _pattern(regex: re.Pattern[str], rule: str):
    return lambda value: None if isinstance(value, str) and regex.fullmatch(value) else rule


_hex64 = _pattern(_HEX64, "must be 64 lower-case hex digits")


def _ratio_fraction(text: object) -> tuple[int, int] | None:
    """(numerator, denominator) of a ratio string, by integer arithmetic; None when malformed."""
    match = _RATIO.fullmatch(text) if isinstance(text, str) else None
    if not match:
        return None
    whole = match.group(1) or match.group(3)
    decimals = match.group(2) or match.group(4) or ""
    return int(whole + decimals), 10 ** len(decimals)


def _quota(population: int, ratio: tuple[int, int]) -> int:
    numerator, denominator = ratio
    return min(population, -(-population * numerator // denominator))


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _strata_problem(value: object) -> str | None:
    if not isinstance(value, dict):
        return "must be an object {stratum: {population, ratio, quota}}"
    for stratum, plan in value.items():
        if not _STRATUM.fullmatch(stratum):
            return f"stratum {stratum!r} is not a valid stratum name"
        if not isinstance(plan, dict) or not _is_count(plan.get("population")) or not _is_count(plan.get("quota")):
            return f"stratum {stratum!r} needs integer population and quota"
        if _ratio_fraction(plan.get("ratio")) is None:
            return f"stratum {stratum!r} ratio {plan.get('ratio')!r} is not a ratio string"
    return None


def _uscc_list_problem(value: object) -> str | None:
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        return "must be a list of USCC strings"
    return None


def _targeted_problem(value: object) -> str | None:
    if not isinstance(value, list) or not all(isinstance(t, dict) and isinstance(t.get("uscc"), str) for t in value):
        return 'must be a list of {"uscc", "reason"}'
    return None


# --- draw ---------------------------------------------------------------------------------------
@dataclass
class _Stratum:
    """The best candidates of one stratum, gathered in the single pass over the population."""

    bound: int  # candidates kept: enough for any quota the record could justify
    best: list[tuple[int, int, str]] = field(default_factory=list)  # max-heap via negated (key, uscc)

    def offer(self, key: bytes, uscc: str) -> None:
        if not self.bound:
            return
        candidate = (-int.from_bytes(key, "big"), -int.from_bytes(uscc.encode("ascii"), "big"), uscc)
        if len(self.best) < self.bound:
            heapq.heappush(self.best, candidate)
        elif candidate > self.best[0]:
            heapq.heapreplace(self.best, candidate)

    def smallest(self, count: int) -> list[str]:
        return [uscc for *_, uscc in heapq.nlargest(count, self.best)]


def verify_draw(record: dict, population_rows: Iterable[tuple[str, str]]) -> VerifyReport:
    """Recompute steps 1-6 of sc-draw-v1 and the commitment from an audit package."""
    report = VerifyReport()
    fields = _Fields(record)
    _check_protocol(report, record, DRAW_PROTOCOL)
    task_id = fields.get("task_id", _pattern(_TASK_ID, "must be 1-64 of A-Z a-z 0-9 . _ -"))
    digest = fields.get("population_digest", _hex64)
    commitment = fields.get("commitment", _hex64)
    nonce = fields.get("nonce", _hex64)
    salt = fields.get("population_salt", _hex64)
    seed = fields.get("seed", _hex64)
    selection_digest = fields.get("selection_digest", _hex64)
    entropy = fields.get("entropy", _pattern(_ENTROPY, "must be at most 256 printable ASCII characters"))
    source = fields.get("entropy_source", _pattern(_ENTROPY_SOURCE, "must be a non-empty string"))
    strata = fields.get("strata", _strata_problem) or {}
    selected = fields.get("selected", _uscc_list_problem)
    targeted = fields.get("targeted", _targeted_problem) or []
    report.add("record", not fields.problems, "; ".join(fields.problems) or "all fields well formed")

    if nonce is not None and commitment is not None:
        report.add("commitment", *_differs(commitment, _sha256(bytes.fromhex(nonce)).hex()))
    _check_entropy(report, source, entropy)
    recomputed_seed = None
    if None not in (task_id, digest, nonce, entropy):
        text = "\n".join((DRAW_PROTOCOL, task_id, digest, nonce, entropy))
        recomputed_seed = _sha256(text.encode("ascii"))
        if seed is not None:
            report.add("seed", *_differs(seed, recomputed_seed.hex()))

    population = _scan_population(report, population_rows, salt, recomputed_seed, strata,
                                  {t["uscc"] for t in targeted})
    if population is None:
        return report
    recomputed_digest, counts, kept, targeted_missing = population
    if digest is not None and recomputed_digest is not None:
        report.add("population_digest", *_differs(digest, recomputed_digest))
    _check_strata(report, strata, counts)
    chosen = None
    if recomputed_seed is None:
        report.add("selection", False, "not recomputed: the record lacks a valid task_id, digest, nonce or entropy")
    else:
        chosen = _check_selection(report, strata, counts, kept, selected)
    if chosen is not None and selection_digest is not None:
        recomputed = _sha256("".join(u + "\n" for u in chosen).encode("ascii")).hex()
        report.add("selection_digest", *_differs(selection_digest, recomputed))
    report.add("targeted", not targeted_missing,
               "every targeted entity is in the population" if not targeted_missing
               else f"not in the population: {_listing(sorted(targeted_missing), len(targeted_missing))}")
    return report


def _check_entropy(report: VerifyReport, source: object, entropy: object) -> None:
    if source is None or entropy is None:
        return
    if source == "none":
        report.add("entropy", entropy == "",
                   "no external entropy: the operator could have tried population variants" if entropy == ""
                   else f"source is 'none' but the record has entropy {entropy!r}")
    else:
        report.add("entropy", True, f"{entropy!r}: check it is the published value of {source}")


def _scan_population(report, rows, salt, seed, strata, targeted):
    """One pass: row grammar and order, digest, counts, candidate keys, targeted membership."""
    hasher = hashlib.sha256(bytes.fromhex(salt)) if salt is not None else None
    kept: dict[str, _Stratum] = {s: _Stratum(_bound(plan)) for s, plan in strata.items()}
    counts: dict[str, int] = {}
    problems: list[str] = []
    problem_count = 0
    missing = set(targeted)
    previous = ""
    try:
        for number, (uscc, stratum) in enumerate(rows, start=1):
            counts[stratum] = counts.get(stratum, 0) + 1
            if hasher is not None:
                hasher.update(f"{uscc}\t{stratum}\n".encode("utf-8"))
            problem = _row_problem(uscc, stratum, previous)
            previous = uscc
            if problem:
                problem_count += 1
                if len(problems) < SHOWN:
                    problems.append(f"row {number} ({uscc!r}, {stratum!r}): {problem}")
                continue
            missing.discard(uscc)
            if seed is not None and stratum in kept:
                kept[stratum].offer(_sha256(seed + uscc.encode("ascii")), uscc)
    except PackageError as error:
        report.add("population rows", False, str(error))
        return None
    report.add("population rows", not problem_count,
               f"{sum(counts.values())} rows, valid and in ascending byte order" if not problem_count
               else _listing(problems, problem_count) + " (row 1 is the line after the header)")
    return (hasher.hexdigest() if hasher else None), counts, kept, missing


def _bound(plan: dict) -> int:
    # The true quota is only known after the pass; if the record's population is right, this
    # is it, and if it is wrong the strata check fails anyway.
    return max(plan["quota"], _quota(plan["population"], _ratio_fraction(plan["ratio"])))


def _row_problem(uscc: str, stratum: str, previous: str) -> str | None:
    # The regex and check_char are the fast path; uscc_problem only words the failure.
    if not (_USCC.fullmatch(uscc) and check_char(uscc[:17]) == uscc[17]):
        return f"USCC {uscc_problem(uscc)}"
    if not _STRATUM.fullmatch(stratum):
        return "stratum must be an upper-case letter then up to 15 of A-Z a-z 0-9 _ -"
    if uscc <= previous:
        return f"not after the previous row {previous!r} in byte order"
    return None


def _check_strata(report: VerifyReport, strata: dict, counts: dict[str, int]) -> None:
    differences = []
    for stratum in sorted(set(strata) | set(counts)):
        found = counts.get(stratum, 0)
        if stratum not in strata:
            differences.append(f"{stratum}: {found} entities in the population but no ratio in the record")
        elif strata[stratum]["population"] != found:
            differences.append(f"{stratum}: record says population {strata[stratum]['population']}, recomputed {found}")
    report.add("strata", not differences, "; ".join(differences) or
               ", ".join(f"{s} {counts.get(s, 0)}" for s in sorted(strata)) + " (match)")
    differences = []
    for stratum, plan in sorted(strata.items()):
        recomputed = _quota(counts.get(stratum, 0), _ratio_fraction(plan["ratio"]))
        if plan["quota"] != recomputed:
            differences.append(f"{stratum}: record says quota {plan['quota']}, recomputed {recomputed} "
                               f"(population {counts.get(stratum, 0)} x ratio {plan['ratio']})")
    report.add("quotas", not differences, "; ".join(differences) or
               ", ".join(f"{s} {p['quota']}" for s, p in sorted(strata.items())) + " (match)")


def _check_selection(report, strata, counts, kept, selected) -> list[str] | None:
    chosen: list[str] = []
    for stratum in sorted(set(strata) | set(counts)):
        if stratum not in strata:
            report.add("selection", False, f"not recomputed: stratum {stratum} has no ratio in the record")
            return None
        need = _quota(counts.get(stratum, 0), _ratio_fraction(strata[stratum]["ratio"]))
        if need > kept[stratum].bound:
            report.add("selection", False, f"not recomputed: stratum {stratum} population differs from the record")
            return None
        chosen.extend(kept[stratum].smallest(need))
    chosen.sort()
    if selected is not None:
        report.add("selection", *_selection_differs(selected, chosen))
    return chosen


def _selection_differs(recorded: list[str], chosen: list[str]) -> tuple[bool, str]:
    if recorded == chosen:
        return True, f"{len(chosen)} entities (match)"
    extra = sorted(set(recorded) - set(chosen))
    missing = sorted(set(chosen) - set(recorded))
    if not extra and not missing:
        return False, "record lists the right entities but not once each in ascending order"
    parts = []
    if extra:
        parts.append(f"record selects {_listing(extra, len(extra))}, which the recomputation does not")
    if missing:
        parts.append(f"recomputation selects {_listing(missing, len(missing))}, which the record does not")
    return False, "; ".join(parts)


# --- dispatch -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolRow:
    inspector_id: str
    status: str
    cert_expiry: date
    qualifications: frozenset[str]
    recusal: frozenset[str]


def parse_pool_file(data: bytes) -> list[PoolRow]:
    """The rows of a pool file (no header), validated against the byte grammar."""
    inspectors: list[PoolRow] = []
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as error:
        raise PackageError(f"pool file is not ASCII: {error}") from None
    if text and not text.endswith("\n"):
        raise PackageError("pool file must end with a line feed")
    for number, line in enumerate(text.splitlines(), start=1):
        inspectors.append(_pool_row(number, line))
        if len(inspectors) > 1 and inspectors[-2].inspector_id >= inspectors[-1].inspector_id:
            raise PackageError(f"pool row {number}: {inspectors[-1].inspector_id!r} is not after "
                               f"{inspectors[-2].inspector_id!r} in byte order")
    return inspectors


def _pool_row(number: int, line: str) -> PoolRow:
    fields = line.split("\t")
    if len(fields) != 5:
        raise PackageError(f"pool row {number} {line!r}: needs 5 tab-separated fields")
    inspector_id, status, expiry, qualifications, recusal = fields
    tags = qualifications.split(";") if qualifications else []
    usccs = recusal.split(";") if recusal else []
    if not _CODE.fullmatch(inspector_id) or not _CODE.fullmatch(status) or not _DATE.fullmatch(expiry):
        raise PackageError(f"pool row {number} {line!r}: bad inspector_id, status or date")
    if tags != sorted(set(tags)) or not all(_CODE.fullmatch(t) for t in tags):
        raise PackageError(f"pool row {number}: qualifications {qualifications!r} must be distinct tags, sorted")
    if usccs != sorted(set(usccs)) or any(uscc_problem(u) for u in usccs):
        raise PackageError(f"pool row {number}: recusal {recusal!r} must be distinct valid USCCs, sorted")
    try:
        cert_expiry = date.fromisoformat(expiry)
    except ValueError:
        raise PackageError(f"pool row {number}: cert_expiry {expiry!r} is not a date") from None
    return PoolRow(inspector_id, status, cert_expiry, frozenset(tags), frozenset(usccs))


def recompute_dispatch(seed2: bytes, targets: Iterable[str], inspectors: list[PoolRow],
                       required: frozenset[str], team_size: int, load_cap: int,
                       as_of: date) -> tuple[list[str], dict[str, list[str]], dict[str, str]]:
    """Order, teams and unstaffed reasons, step by step as the spec words them."""
    order = sorted(set(targets), key=lambda uscc: _sha256(seed2 + uscc.encode("ascii")) + uscc.encode("ascii"))
    load = {inspector.inspector_id: 0 for inspector in inspectors}
    teams: dict[str, list[str]] = {}
    unstaffed: dict[str, str] = {}
    for uscc in order:
        ranked = []
        for inspector in inspectors:
            if (inspector.status == "active" and inspector.cert_expiry >= as_of
                    and required <= inspector.qualifications and uscc not in inspector.recusal
                    and (load_cap == 0 or load[inspector.inspector_id] < load_cap)):
                text = f"{uscc}\n{inspector.inspector_id}".encode("ascii")
                ranked.append((_sha256(seed2 + text), inspector.inspector_id))
        if len(ranked) < team_size:
            unstaffed[uscc] = f"{len(ranked)} eligible inspectors < team size {team_size}"
            continue
        teams[uscc] = [inspector_id for _, inspector_id in sorted(ranked)[:team_size]]
        for inspector_id in teams[uscc]:
            load[inspector_id] += 1
    return order, teams, unstaffed


def verify_dispatch(record: dict, pools: Mapping[str, bytes], draw_seed_hex: str,
                    required_qualifications: Iterable[str], targets: Iterable[str]) -> VerifyReport:
    """Recompute every unit's teams from its pool file, the draw's seed and the record's parameters.

    `targets` are the entities the task dispatched (the draw's selection and its targeted ones);
    later manual assignments are recorded decisions, not recomputed.
    """
    report = VerifyReport()
    _check_protocol(report, record, DISPATCH_PROTOCOL)
    problem = _hex64(draw_seed_hex)
    if problem:
        report.add("draw seed", False, f"{draw_seed_hex!r}: {problem}")
        return report
    try:
        as_of = date.fromisoformat(record["as_of"])
        units = dict(record["units"])
    except (KeyError, TypeError, ValueError) as error:
        report.add("record", False, f"needs as_of (YYYY-MM-DD) and units: {error!r}")
        return report
    seed = bytes.fromhex(draw_seed_hex)
    targets = list(targets)
    required = frozenset(required_qualifications)
    for unit, params in sorted(units.items()):
        _verify_unit(report, record, unit, params, pools.get(unit), seed, targets, required, as_of)
    return report


def _verify_unit(report, record, unit, params, pool, seed, targets, required, as_of) -> None:
    if pool is None:
        report.add(f"unit {unit}: pool", False, "no pool file for this unit in the package")
        return
    digest = hashlib.sha256(pool).hexdigest()
    report.add(f"unit {unit}: pool_digest", *_differs(params.get("pool_digest"), digest))
    try:
        inspectors = parse_pool_file(pool)
    except PackageError as error:
        report.add(f"unit {unit}: pool file", False, str(error))
        return
    team_size, load_cap = params.get("team_size"), params.get("load_cap")
    if not (_is_count(team_size) and team_size >= 2 and _is_count(load_cap)):
        report.add(f"unit {unit}: parameters", False,
                   f"team_size {team_size!r} must be >= 2 and load_cap {load_cap!r} >= 0")
        return
    text = "\n".join((DISPATCH_PROTOCOL, seed.hex(), unit, digest, str(team_size), str(load_cap)))
    _, teams, unstaffed = recompute_dispatch(_sha256(text.encode("ascii")), targets, inspectors,
                                             required, team_size, load_cap, as_of)
    recorded_teams = _unit_entries(record.get("teams", {}), unit, "inspectors")
    recorded_unstaffed = _unit_entries(record.get("unstaffed", {}), unit, "reason")
    report.add(f"unit {unit}: teams", *_mapping_differs(recorded_teams, teams))
    report.add(f"unit {unit}: unstaffed", *_mapping_differs(recorded_unstaffed, unstaffed))


def _unit_entries(by_uscc: Mapping, unit: str, key: str) -> dict:
    return {uscc: entry.get(key) for uscc, entries in by_uscc.items() for entry in entries if entry.get("unit") == unit}


def _mapping_differs(recorded: dict, recomputed: dict) -> tuple[bool, str]:
    differences = [f"{uscc}: record says {recorded.get(uscc)}, recomputed {recomputed.get(uscc)}"
                   for uscc in sorted(set(recorded) | set(recomputed)) if recorded.get(uscc) != recomputed.get(uscc)]
    if not differences:
        return True, f"{len(recomputed)} entries (match)"
    return False, _listing(differences, len(differences))
