"""What one short transaction costs on PostgreSQL through the project's engine, with and without pre-ping.

    .venv/bin/python bench/pg_roundtrips.py [--n 500]

In a database of our own (created and dropped; BENCH_DATABASE_URL's server), `--n` times each:
- txn: `with engine.begin(): one UPDATE` (what record_check / record_stage do), through
  db.engine.make_engine (pool_pre_ping=True) and through the same engine without pre-ping;
- read: `with engine.connect(): one SELECT` (targets_page);
- deliver-like: three transactions in a row (Notifier.deliver + HandoffActivities.deliver) against the
  same statements in one transaction.
Prints the mean wall time of each; the last line is key=value. (Round trips, seen with
`strace -f -e trace=sendto` on such a loop: a transaction on the project engine sends SELECT 1 (the
pre-ping, in autocommit), BEGIN, its statements, COMMIT; without pre-ping BEGIN, statements, COMMIT; a
read on engine.connect() ends with ROLLBACK instead of COMMIT.)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import harness  # noqa: E402

from sqlalchemy import create_engine, text  # noqa: E402

from db.engine import make_engine, normalize_url  # noqa: E402


def measure(label: str, n: int, op) -> float:
    for _ in range(10):
        op()  # warm the pool and the statement cache
    t0 = time.perf_counter()
    for _ in range(n):
        op()
    ms = 1000 * (time.perf_counter() - t0) / n
    print(f"{label:58s} {ms:7.2f} ms", flush=True)
    return ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/pg_roundtrips.py")
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args(argv)
    admin_url = os.environ.get("BENCH_DATABASE_URL", harness.DEFAULT_ADMIN_URL)
    url, name = harness.create_database(admin_url)
    try:
        setup = create_engine(normalize_url(url))
        with setup.begin() as c:
            c.execute(text("CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL, at timestamptz)"))
            c.execute(text("INSERT INTO t SELECT g, 0, now() FROM generate_series(1, 100) g"))
        setup.dispose()
        project = make_engine(url)  # pool_pre_ping=True, as the workers use it
        plain = create_engine(normalize_url(url), pool_size=8, max_overflow=8)
        update = text("UPDATE t SET n = n + 1, at = now() WHERE id = 1")
        select = text("SELECT n FROM t WHERE id = 2")

        def txn(engine):
            def op():
                with engine.begin() as c:
                    c.execute(update)
            return op

        def read(engine):
            def op():
                with engine.connect() as c:
                    c.execute(select).all()
            return op

        def three(engine):
            def op():
                for _ in range(3):
                    with engine.begin() as c:
                        c.execute(select).all()
                        c.execute(update)
            return op

        def one(engine):
            def op():
                with engine.begin() as c:
                    for _ in range(3):
                        c.execute(select).all()
                        c.execute(update)
            return op

        r = {
            "txn_preping": measure("1-statement transaction, project engine (pre-ping)", args.n, txn(project)),
            "txn_plain": measure("1-statement transaction, no pre-ping", args.n, txn(plain)),
            "read_preping": measure("read on engine.connect(), project engine (pre-ping)", args.n, read(project)),
            "read_plain": measure("read on engine.connect(), no pre-ping", args.n, read(plain)),
            "three_txn": measure("deliver-like: 3 transactions of select+update (pre-ping)", args.n, three(project)),
            "one_txn": measure("the same 6 statements in 1 transaction (pre-ping)", args.n, one(project)),
        }
        project.dispose()
        plain.dispose()
    finally:
        harness.drop_database(admin_url, name)
    print(f"txn_ms_preping={r['txn_preping']:.2f} txn_ms_plain={r['txn_plain']:.2f} read_ms_preping={r['read_preping']:.2f} "
          f"read_ms_plain={r['read_plain']:.2f} deliver_3txn_ms={r['three_txn']:.2f} deliver_1txn_ms={r['one_txn']:.2f} "
          f"n={args.n} load={os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
