"""Benchmark of the public verification page (public/assets/verify.html) against audit/verify.py.

    .venv/bin/python bench/verify_page.py [--rows 100000 1000000] [--chromium /usr/bin/chromium]

For each size, bench/draw.py's synthetic population and audit package (domain.draw) are written as
`spotcheck draw export` writes them, with the selection as a one-USCC-a-line file (not timed). Then,
in the same run and on the same files:
- page: verify.html in headless Chromium from file://, from choosing the three files to the verdict
  (the population read, its digest, one WebCrypto SHA-256 key per row, the selection recomputed);
- python: audit.verify.verify_draw on the record read from its file and the population CSV streamed.
Both are wall-clock (the browser works in processes of its own) and both must find the package valid.
The last line is one line of key=value figures (ratio = page time / python time).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for entry in (str(ROOT), str(BENCH)):
    if entry not in sys.path:
        sys.path.insert(0, entry)  # run as a script from anywhere

import draw as draw_bench  # noqa: E402  bench/draw.py: the population and package it benchmarks
from playwright.sync_api import sync_playwright  # noqa: E402

from audit.verify import read_population_csv, verify_draw  # noqa: E402
from read.audit_package import read_record  # noqa: E402

PAGE = ROOT / "public" / "assets" / "verify.html"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def write_package(rows: int, directory: Path) -> dict[str, Path]:
    population = draw_bench.population(rows)
    salt, nonce = bytes(range(32)), bytes(range(32, 64))
    record = draw_bench.package(*draw_bench.draw(population, salt, nonce), salt, nonce)
    files = {"population": directory / "population.csv", "selection": directory / "selection.txt",
             "record": directory / "draw.json"}  # the record last: the page starts once it has one
    with open(files["population"], "w", encoding="ascii", newline="\n") as handle:
        handle.write("uscc,stratum\n")
        handle.writelines(f"{uscc},{stratum}\n" for uscc, stratum in population)
    files["selection"].write_text("".join(f"{uscc}\n" for uscc in record["selected"]), encoding="ascii")
    files["record"].write_text(json.dumps(record, ensure_ascii=False, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return files


def time_page(browser, files: dict[str, Path]) -> tuple[float, bool]:
    page = browser.new_page()
    try:
        page.goto(PAGE.as_uri())
        start = time.perf_counter()
        for name, path in files.items():
            page.set_input_files(f"#{name}", str(path))
        page.wait_for_selector("#verdict[data-valid]", timeout=600_000)
        return time.perf_counter() - start, page.get_attribute("#verdict", "data-valid") == "true"
    finally:
        page.close()


def time_python(files: dict[str, Path]) -> tuple[float, bool]:
    start = time.perf_counter()
    record = read_record(files["record"])
    record["selected"] = files["selection"].read_text(encoding="ascii").split()
    report = verify_draw(record, read_population_csv(files["population"]))
    return time.perf_counter() - start, report.ok


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    options.add_argument("--chromium", default="/usr/bin/chromium")
    args = options.parse_args(argv)

    figures: dict[str, str] = {}
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="verify-page-") as scratch:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            for rows in args.rows:
                directory = Path(scratch) / str(rows)
                directory.mkdir()
                files = write_package(rows, directory)
                page_s, page_valid = time_page(browser, files)
                python_s, python_ok = time_python(files)
                print(f"{rows:,} rows: page {page_s:.2f} s ({'valid' if page_valid else 'INVALID'}), "
                      f"audit/verify.py {python_s:.2f} s ({'ok' if python_ok else 'FAILED'}), "
                      f"ratio {page_s / python_s:.2f}")
                if not (page_valid and python_ok):
                    return 1
                figures.update({f"page_s_{rows}": f"{page_s:.2f}", f"python_s_{rows}": f"{python_s:.2f}",
                                f"ratio_{rows}": f"{page_s / python_s:.2f}"})
        finally:
            browser.close()
    print(" ".join(f"{key}={value}" for key, value in {**figures, "clock": "wall"}.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
