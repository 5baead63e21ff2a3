"""Benchmark of the verifiable draw, the dispatch and the independent verifier, in memory.

    .venv/bin/python bench/draw.py [--rows 1000000] [--inspectors 200] [--load-cap 0]

A synthetic population of --rows entities (valid USCCs, strata A-D and U, sorted in byte order)
is built in memory (not timed). Timed phases:
- floor: the protocol's minimum work in plain hashlib: per row, the population-digest update of
  `uscc\\tstratum\\n` and one sha256(seed || uscc) key — no validation, no selection;
- draw: domain.draw as the freeze and the draw run it: PopulationDigest (each row validated, order
  enforced), plan_strata, draw_seed, select;
- dispatch: domain.dispatch of the selection over a pool of --inspectors inspectors (team of 2);
- verify: audit.verify.verify_draw of the audit package (digest, keys, selection recomputed).
The draw's selection is checked against the verifier's, and the verification must pass. Phases are
timed in process CPU time (single-threaded; robust to a shared machine), wall_s is their wall-clock
sum. The last line of the output is one line of key=value figures (ratio_vs_floor = draw time /
floor time).
"""
from __future__ import annotations

import argparse
import hashlib
import random
import resource
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from audit.verify import verify_draw  # noqa: E402
from domain import dispatch as dispatch_protocol  # noqa: E402
from domain import draw as draw_protocol  # noqa: E402
from domain.uscc import make_uscc  # noqa: E402

RATIOS = {"A": "0.03", "B": "0.05", "C": "0.10", "D": "0.20", "U": "0.05"}  # the demo plan's
STRATA = ("A", "B", "B", "B", "C", "C", "D", "U")
REGIONS = ("360202", "360203", "360222", "360281", "360102", "360103", "360111", "360121")
TASK_ID = "BENCH-2025-0001"
ENTROPY = "3D-2025091 538"
AS_OF = date(2025, 4, 1)


def population(rows: int) -> list[tuple[str, str]]:
    rng = random.Random(7233)
    entities = [(make_uscc(f"92{REGIONS[i % len(REGIONS)]}{i:09d}"), STRATA[rng.randrange(len(STRATA))])
                for i in range(rows)]
    entities.sort()  # str order of ASCII is byte order
    return entities


def pool(size: int, rng: random.Random, selected: list[str]) -> list[dispatch_protocol.PoolInspector]:
    inspectors = []
    for n in range(size):
        qualifications = ["registration"] + (["food"] if n % 3 == 0 else [])
        recusal = sorted(set(rng.sample(selected, 3))) if selected and n % 10 == 0 else []
        inspectors.append(dispatch_protocol.PoolInspector(
            inspector_id=f"I{n:04d}", status="inactive" if n % 25 == 0 else "active",
            cert_expiry=date(2025, 1, 31) if n % 40 == 1 else date(2027, 12, 31),
            qualifications=tuple(qualifications), recusal=tuple(recusal)))
    return inspectors


WALL: dict[str, float] = {}


def timed(function, *args):
    """The result and the process CPU time it took: the machine may be shared, and every phase is
    single-threaded, so CPU time is the figure that does not move with the neighbours' load."""
    start, wall = time.process_time(), time.perf_counter()
    result = function(*args)
    WALL[function.__name__] = time.perf_counter() - wall
    return result, time.process_time() - start


def floor(rows, salt: bytes, seed: bytes) -> str:
    digest = hashlib.sha256(salt)
    sha256 = hashlib.sha256
    for uscc, stratum in rows:
        digest.update(f"{uscc}\t{stratum}\n".encode("ascii"))
        sha256(seed + uscc.encode("ascii")).digest()
    return digest.hexdigest()


def draw(rows, salt: bytes, nonce: bytes):
    digest = draw_protocol.PopulationDigest(salt)
    for uscc, stratum in rows:
        digest.add(uscc, stratum)
    plans = draw_protocol.plan_strata(digest.counts, RATIOS)
    seed = draw_protocol.draw_seed(TASK_ID, digest.hexdigest(), nonce, ENTROPY)
    selected = draw_protocol.select(seed, rows, {s: p.quota for s, p in plans.items()})
    return digest.hexdigest(), plans, seed, selected


def dispatch(seed: bytes, selected: list[str], inspectors, load_cap: int):
    pool_bytes = dispatch_protocol.pool_file(inspectors)
    seed2 = dispatch_protocol.dispatch_seed(seed, "360202-SCJ", dispatch_protocol.pool_digest(pool_bytes), 2, load_cap)
    return dispatch_protocol.dispatch(seed2, selected, inspectors, ["registration"], 2, load_cap, AS_OF)


def package(digest: str, plans, seed: bytes, selected: list[str], salt: bytes, nonce: bytes) -> dict:
    return {
        "protocol": draw_protocol.PROTOCOL, "task_id": TASK_ID, "population_digest": digest,
        "strata": {s: {"population": p.population, "ratio": p.ratio, "quota": p.quota} for s, p in plans.items()},
        "commitment": draw_protocol.commitment(nonce), "entropy_source": "福利彩票3D 2025091", "entropy": ENTROPY,
        "nonce": nonce.hex(), "seed": seed.hex(), "selection_digest": draw_protocol.selection_digest(selected),
        "population_salt": salt.hex(), "selected": selected, "targeted": [],
    }


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rows", type=int, default=1_000_000)
    options.add_argument("--inspectors", type=int, default=200)
    options.add_argument("--load-cap", type=int, default=0)
    args = options.parse_args(argv)

    salt, nonce = bytes(range(32)), bytes(range(32, 64))
    start = time.perf_counter()
    rows = population(args.rows)
    print(f"population: {len(rows):,} rows built in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    (digest, plans, seed, selected), draw_s = timed(draw, rows, salt, nonce)
    print(f"draw (cpu): {len(selected):,} selected in {draw_s:.2f} s", file=sys.stderr)
    floor_digest, floor_s = timed(floor, rows, salt, seed)
    assert floor_digest == digest, "the floor must hash the same bytes"
    print(f"floor (cpu): {floor_s:.2f} s", file=sys.stderr)

    inspectors = pool(args.inspectors, random.Random(8233), selected)
    outcome, dispatch_s = timed(dispatch, seed, selected, inspectors, args.load_cap)
    print(f"dispatch (cpu): {len(outcome.teams):,} teams, {len(outcome.unstaffed):,} unstaffed in {dispatch_s:.2f} s",
          file=sys.stderr)

    record = package(digest, plans, seed, selected, salt, nonce)
    report, verify_s = timed(verify_draw, record, rows)
    if not report.ok:
        print(report, file=sys.stderr)
        return 1
    print(f"verify (cpu): {len(report.checks)} checks pass in {verify_s:.2f} s", file=sys.stderr)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    figures = {
        "rows": len(rows), "selected": len(selected), "inspectors": args.inspectors,
        "ratio_vs_floor": f"{draw_s / floor_s:.2f}",
        "floor_rows_per_s": f"{len(rows) / floor_s:.0f}",
        "draw_rows_per_s": f"{len(rows) / draw_s:.0f}",
        "verify_rows_per_s": f"{len(rows) / verify_s:.0f}",
        "verify_ratio_vs_floor": f"{verify_s / floor_s:.2f}",
        "dispatch_targets_per_s": f"{len(selected) / dispatch_s:.0f}",
        "peak_rss_mb": f"{peak:.0f}",
        "clock": "process_cpu",
        "wall_s": f"{sum(WALL.values()):.1f}",
    }
    print(" ".join(f"{key}={value}" for key, value in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
