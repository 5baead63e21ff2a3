"""The verifiable target draw, sc-draw-v1 (shared/spec/draw-protocol.md).

Pure: no I/O, no database, no clock. Every function is a fixed function of its arguments, so a
draw can be replayed by anyone holding the same inputs. Populations are streamed: the digest and
the selection keep memory proportional to the strata and the selection, never to the population.
"""
from __future__ import annotations

import hashlib
import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from domain.uscc import ALPHABET, check_char

PROTOCOL = "sc-draw-v1"

_RATIO = re.compile(r"0(\.[0-9]{1,6})?|1(\.0{1,6})?")
_TASK_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_STRATUM = re.compile(r"[A-Z][A-Za-z0-9_-]{0,15}")
_ENTROPY = re.compile(r"[\x20-\x7e]{0,256}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_USCC_LENGTH = 18
_USCC_SHAPE = re.compile(f"[{re.escape(ALPHABET)}]{{{_USCC_LENGTH}}}")
# Population lines as the digest hashes them: USCC, tab, stratum, line feed.
_LINES = re.compile(f"(?:[{re.escape(ALPHABET)}]{{{_USCC_LENGTH}}}\t[A-Z][A-Za-z0-9_-]{{0,15}}\n)*".encode("ascii"))
_SECRET_BYTES = 32  # nonce and seed lengths fixed by the protocol


class DrawError(ValueError):
    """An input outside the sc-draw-v1 grammar, or inputs that contradict each other."""


def parse_ratio(text: str) -> Fraction:
    """The exact value of a ratio string: floats would turn "0.07" of 100 into 8."""
    if not isinstance(text, str) or not _RATIO.fullmatch(text):
        raise DrawError(f"ratio {text!r}: must be a string like \"0.05\" (0 to 1, at most 6 decimals)")
    return Fraction(text)


def validate_task_id(s: str) -> str:
    return _match(_TASK_ID, s, "task_id", "must be 1-64 of A-Z a-z 0-9 . _ -")


def validate_stratum(s: str) -> str:
    return _match(_STRATUM, s, "stratum", "must be an upper-case letter then up to 15 of A-Z a-z 0-9 _ -")


def validate_entropy(s: str) -> str:
    return _match(_ENTROPY, s, "entropy", "must be at most 256 printable ASCII characters, no line feed")


def _match(pattern: re.Pattern[str], value: object, what: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DrawError(f"{what} {value!r}: {rule}")
    return value


def validate_digest(value: object, what: str) -> str:
    return _match(_HEX64, value, what, "must be 64 lower-case hex digits")


def _validate_secret(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != _SECRET_BYTES:
        raise DrawError(f"{what} must be {_SECRET_BYTES} bytes, got {value!r}")
    return value


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DrawError(f"{what} {value!r}: must be a non-negative integer")
    return value


def _validate_uscc(uscc: object) -> str:
    # The regex rejects wrong types, lengths and characters cheaply before the check digit.
    if not isinstance(uscc, str) or not _USCC_SHAPE.fullmatch(uscc):
        raise DrawError(f"USCC {uscc!r}: must be {_USCC_LENGTH} characters of {ALPHABET}")
    expected = check_char(uscc[:17])
    if uscc[17] != expected:
        raise DrawError(f"USCC {uscc!r}: check digit is {uscc[17]!r}, expected {expected!r}")
    return uscc


# --- quotas -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StratumPlan:
    population: int
    ratio: str
    quota: int


def quota(population: int, ratio: Fraction) -> int:
    """q = min(N, ceil(N × r)), exact."""
    _count(population, "population")
    if not isinstance(ratio, (Fraction, int)) or isinstance(ratio, bool) or not 0 <= ratio <= 1:
        raise DrawError(f"ratio {ratio!r}: must be an exact Fraction between 0 and 1")
    return min(population, math.ceil(population * Fraction(ratio)))


def plan_strata(counts: Mapping[str, int], ratios: Mapping[str, str]) -> dict[str, StratumPlan]:
    """Population, ratio and quota of every stratum in `counts`.

    A stratum with entities and no ratio is an error (the plan forgot it). A stratum counted as 0
    is kept when it has a ratio, so the record shows the planned ratio drew nobody; without a ratio
    it is left out. Ratios of strata absent from `counts` are validated but not listed: the record
    describes the frozen population, the plan is published on its own.
    """
    parsed = {validate_stratum(s): parse_ratio(text) for s, text in ratios.items()}
    plans: dict[str, StratumPlan] = {}
    for stratum, population in sorted(counts.items()):
        validate_stratum(stratum)
        _count(population, f"population of stratum {stratum!r}")
        if stratum not in parsed:
            if population:
                raise DrawError(f"stratum {stratum!r} has {population} entities but no ratio in the plan")
            continue
        plans[stratum] = StratumPlan(population, ratios[stratum], quota(population, parsed[stratum]))
    return plans


def checked_strata(counts: Mapping[str, int]) -> dict[str, int]:
    """Entities per stratum, each stratum name checked against the grammar (as counted by a database)."""
    return {validate_stratum(s): _count(n, f"population of stratum {s!r}") for s, n in counts.items()}


# --- population digest --------------------------------------------------------------------------
class PopulationDigest:
    """D = hex(sha256(salt || L)), fed one row at a time in ascending USCC byte order.

    Order is enforced, not assumed: a population read with a locale collation (PostgreSQL's
    default) would hash differently from the auditor's copy, so it is refused at the first row out
    of place. Also counts the rows per stratum, which the freeze publishes.
    """

    def __init__(self, salt: bytes) -> None:
        self._hash = hashlib.sha256(_validate_secret(salt, "population salt"))
        self._last = ""
        self._counts: dict[str, int] = {}

    def add(self, uscc: str, stratum: str) -> None:
        _validate_uscc(uscc)
        # Python compares str by code point, which for ASCII is byte order.
        if uscc <= self._last:
            relation = "repeats" if uscc == self._last else "comes before"
            raise DrawError(f"population not in ascending USCC byte order: {uscc} {relation} {self._last}")
        counts = self._counts
        if stratum not in counts:
            validate_stratum(stratum)
            counts[stratum] = 0
        counts[stratum] += 1
        self._last = uscc
        self._hash.update(f"{uscc}\t{stratum}\n".encode("ascii"))

    def add_lines(self, block: bytes) -> None:
        """Rows as the digest's own lines, "uscc\tstratum\n" each (a PostgreSQL COPY's text format), in order.

        The block is hashed as it stands; its shape, order and strata are checked on the whole block
        at C speed. A USCC's check digit is not recomputed here: the directory import refuses a USCC
        whose check digit is wrong, and every auditor's verifier checks it again.
        """
        if not block:
            return
        if not _LINES.fullmatch(block):
            bad = next(line for line in block.split(b"\n")[:-1] if not _LINES.fullmatch(line + b"\n"))
            raise DrawError(f"population line {bad[:60]!r}: expected an 18-character USCC, a tab and a stratum")
        lines = block.split(b"\n")
        lines.pop()
        usccs = [line[:_USCC_LENGTH] for line in lines]
        if usccs[0].decode("ascii") <= self._last or not all(map(bytes.__lt__, usccs, usccs[1:])):
            before, after = next((a, b) for a, b in zip([self._last.encode("ascii"), *usccs], usccs) if b <= a)
            relation = "repeats" if before == after else "comes before"
            raise DrawError(f"population not in ascending USCC byte order: {after.decode()} {relation} {before.decode()}")
        for stratum, n in Counter(line[_USCC_LENGTH + 1:] for line in lines).items():
            key = stratum.decode("ascii")
            self._counts[key] = self._counts.get(key, 0) + n
        self._last = usccs[-1].decode("ascii")
        self._hash.update(block)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


# --- commitment, seed, keys ---------------------------------------------------------------------
def commitment(nonce: bytes) -> str:
    return hashlib.sha256(_validate_secret(nonce, "nonce")).hexdigest()


def draw_seed(task_id: str, population_digest: str, nonce: bytes, entropy: str) -> bytes:
    text = "\n".join((
        PROTOCOL,
        validate_task_id(task_id),
        validate_digest(population_digest, "population_digest"),
        _validate_secret(nonce, "nonce").hex(),
        validate_entropy(entropy),
    ))
    return hashlib.sha256(text.encode("ascii")).digest()


def draw_key(seed: bytes, uscc: str) -> bytes:
    return hashlib.sha256(_validate_secret(seed, "seed") + uscc.encode("ascii")).digest()


# --- selection ----------------------------------------------------------------------------------
_KEY_LENGTH = 32
_INVERTED = bytes(255 - b for b in range(256))  # bytes.translate table: reverses the order of equal-length bytes
_ANY = b"\xff" * (_KEY_LENGTH + _USCC_LENGTH + 1)  # above every candidate: a stratum still filling takes each row


def select(seed: bytes, population: Iterable[tuple[str, str]], quotas: Mapping[str, int]) -> list[str]:
    """The q_s entities with the smallest keys in each stratum, all strata merged and sorted."""
    selection = Selection(seed, quotas)
    selection.add((uscc.encode("ascii"), stratum.encode("ascii")) for uscc, stratum in population)
    return [uscc for uscc, _ in selection.selected()]


class Selection:
    """select()'s one pass, fed as the population streams by: rows, or blocks of population lines.

    A candidate is key(e) || uscc as bytes (fixed width, so byte order is key order, ties to the
    smaller USCC). Per stratum a bounded heap of its best q_s candidates, each stored inverted
    (bytes.translate) so that heapq's min-heap keeps the worst at the root, and that worst one as
    the stratum's bar: most rows cost one hash and one bytes comparison against it, no Python
    object beyond the digest.
    """

    def __init__(self, seed: bytes, quotas: Mapping[str, int]) -> None:
        self._prefix = hashlib.sha256(_validate_secret(seed, "seed"))
        # Per stratum (as bytes): heap of inverted candidates, quota; and the bar a candidate must be under.
        self._slots = {validate_stratum(s).encode("ascii"): ([], _count(q, f"quota of stratum {s!r}"))
                       for s, q in quotas.items()}
        self._bars = {s: _ANY if size else b"" for s, (_, size) in self._slots.items()}

    def add(self, rows: Iterable[tuple[bytes, bytes]]) -> None:
        """(uscc, stratum) rows, both ASCII bytes."""
        copy, bars = self._prefix.copy, self._bars
        for raw, stratum in rows:
            hasher = copy()
            hasher.update(raw)
            candidate = hasher.digest() + raw
            try:
                if candidate >= bars[stratum]:
                    continue
            except KeyError:
                raise DrawError(f"entity {raw.decode(errors='replace')!r} is in stratum "
                                f"{stratum.decode(errors='replace')!r}, which has no quota") from None
            self._keep(candidate, stratum)

    def _keep(self, candidate: bytes, stratum: bytes) -> None:
        if len(candidate) != _KEY_LENGTH + _USCC_LENGTH:  # the candidate encoding needs a fixed width
            raise DrawError(f"USCC {candidate[_KEY_LENGTH:].decode(errors='replace')!r}: "
                            f"must be {_USCC_LENGTH} characters")
        heap, size = self._slots[stratum]
        if len(heap) < size:
            heapq.heappush(heap, candidate.translate(_INVERTED))
            if len(heap) < size:
                return
        else:
            heapq.heapreplace(heap, candidate.translate(_INVERTED))
        self._bars[stratum] = heap[0].translate(_INVERTED)

    def add_lines(self, block: bytes) -> None:
        """Population lines, "uscc\tstratum\n" each, as PopulationDigest.add_lines takes them."""
        lines = block.split(b"\n")
        lines.pop()
        self.add((line[:_USCC_LENGTH], line[_USCC_LENGTH + 1:]) for line in lines)

    def selected(self) -> list[tuple[str, str]]:
        """(uscc, stratum) of the selection, by USCC."""
        selected: list[tuple[str, str]] = []
        for stratum, (heap, size) in self._slots.items():
            name = stratum.decode("ascii")
            if len(heap) < size:  # a stratum takes every row until its heap is full
                raise DrawError(f"stratum {name!r}: quota {size} exceeds its population {len(heap)}")
            selected.extend((c[_KEY_LENGTH:].translate(_INVERTED).decode("ascii"), name) for c in heap)
        selected.sort()
        for before, after in zip(selected, selected[1:]):
            if before[0] == after[0]:
                raise DrawError(f"entity {before[0]} appears twice in the population")
        return selected


def selection_digest(selected_sorted: Iterable[str]) -> str:
    """S = hex(sha256(selected USCCs, each + "\\n", ascending))."""
    hasher = hashlib.sha256()
    last = ""
    for uscc in selected_sorted:
        if uscc <= last:
            raise DrawError(f"selection not strictly ascending: {uscc} after {last}")
        hasher.update(f"{uscc}\n".encode("ascii"))
        last = uscc
    return hasher.hexdigest()


# --- the entropy value entered for a task ---------------------------------------------------------
NO_ENTROPY = "none"  # the entropy source of a task that waits for no public value
_ENTROPY_CAP = 256  # characters, the grammar's own


def check_entropy_value(entropy_source: str, value: object) -> str:
    """The entropy value entered (`draw entropy`) for a task that announced `entropy_source`.

    A source other than "none" is a public value that did not exist at the announcement: an empty
    value would draw as if there were none, so it is refused, and so is one with a space at either
    end, since a verifier types the published value and would get another seed. A task announced
    with "none" takes no value. Called by the door and by the workflow's validator alike."""
    if not isinstance(value, str):
        raise DrawError(f"entropy must be text, not {type(value).__name__}")
    if len(value) > _ENTROPY_CAP:
        raise DrawError(f"entropy is {len(value)} characters; the cap is {_ENTROPY_CAP}")
    if entropy_source == NO_ENTROPY:
        if value:
            raise DrawError(f'entropy {value!r}: the task announced no entropy source ("{NO_ENTROPY}"), '
                            "so it takes no value")
        return value
    validate_entropy(value)
    if not value.strip():
        raise DrawError(f"entropy {value!r}: empty; the task announced the entropy source {entropy_source!r}, "
                        "enter its published value")
    if value != value.strip():
        raise DrawError(f"entropy {value!r}: starts or ends with a space; enter the published value exactly, "
                        "as a verifier will type it")
    return value


# --- the public record ----------------------------------------------------------------------------
def public_record(*, task_id: str, task_code: str, draw_seq: int, reason: str | None, approver: str | None,
                  freeze: Mapping, strata: Mapping[str, StratumPlan], commitment: str, entropy_source: str,
                  entropy: str, nonce: str, seed: str, selection_digest: str) -> dict:
    """The sc-draw-v1 record published at the reveal: everything the public needs to recompute the seed.

    `freeze` is the freeze as stored (`frozen_at` as text, `population_digest`, `exclusions`); a redraw
    names the draw it supersedes.
    """
    return {
        "protocol": PROTOCOL, "task_id": task_id, "task_code": task_code,
        "draw_seq": draw_seq, "supersedes": draw_seq - 1 if draw_seq > 1 else None,
        "reason": reason, "approver": approver, "frozen_at": freeze["frozen_at"],
        "population_digest": freeze["population_digest"],
        "strata": {s: {"population": p.population, "ratio": p.ratio, "quota": p.quota} for s, p in strata.items()},
        "exclusions": freeze["exclusions"], "commitment": commitment,
        "entropy_source": entropy_source, "entropy": entropy, "nonce": nonce,
        "seed": seed, "selection_digest": selection_digest,
    }
