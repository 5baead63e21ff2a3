"""public/assets/verify.html, the public verification page, against audit/verify.py on the same files.

A genuine audit package is built with domain.draw (tests/unit/test_verify.py's build_package), written
as `spotcheck draw export` writes it (record JSON, population CSV) with the published selection beside
it, then opened in Chromium from file:// and verified there with WebCrypto. Every tampering is verified
by both: the page's checks (name and result, in order) and verdict must equal audit.verify's.
"""
from __future__ import annotations

import json
import random
import re
from fractions import Fraction
from pathlib import Path

import pytest

from audit.verify import read_population_csv, verify_draw
from domain.draw import quota
from domain.uscc import make_uscc
from read.audit_package import read_record
from tests.unit.test_verify import POPULATION as VECTOR_POPULATION
from tests.unit.test_verify import RATIOS as VECTOR_RATIOS
from tests.unit.test_verify import build_package

PAGE = Path(__file__).resolve().parents[2] / "public" / "assets" / "verify.html"
RATIOS = {"A": "0.1", "B": "0.25", "C": "0.333333", "D": "0.07", "U": "0"}
VECTOR_SEED = "5d6fc6ed64f213e6cfda10a9385efd683d7a5f496ca44223a0045846e9bcf2de"
PUBLIC_ONLY = ("population_salt", "selected", "targeted")  # what the public register leaves out


def population(rows: int = 400) -> list[tuple[str, str]]:
    rng = random.Random(17)
    return sorted((make_uscc(f"91360202{rng.randrange(10**9):09d}"), rng.choice("AABBBCDU")) for _ in range(rows))


ROWS = population()
TARGETED = [ROWS[5][0]]


def package() -> dict:
    return build_package(ROWS, RATIOS, targeted=TARGETED)


def write_files(tmp_path: Path, record: dict, rows=None, selection=None, population_text=None) -> dict[str, Path]:
    """The files a user picks: the record as `spotcheck draw export` writes it, the population CSV, the
    published selection (one USCC a line)."""
    files = {"record": tmp_path / "draw.json"}
    files["record"].write_bytes((json.dumps(record, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode())
    if population_text is None and rows is not None:
        population_text = "uscc,stratum\n" + "".join(f"{uscc},{stratum}\n" for uscc, stratum in rows)
    if population_text is not None:
        files["population"] = tmp_path / "population.csv"
        files["population"].write_bytes(population_text.encode())
    if selection is not None:
        files["selection"] = tmp_path / "selection.txt"
        files["selection"].write_text("".join(f"{uscc}\n" for uscc in selection))
    return files


def on_page(page, files: dict[str, Path]) -> tuple[bool, list[tuple[str, bool]]]:
    """The page's verdict and its checks (name, ok) in order."""
    page.goto(PAGE.as_uri())
    for name, path in files.items():
        page.set_input_files(f"#{name}", str(path))
    page.wait_for_selector("#verdict[data-valid]", timeout=60_000)
    assert page.get_attribute("#verdict", "data-inputs") == " ".join(n for n in ("record", "population", "selection")
                                                                      if n in files)
    checks = page.eval_on_selector_all("#checks li", "items => items.map(li => [li.dataset.check, li.dataset.ok])")
    assert all(ok in ("true", "false") for _, ok in checks)
    return page.get_attribute("#verdict", "data-valid") == "true", [(name, ok == "true") for name, ok in checks]


def in_python(files: dict[str, Path]) -> tuple[bool, list[tuple[str, bool]]]:
    """audit.verify on the same files; a selection file is the list checked, in place of the package's."""
    record = read_record(files["record"])
    if "selection" in files:
        record["selected"] = [line.strip() for line in files["selection"].read_text().splitlines() if line.strip()]
    report = verify_draw(record, read_population_csv(files["population"]))
    return report.ok, [(check.name, check.ok) for check in report.checks]


def failed(checks) -> set[str]:
    return {name for name, ok in checks if not ok}


def test_genuine_package_passes_every_check(page, tmp_path):
    record = package()
    files = write_files(tmp_path, record, ROWS, record["selected"])
    valid, checks = on_page(page, files)
    assert (valid, checks) == in_python(files)
    assert valid and not failed(checks)
    assert [name for name, _ in checks] == [
        "protocol", "record", "commitment", "entropy", "seed", "population rows", "population_digest", "strata",
        "quotas", "selection", "selection_digest", "targeted"]
    assert len(record["selected"]) > 50  # the draw selects from every stratum but U (ratio 0)


def test_protocol_vector(page, tmp_path):
    record = build_package(VECTOR_POPULATION, VECTOR_RATIOS)
    files = write_files(tmp_path, record, VECTOR_POPULATION)
    result = on_page(page, files)
    assert result == in_python(files) and result[0]
    assert VECTOR_SEED in page.text_content('#checks li[data-check="seed"]')


def _set(path, value):
    def tamper(record, rows, selection):
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return tamper


def _restratify_row(record, rows, selection):
    uscc, stratum = rows[10]
    rows[10] = (uscc, "B" if stratum != "B" else "C")


def _swap_selected(where):
    def tamper(record, rows, selection):
        chosen = set(selection)
        outsider = next(uscc for uscc, _ in rows if uscc not in chosen)
        swapped = sorted(chosen - {selection[0]} | {outsider})
        if where == "file":
            selection[:] = swapped
        else:
            record["selected"] = swapped
    return tamper


def _rows(change):
    def tamper(record, rows, selection):
        rows[:] = change(rows)
    return tamper


TAMPERINGS = {
    "seed": _set(("seed",), "00" * 32),
    "nonce": _set(("nonce",), "22" * 32),
    "commitment": _set(("commitment",), "11" * 32),
    "entropy": _set(("entropy",), "3D-2025092"),
    "ratio": _set(("strata", "B", "ratio"), "0.3"),
    "stratum count": _set(("strata", "A", "population"), lambda n: n + 1),
    "quota": _set(("strata", "C", "quota"), lambda n: n - 1),
    "population row": _restratify_row,
    "selected USCC in the selection file": _swap_selected("file"),
    "selected USCC in the package": _swap_selected("package"),
    "selection digest": _set(("selection_digest",), "33" * 32),
    "salt": _set(("population_salt",), "44" * 32),
    # Exact numbers: a count written as 4.0 is not an integer, one beyond 2**53 is not rounded.
    "count as a float": _set(("strata", "A", "population"), float),
    "count beyond 2**53": _set(("strata", "A", "population"), lambda n: 2**64 + n),
    "bad ratio string": _set(("strata", "A", "ratio"), "0.1234567"),
    "missing nonce": lambda record, rows, selection: record.pop("nonce"),
    "source none with entropy": _set(("entropy_source",), "none"),
    "stratum without ratio": lambda record, rows, selection: record["strata"].pop("D"),
    "rows out of order": _rows(lambda rows: [rows[1], rows[0], *rows[2:]]),
    "wrong check digit": _rows(lambda rows: [(rows[0][0][:17] + ("0" if rows[0][0][17] != "0" else "1"), rows[0][1]),
                                             *rows[1:]]),
    "row removed": _rows(lambda rows: rows[:3] + rows[4:]),
    "targeted outside": _set(("targeted",), [{"uscc": make_uscc("91360202000000000"), "reason": "complaint"}]),
}


@pytest.mark.parametrize("name", TAMPERINGS)
def test_tampering_page_agrees_with_audit_verify(page, tmp_path, name):
    record, rows = package(), list(ROWS)
    selection = list(record["selected"])
    TAMPERINGS[name](record, rows, selection)
    with_file = name == "selected USCC in the selection file"
    files = write_files(tmp_path, record, rows, selection if with_file else None)
    valid, checks = on_page(page, files)
    assert (valid, checks) == in_python(files)
    assert not valid and failed(checks)


@pytest.mark.parametrize("text", [
    "\ufeffuscc,stratum\n" + "".join(f"{u},{s}\n" for u, s in ROWS),  # a BOM
    "uscc,stratum\n" + "".join(f"{u},{s}\r\n" for u, s in ROWS),  # CRLF
    "uscc,stratum\n" + "".join(f"{u},{s}\n" for u, s in ROWS[:7]) + f"{ROWS[7][0]},A,x\n",  # three fields
    "uscc,stratum\n" + "".join(f"{u},{s}\n" for u, s in ROWS).rstrip("\n"),  # no final line feed: still valid
])
def test_population_file_format_agrees(page, tmp_path, text):
    files = write_files(tmp_path, package(), population_text=text)
    assert on_page(page, files) == in_python(files)


# --- the public record alone: what a member of the public can check ---------------------------------
def public(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in PUBLIC_ONLY}


def test_public_record_alone(page, tmp_path):
    record = package()
    valid, checks = on_page(page, write_files(tmp_path, public(record)))
    assert valid and checks == [(name, True) for name in ("protocol", "record", "commitment", "entropy", "seed",
                                                          "quotas")]
    assert "抽取名单" in page.text_content("#notes")  # says the selection digest was not checked
    valid, checks = on_page(page, write_files(tmp_path, public(record), selection=record["selected"]))
    assert valid and checks[-1] == ("selection_digest", True)


@pytest.mark.parametrize("name", ["seed", "nonce", "commitment", "entropy", "source none with entropy"])
def test_public_record_tampering_agrees_on_what_it_checks(page, tmp_path, name):
    record, rows = package(), list(ROWS)
    TAMPERINGS[name](record, rows, [])
    valid, checks = on_page(page, write_files(tmp_path, public(record), selection=record["selected"]))
    ok, expected = in_python(write_files(tmp_path, record, rows))
    shared = {"protocol", "commitment", "entropy", "seed"}
    assert [c for c in checks if c[0] in shared] == [c for c in expected if c[0] in shared]
    assert not valid


@pytest.mark.parametrize("change, failing", [
    ({"selection": lambda s: s[1:]}, {"selection_digest"}),
    ({"selection": lambda s: list(reversed(s))}, {"selection_digest"}),
    ({"quota": lambda q: q + 1}, {"quotas"}),
])
def test_public_record_selection_and_quotas(page, tmp_path, change, failing):
    record = package()
    selection = change.get("selection", list)(record["selected"])
    record["strata"]["B"]["quota"] = change.get("quota", int)(record["strata"]["B"]["quota"])
    valid, checks = on_page(page, write_files(tmp_path, public(record), selection=selection))
    assert not valid and failed(checks) == failing


def test_public_quotas_are_exact_beyond_floating_point(page, tmp_path):
    population, ratio = 10**20 + 1, "0.000001"  # in doubles N × r rounds to 1e14; exactly it is just above
    exact = quota(population, Fraction(ratio))
    assert exact == 10**14 + 1
    record = public(package())
    record["strata"] = {"A": {"population": population, "ratio": ratio, "quota": exact}}
    assert on_page(page, write_files(tmp_path, record)) == (True, [(n, True) for n in (
        "protocol", "record", "commitment", "entropy", "seed", "quotas")])
    record["strata"]["A"]["quota"] = exact - 1
    valid, checks = on_page(page, write_files(tmp_path, record))
    assert not valid and failed(checks) == {"quotas"}


# --- the page itself ---------------------------------------------------------------------------------
def test_unreadable_record_is_a_failed_verdict(page, tmp_path):
    path = tmp_path / "draw.json"
    path.write_text('{"protocol": "sc-draw-v1",}')
    valid, checks = on_page(page, {"record": path})
    assert not valid and checks == [("record", False)]


def test_no_network_request(page, tmp_path):
    requests = []

    def record_request(route):
        if not route.request.url.startswith("file://"):
            requests.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", record_request)
    page.on("request", lambda request: None if request.url.startswith("file://") else requests.append(request.url))
    record = package()
    valid, _ = on_page(page, write_files(tmp_path, record, ROWS, record["selected"]))
    assert valid
    assert requests == []
    html = PAGE.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href|action)\s*=\s*["']?(https?:)?//""", html), "the page must reference nothing outside it"


def test_readable_on_a_phone(page, tmp_path):
    record = package()
    on_page(page, write_files(tmp_path, record, ROWS, record["selected"]))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    labels = page.eval_on_selector_all("#checks li .name", "items => items.map(n => n.textContent)")
    assert labels and all(re.search(r"[\u4e00-\u9fff]", label) for label in labels)  # named in Chinese
    assert re.search(r"[\u4e00-\u9fff]", page.text_content("#verdict"))
