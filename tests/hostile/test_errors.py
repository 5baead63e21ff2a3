"""Stack traces instead of sentences (issue 13): every failure is one line naming the input and what to do."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.hostile.conftest import ROOT, one_sentence


@pytest.mark.parametrize("url, named", [
    ("mysql://user:secret@db/x", ["mysql://user:***@db/x", "only postgresql:// and sqlite:///"]),
    ("postgresql://postgres:secret@127.0.0.1:1/x", ["cannot reach the database", "***", "DATABASE_URL"]),
    ("sqlite:////nonexistent-h10/dir/spotcheck.db", ["/nonexistent-h10/dir does not exist"]),
])
def test_a_database_that_cannot_be_used_is_one_sentence(main, monkeypatch, url, named):
    monkeypatch.setenv("DATABASE_URL", url)
    code, out, err = main("task", "list")
    one_sentence(code, out, err, 1, *named)
    assert "secret" not in err


def test_unreachable_temporal_is_one_sentence_and_debug_shows_the_traceback(main):
    code, out, err = main("task", "show", "NOPE-0001")
    one_sentence(code, out, err, 1, "127.0.0.1:9", "spotcheck server")
    code, out, err = main("--debug", "task", "show", "NOPE-0001")
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("spotcheck task:")


def test_an_unexpected_failure_is_one_sentence(main, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("cli.register.publication_register", broken)
    code, out, err = main("publication", "export", "--year", "2025")
    one_sentence(code, out, err, 1, "ZeroDivisionError", "--debug")


def test_a_reader_that_goes_away_ends_the_command_quietly(home):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{home / 'cli.db'}", "SPOTCHECK_DATA_DIR": str(home)}
    run = subprocess.run(f"{sys.executable} {ROOT / 'starter.py'} import units {ROOT / 'examples' / 'units.csv'}"
                         " --json | head -c 0", shell=True, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "Traceback" not in run.stderr and "BrokenPipe" not in run.stderr, run.stderr
