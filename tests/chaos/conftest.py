"""The chaos test's verdict line in the terminal summary, so that a CI log shows it without -s."""
from __future__ import annotations

import pytest

_LINES = pytest.StashKey[list]()


@pytest.fixture
def chaos_report(request):
    """Print a line at once (with -s) and repeat it in the terminal summary at the end of the run."""
    lines = request.config.stash.setdefault(_LINES, [])

    def report(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(_LINES, [])
    if lines:
        terminalreporter.section("chaos", sep="-")
        for line in lines:
            terminalreporter.write_line(line)
