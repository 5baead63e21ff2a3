"""notice-check.html in Chromium (WebCrypto Ed25519), beside domain.notices.verify on the same tokens: a
genuine notice verifies; a changed team, another key, a key not published, an expired notice do not.
The page is the one `public build` writes (the asset with the published keys written in).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain import notices
from domain.workdays import SHANGHAI
from read.public_site import notice_check_page
from tests.public.test_notices import TEAM, USCC, published, reforged, token
from tests.public.year import T1

OLD, CURRENT, UNPUBLISHED = (Ed25519PrivateKey.generate() for _ in range(3))
TODAY = datetime.now(SHANGHAI).date()


@pytest.fixture(scope="module")
def checker(tmp_path_factory) -> Path:
    template = (resources.files("public") / "assets" / "notice-check.html").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("notice") / "notice-check.html"
    path.write_text(notice_check_page(template, published(OLD, CURRENT)), encoding="utf-8")
    return path


def on_page(page, checker: Path, text: str, *, pasted: bool = False) -> tuple[str, str, str]:
    """(data-valid, data-state, verdict text) after opening the QR code's link, or pasting its text."""
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    if pasted:
        page.goto(checker.as_uri())
        page.fill("#token", text)
        page.click("#check")
    else:
        page.goto(f"{checker.as_uri()}#{text}")
    page.wait_for_selector("#verdict[data-valid]")
    assert all(url.startswith("file://") for url in requests), requests
    return (page.get_attribute("#verdict", "data-valid"), page.get_attribute("#verdict", "data-state"),
            page.text_content("#verdict"))


def in_python(text: str) -> str:
    try:
        stated = notices.verify(text, published(OLD, CURRENT))
    except notices.NotGenuine:
        return "not-genuine"
    return "genuine" if TODAY <= stated.valid_until else "expired"


FAR = TODAY + timedelta(days=30)
CASES = {
    "genuine": lambda: token(CURRENT, valid_until=FAR),
    "rotated key, still published": lambda: token(OLD, valid_until=FAR),
    "changed team": lambda: reforged(token(CURRENT, valid_until=FAR), team=["JDZ-I001", "JDZ-I666"]),
    "team member added": lambda: reforged(token(CURRENT, valid_until=FAR), team=[*TEAM, "JDZ-I666"]),
    "later valid_until": lambda: reforged(token(CURRENT, valid_until=TODAY), valid_until=FAR.isoformat()),
    "unpublished key": lambda: token(UNPUBLISHED, valid_until=FAR),
    "unpublished key under a published id": lambda: reforged(
        token(UNPUBLISHED, valid_until=FAR), kid=next(iter(published(CURRENT)))),
    "expired": lambda: token(CURRENT, valid_until=TODAY - timedelta(days=1)),
    "not a token": lambda: "https://example.cn/pay",
}
EXPECTED = {"genuine": "genuine", "rotated key, still published": "genuine", "expired": "expired"}


@pytest.mark.parametrize("case", CASES)
def test_the_page_agrees_with_python(page, checker, case):
    text = CASES[case]()
    valid, state, verdict = on_page(page, checker, text)
    assert state == in_python(text) == EXPECTED.get(case, "not-genuine")
    assert valid == ("true" if state == "genuine" else "false")
    if state == "genuine":
        assert all(member in verdict for member in TEAM) and T1 in verdict and USCC in verdict
        assert verdict.startswith("真实") and FAR.isoformat() in verdict
    elif state == "not-genuine":
        assert verdict.startswith("非真实")


def test_a_pasted_token_verifies(page, checker):
    valid, state, _ = on_page(page, checker, token(CURRENT, valid_until=FAR), pasted=True)
    assert (valid, state) == ("true", "genuine")
    assert page.text_content("#team") == "、".join(TEAM)


def test_a_page_without_published_keys_trusts_nothing(page, tmp_path):
    template = (resources.files("public") / "assets" / "notice-check.html").read_text(encoding="utf-8")
    bare = tmp_path / "notice-check.html"
    bare.write_text(notice_check_page(template, {}), encoding="utf-8")
    assert on_page(page, bare, token(CURRENT, valid_until=date(2999, 1, 1)))[1] == "not-genuine"
