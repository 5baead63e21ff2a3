"""The built public site in Chromium on a phone (390×844): Chinese text renders (no tofu), the pages are
screenshotted for a person to look at, and a draw record downloaded from a task page verifies on the
site's own verify.html with the published selection.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from cli import main
from tests.public.year import T1, populate

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

# Two different characters drawn in the element's own font: real glyphs differ from each other and from
# the missing-glyph box; tofu draws the same box for all three.
GLYPHS = """(element) => {
  const font = getComputedStyle(element).font;
  const ink = (text) => {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 64;
    const g = canvas.getContext("2d");
    g.font = font.replace(/^(.*?)\\d+(\\.\\d+)?px/, "$148px");
    g.fillStyle = "#000";
    g.fillText(text, 4, 52);
    return Array.from(g.getImageData(0, 0, 64, 64).data.filter((_, i) => i % 4 === 3)).join(",");
  };
  const box = element.getBoundingClientRect();
  return {jian: ink("检"), cha: ink("查"), missing: ink("\\uE000"), width: box.width, text: element.textContent};
}"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    from db.engine import make_engine, migrate

    where = tmp_path_factory.mktemp("public-site")
    engine = make_engine(f"sqlite:///{where / 'spotcheck.db'}")
    migrate(engine)
    populate(engine)
    engine.dispose()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATABASE_URL", f"sqlite:///{where / 'spotcheck.db'}")
        env.delenv("SPOTCHECK_NOTICE_KEY_FILE", raising=False)
        env.delenv("SPOTCHECK_NOTICE_PUBLIC_KEYS", raising=False)
        assert main(["public", "build", "--out", str(where / "site")]) == 0
    return where / "site"


def assert_chinese_renders(page, selector: str) -> None:
    drawn = page.eval_on_selector(selector, GLYPHS)
    assert drawn["width"] > 0 and any(ord(c) > 0x4E00 for c in drawn["text"])
    assert drawn["jian"] != drawn["cha"], "two CJK characters drew the same box: no CJK font"
    assert drawn["jian"] != drawn["missing"], "a CJK character drew the missing-glyph box"
    assert any(v != "0" for v in drawn["jian"].split(",")), "a CJK character drew nothing"


@pytest.mark.parametrize("name", ["index.html", f"tasks/t-{T1}.html"])
def test_pages_render_chinese_on_a_phone(page, built, name):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((built / name).as_uri())
    assert_chinese_renders(page, "h1")
    assert_chinese_renders(page, "main")
    # Phone-sized: nothing wider than the screen makes the page scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"public-{name.replace('/', '-').removesuffix('.html')}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert all(url.startswith("file://") for url in requests), requests


def test_a_downloaded_draw_record_verifies_on_the_site(page, built):
    page.goto((built / "verify.html").as_uri())
    page.set_input_files("#record", str(built / "tasks" / f"t-{T1}-draw-2.json"))
    page.set_input_files("#selection", str(built / "tasks" / f"t-{T1}-selected.txt"))
    page.wait_for_selector('#verdict[data-valid][data-inputs="record selection"]', timeout=60_000)
    checks = dict(page.eval_on_selector_all("#checks li", "l => l.map(li => [li.dataset.check, li.dataset.ok])"))
    assert {checks[c] for c in ("commitment", "seed", "quotas", "selection_digest")} == {"true"}, checks
    assert page.get_attribute("#verdict", "data-valid") == "true"


def test_the_superseded_record_does_not_open_the_later_selection(page, built):
    page.goto((built / "verify.html").as_uri())
    page.set_input_files("#record", str(built / "tasks" / f"t-{T1}-draw-1.json"))
    page.set_input_files("#selection", str(built / "tasks" / f"t-{T1}-selected.txt"))
    page.wait_for_selector('#verdict[data-valid][data-inputs="record selection"]', timeout=60_000)
    checks = dict(page.eval_on_selector_all("#checks li", "l => l.map(li => [li.dataset.check, li.dataset.ok])"))
    assert checks["commitment"] == "true" and checks["selection_digest"] == "false"
    assert page.get_attribute("#verdict", "data-valid") == "false"
