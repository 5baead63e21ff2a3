"""`spotcheck public build`: the site shows what the register published, and nothing internal.

The year (tests/public/year.py) is written through the same builders and writer as the activities use,
with its internal side beside it. Every register payload goes through domain.public.check, and every
built file through the list of what must never appear: the directory's inspector ids, names and
certificate numbers, the salts, an unrevealed nonce, an entity beside its risk class.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from cli import main
from domain import public
from domain.categories import category
from domain.notices import b64url, key_id, raw_public_key
from read.public_site import site
from store import views
from tests.public.year import INSPECTORS, OLD_OWNER_NAME, OWNER, PARTNER, T1, T2, UNIT, UNIT_NAMES, populate

CHECKERS = ("verify.html", "notice-check.html")  # static assets: their code names protocol fields, never values


@pytest.fixture
def year(sqlite_engine):
    return populate(sqlite_engine)


@pytest.fixture
def built(sqlite_engine, year, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.delenv("SPOTCHECK_NOTICE_KEY_FILE", raising=False)
    monkeypatch.delenv("SPOTCHECK_NOTICE_PUBLIC_KEYS", raising=False)
    out = tmp_path / "site"
    assert main(["public", "build", "--out", str(out), "--json"]) == 0
    return out


def never_public(year) -> list[str]:
    """Strings that may appear in no built file."""
    forbidden = [*INSPECTORS, *INSPECTORS.values(), *(f"3602022200{k:02d}" for k in range(len(INSPECTORS))),
                 *year.salts, year.unrevealed_nonce]
    for uscc, stratum in year.population:  # the population file's rows, either form
        forbidden += [f"{uscc},{stratum}", f"{uscc}\t{stratum}"]
    return forbidden


NEVER_PUBLIC_WORDS = re.compile(
    r"\b(" + "|".join(sorted(public.NEVER_PUBLIC - public.REVEALED_IN_DRAW_RECORD)) + r")\b|风险等级|信用风险|风险分类")


# A risk class value on its own in a table cell or a fact, anywhere but the draw record's strata column.
RISK_CLASS_CELL = re.compile(r'<td data-label="(?!分层")[^"]*">\s*[A-DU]\s*</td>|<dd>\s*[A-DU]\s*</dd>')


def leaks(text: str, forbidden: list[str], checker: bool = False) -> list[str]:
    found = [s for s in forbidden if s in text]
    if not checker:
        found += [m.group(0) for m in NEVER_PUBLIC_WORDS.finditer(text)]
        found += [m.group(0) for m in RISK_CLASS_CELL.finditer(text)]
    return found


def files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in sorted(out.rglob("*")) if p.is_file()}


def test_every_register_payload_passes_the_never_public_list(sqlite_engine, year):
    with sqlite_engine.connect() as connection:
        rows = views.publications(connection)
    kinds = set()
    forbidden = never_public(year)
    for row in rows:
        payload = json.loads(row["payload"])
        assert public.check(payload) is payload
        assert not leaks(row["payload"], forbidden), row["payload"]
        kinds.add(row["kind"])
    assert kinds == {"plan", "adjustment", "task", "draw", "result", "correction", "withdrawal"}


def test_no_built_file_shows_anything_internal(built, year):
    forbidden = never_public(year)
    built_files = files(built)
    assert set(CHECKERS) <= set(built_files)
    for name, text in built_files.items():
        assert not leaks(text, forbidden, checker=name in CHECKERS), name
        if name.endswith(".json"):
            public.check(json.loads(text))
    # The scan finds what it looks for: the internal data is really in the database and in the forbidden list.
    assert leaks(f"<td>{next(iter(INSPECTORS.values()))}</td>", forbidden)
    assert leaks('{"risk_class": "A"}', forbidden)
    assert leaks('<td data-label="信用等级">B</td>', forbidden) and not leaks('<td data-label="分层">B</td>', forbidden)


def test_the_site_shows_the_year(built, year):
    pages = files(built)
    index, task = pages["index.html"], pages[f"tasks/t-{T1}.html"]
    assert "景市监抽查〔2025〕1号" in index and "群众投诉较多，增设专项任务" in index and "新增任务" in index
    assert f'href="tasks/t-{T2}.html"' in index
    # Both draws, the first superseded with its reason; each record's revealed nonce, seed and digests; strata counts.
    assert task.count("已作废") == 1 and year.superseded_reason in task
    for record in year.records:
        for key in ("commitment", "nonce", "seed", "population_digest", "selection_digest"):
            assert record[key] in task
        assert json.loads(pages[f"tasks/t-{T1}-draw-{record['draw_seq']}.json"]) == record
    assert '<td data-label="对象数">8</td>' in task
    # The selection once the task closed; results per entity with their follow-ups.
    assert pages[f"tasks/t-{T1}-selected.txt"] == "".join(f"{u}\n" for u in year.selected)
    for uscc, code in year.results.items():
        if uscc == year.withdrawn:
            continue
        entity = pages[f"entities/{uscc}.html"]
        assert category(code).name_zh in entity and category(code).name_zh in task
    order = next(u for u, c in year.results.items() if c == "unpublished_info")
    assert "责令公示（期限" in pages[f"entities/{order}.html"]
    # The second task: announced, its commitment public, its nonce not (checked above), no selection yet.
    second = pages[f"tasks/t-{T2}.html"]
    assert "待抽取" in second and f"tasks/t-{T2}-selected.txt" not in pages
    assert "无（未指定外部随机源）" in second


def test_a_correction_shows_beside_the_result_and_a_withdrawn_result_nowhere(built, year):
    pages = files(built)
    task, corrected = pages[f"tasks/t-{T1}.html"], pages[f"entities/{year.corrected}.html"]
    for page in (task, corrected):
        assert f"更正（2025-06-02）：原为“{category(year.results[year.corrected]).name_zh}”" in page
        assert year.correction_reason in page and category("ordered_to_correct").name_zh in page
    assert f"entities/{year.withdrawn}.html" not in pages
    assert not [name for name, text in pages.items() if year.withdrawn in text and name != f"tasks/t-{T1}-selected.txt"
                and name != f"tasks/t-{T1}.html"]
    # On the task page it stays in the published selection (the draw is public), once, never beside a result.
    assert task.count(year.withdrawn) == 1 and f"<li><code>{year.withdrawn}</code></li>" in task


def test_units_are_shown_by_their_names(built, year):
    """Where a row holds a unit's code, a page shows the directory's (newest) name; a code it lacks, as it is."""
    pages = files(built)
    index, task = pages["index.html"], pages[f"tasks/t-{T1}.html"]
    entity = pages[f"entities/{year.selected[1]}.html"]
    assert f"<td data-label=\"制定单位\">{UNIT_NAMES[OWNER]}</td>" in index and OLD_OWNER_NAME not in index
    assert f'<td data-label="实施单位">{UNIT_NAMES[UNIT]}</td>' in index
    assert f"<dt>实施单位</dt><dd>{UNIT_NAMES[UNIT]}</dd>" in task and f"<dd>{PARTNER}</dd>" in task
    for page in (task, entity):
        assert f'<td data-label="检查单位">{UNIT_NAMES[UNIT]}</td>' in page
    assert not [name for name, text in pages.items() if name.endswith(".html") and (UNIT in text or OWNER in text)]


def test_pages_load_nothing(built):
    for name, text in files(built).items():
        if name.endswith(".html") and name not in CHECKERS:
            assert "<script" not in text and "http://" not in text and "https://" not in text, name
            assert "default-src 'none'" in text


def test_a_rebuild_replaces_the_site_and_leaves_nothing_behind(built, sqlite_engine):
    stale = built / "tasks" / "t-GONE.html"
    stale.write_text("old")
    assert main(["public", "build", "--out", str(built)]) == 0
    assert not stale.exists() and (built / "index.html").is_file()
    assert [p.name for p in built.parent.iterdir() if p.name.startswith(".site")] == []  # no staging, no old site


def test_build_refuses_a_directory_it_did_not_write(sqlite_engine, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    assert main(["public", "build", "--out", str(mine)]) == 2
    assert "was not written by `spotcheck public build`" in capsys.readouterr().err
    assert (mine / "keep.txt").read_text() == "mine"


def test_site_renders_from_an_empty_register(sqlite_engine):
    with sqlite_engine.connect() as connection:
        pages = site(connection)
    assert list(pages) == ["index.html"] and "抽查信息公示" in pages["index.html"]


def test_the_site_publishes_the_notice_keys_by_id(sqlite_engine, tmp_path, monkeypatch):
    current, retired = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "current.pem").write_bytes(current.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    (tmp_path / "retired").mkdir()
    (tmp_path / "retired" / "2024.pem").write_bytes(
        retired.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    monkeypatch.setenv("DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("SPOTCHECK_NOTICE_KEY_FILE", str(tmp_path / "current.pem"))
    monkeypatch.setenv("SPOTCHECK_NOTICE_PUBLIC_KEYS", str(tmp_path / "retired"))
    assert main(["public", "build", "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "notice-check.html").read_text(encoding="utf-8")
    keys = json.loads(re.search(r'<script type="application/json" id="notice-keys">(.*?)</script>', page).group(1))
    assert keys == {key_id(raw_public_key(k.public_key())): b64url(raw_public_key(k.public_key()))
                    for k in (current, retired)}
    assert "PRIVATE" not in page and b64url(current.private_bytes_raw()) not in page
