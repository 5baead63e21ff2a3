"""Browser tests: Debian's chromium driven through Playwright's executable_path; no browser is ever
downloaded. Without chromium they skip, unless SPOTCHECK_REQUIRE_CHROMIUM=1 (CI), then they fail
(the convention of tests/workflows/test_report.py)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# No profile sync, update checks or background requests: a test that watches the network sees the page only.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return find_chromium()


def find_chromium() -> str:
    """The browser ($SPOTCHECK_CHROMIUM when set, else the Debian package's), or skip (fail when
    SPOTCHECK_REQUIRE_CHROMIUM=1)."""
    configured = os.environ.get("SPOTCHECK_CHROMIUM")
    candidates = [configured] if configured else ["/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    message = f"chromium not found at {' or '.join(filter(None, candidates))} (apt-get install -y chromium)"
    if os.environ.get("SPOTCHECK_REQUIRE_CHROMIUM") == "1":
        pytest.fail(message + " (SPOTCHECK_REQUIRE_CHROMIUM=1)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    opened = context.new_page()
    yield opened
    context.close()
