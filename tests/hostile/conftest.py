"""The hostile-input tests (issue 13): starter.main in this process against a SQLite data dir with the examples."""
from __future__ import annotations

import contextlib
import io
from datetime import datetime, timezone
from pathlib import Path

import pytest

from db.engine import make_engine, migrate
from service.imports import import_directory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path) -> Path:
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    migrate(engine)
    for kind in ("units", "items"):
        import_directory(engine, kind, ROOT / "examples" / f"{kind}.csv", now=datetime.now(timezone.utc))
    engine.dispose()
    return tmp_path


@pytest.fixture
def main(home, monkeypatch):
    """starter.main(argv) here: (exit code, stdout, stderr); Temporal is unreachable (127.0.0.1:9)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{home / 'cli.db'}")
    monkeypatch.setenv("SPOTCHECK_DATA_DIR", str(home))
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:9")
    import starter

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = starter.main(list(argv))
            except SystemExit as exit_:
                code = exit_.code
        return code, out.getvalue(), err.getvalue()

    return run


def one_sentence(code: int, out: str, err: str, expected_code: int, *named: str) -> None:
    """A failure: the exit code, nothing on stdout, one line on stderr naming what it must, no traceback."""
    assert code == expected_code, (code, err)
    assert out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for part in named:
        assert part in err, (part, err)
