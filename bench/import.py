"""Benchmark of the entity directory import on PostgreSQL.

    .venv/bin/python bench/import.py [--rows 1000000] [--keep-files]

Generates synthetic entity CSVs (valid USCCs) in a temp dir, creates a database of its own on the
server named by BENCH_DATABASE_URL (an admin URL, default postgresql://postgres@127.0.0.1:5432/postgres)
and drops it at the end; the server itself is never stopped or reconfigured. Phases:
- floor: plain COPY of each file into an unindexed table (the raw speed of the server);
- initial: --rows rows into an empty directory;
- big: 4 × --rows rows into another empty directory, then re-imported with 1% of rows changed.
Each phase runs in a child process, so its peak RSS (ru_maxrss) is its own. The last line of the
output is one line of key=value figures.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `import` is no module name

from sqlalchemy import create_engine, text  # noqa: E402

from db.engine import make_engine, migrate, normalize_url  # noqa: E402
from domain.uscc import make_uscc  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HEADER = "uscc,name,subject_type,region,industry,risk_class,status,address,labels\n"
REGIONS = ("360202", "360203", "360222", "360281", "360102", "360103", "360111", "360121")
INDUSTRIES = ("C1311", "F5123", "I6510", "H6210", "C3011", "L7212", "")
SUBJECT_TYPES = ("enterprise",) * 6 + ("individual",) * 3 + ("cooperative",)
RISK_CLASSES = ("A", "B", "B", "C", "D", "")
LABELS = ("", "", "", "food", "food;licence.sc", "special.equipment")
CHANGED_SHARE = 100  # one row in CHANGED_SHARE differs in the re-imported file


# --- the files ---------------------------------------------------------------------------------
def entity_line(i: int, rng: random.Random, changed: bool = False) -> str:
    region = REGIONS[i % len(REGIONS)]
    uscc = make_uscc(f"92{region}{i:09d}")
    risk = RISK_CLASSES[rng.randrange(len(RISK_CLASSES))]
    status = "active"
    if changed:  # a reclassification, as the yearly risk review produces
        risk = "D" if risk != "D" else "A"
    return (
        f"{uscc},景德镇市某某商贸有限公司第{i}号,{SUBJECT_TYPES[i % len(SUBJECT_TYPES)]},{region},"
        f"{INDUSTRIES[i % len(INDUSTRIES)]},{risk},{status},江西省景德镇市珠山区瓷都大道{i}号,"
        f"{LABELS[i % len(LABELS)]}\n"
    )


def write_files(folder: Path, rows: int) -> dict[str, Path]:
    """initial (rows), big (4 × rows) and big_changed (the same with 1% of rows changed)."""
    paths = {name: folder / f"{name}.csv" for name in ("initial", "big", "big_changed")}
    with open(paths["initial"], "w", encoding="utf-8") as initial, open(paths["big"], "w", encoding="utf-8") as big, \
            open(paths["big_changed"], "w", encoding="utf-8") as changed:
        for f in (initial, big, changed):
            f.write(HEADER)
        for i in range(4 * rows):
            # One generator per row: the changed file must repeat the big file's values exactly.
            line = entity_line(i, random.Random(i))
            big.write(line)
            changed.write(entity_line(i, random.Random(i), changed=True) if i % CHANGED_SHARE == 7 else line)
            if i < rows:
                initial.write(line)
    return paths


# --- the phases, each in a child process ----------------------------------------------------------
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def phase_floor(url: str, path: Path) -> dict:
    engine = create_engine(normalize_url(url))
    table = f"floor_{uuid.uuid4().hex[:8]}"
    columns = HEADER.strip().replace(",", " text, ") + " text"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} ({columns})")
    started = time.perf_counter()
    with engine.begin() as conn, open(path, "rb") as source:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)", source, size=1 << 18)
        rows = cursor.rowcount
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {table}")
    return {"rows": rows, "seconds": seconds, "rss_mb": peak_rss_mb()}


def phase_import(url: str, schema: str, path: Path, now: str) -> dict:
    from service.imports import import_directory

    engine = make_engine(url, search_path=schema)
    started = time.perf_counter()
    summary = import_directory(engine, "entities", path, now=datetime.fromisoformat(now))
    seconds = time.perf_counter() - started
    return {"rows": summary.rows_read, "seconds": seconds, "rss_mb": peak_rss_mb(), "summary": summary.__dict__}


def run_child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase {args[0]} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the run -----------------------------------------------------------------------------------
def make_schema(url: str, schema: str) -> None:
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    admin.dispose()
    engine = make_engine(url, search_path=schema)
    migrate(engine)
    engine.dispose()


def report(name: str, result: dict) -> float:
    rate = result["rows"] / result["seconds"]
    print(f"{name:<22} {result['rows']:>10,} rows {result['seconds']:8.1f} s {rate:>10,.0f} rows/s "
          f"peak RSS {result['rss_mb']:7.1f} MB  {result.get('summary', '')}", flush=True)
    return rate


def bench(url: str, rows: int, folder: Path) -> str:
    started = time.perf_counter()
    paths = write_files(folder, rows)
    print(f"files written in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.0f} MB" for p in paths.values()), flush=True)
    for schema in ("initial", "big"):
        make_schema(url, schema)
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    floor = report("floor COPY initial", run_child("floor", url, str(paths["initial"])))
    floor_big = report("floor COPY big", run_child("floor", url, str(paths["big"])))
    results = {
        "initial": run_child("import", url, "initial", str(paths["initial"]), t0.isoformat()),
        "big_initial": run_child("import", url, "big", str(paths["big"]), t0.isoformat()),
        "reimport": run_child("import", url, "big", str(paths["big_changed"]), (t0 + timedelta(days=1)).isoformat()),
    }
    rates = {name: report(name, result) for name, result in results.items()}
    return " ".join([
        f"rows={rows}",
        f"ratio_vs_floor={rates['initial'] / floor:.3f}",
        f"floor_rows_per_s={floor:.0f}",
        f"floor_rows_per_s_big={floor_big:.0f}",
        f"rows_per_s_initial={rates['initial']:.0f}",
        f"rows_per_s_big_initial={rates['big_initial']:.0f}",
        f"rows_per_s_reimport={rates['reimport']:.0f}",
        f"reimport_changed={results['reimport']['summary']['changed']}",
        f"peak_rss_mb={max(r['rss_mb'] for r in results.values()):.1f}",
        f"peak_rss_mb_initial={results['initial']['rss_mb']:.1f}",
        f"peak_rss_mb_reimport={results['reimport']['rss_mb']:.1f}",
    ])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        phase, *args = sys.argv[2:]
        result = phase_floor(args[0], Path(args[1])) if phase == "floor" else phase_import(args[0], args[1], Path(args[2]), args[3])
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the initial file; the big one has 4 times as many")
    parser.add_argument("--keep-files", action="store_true", help="leave the generated CSVs in the temp dir")
    options = parser.parse_args()
    admin_url = normalize_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL))
    database = f"spotcheck_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))
    folder = Path(tempfile.mkdtemp(prefix="spotcheck-bench-"))
    try:
        line = bench(admin_url.rsplit("/", 1)[0] + "/" + database, options.rows, folder)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
        if not options.keep_files:
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()
    print(line)


if __name__ == "__main__":
    main()
