"""Progress bars (issue 6): on a terminal the long commands (import, draw export, draw verify) draw a
bar on stderr; with --json, or with stderr piped, they print exactly what they printed before — stdout
one document (or the summary line), stderr empty.

The terminal is a real pseudo-terminal (the `pty` module) on the child's stderr; its stdout stays a
pipe, so the bar must never reach stdout either.
"""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from db.engine import make_engine, migrate

ROOT = Path(__file__).resolve().parents[2]
BAR = "\r\x1b[K"  # each redraw starts with a carriage return and an erase-line


def environment(folder: Path) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{folder / 'cli.db'}", "SPOTCHECK_DATA_DIR": str(folder),
           "TERM": "xterm", "PYTHONIOENCODING": "utf-8"}
    env.pop("SPOTCHECK_PROGRESS", None)
    return env


def on_terminal(folder: Path, *args: str) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (80 columns) and stdout on a pipe: (exit code, stdout, terminal)."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    try:
        process = subprocess.Popen([sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=environment(folder),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, close_fds=True)
    finally:
        os.close(slave)
    seen = b""
    while True:  # until the child's end of the terminal closes (EIO) or it has gone quiet after exiting
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    stdout = process.communicate(timeout=120)[0]
    os.close(master)
    return process.returncode, stdout.decode("utf-8"), seen.decode("utf-8", "backslashreplace")


def piped(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "starter.py"), *args], cwd=ROOT, env=environment(folder),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def folder(tmp_path) -> Path:
    migrate(make_engine(f"sqlite:///{tmp_path / 'cli.db'}"))
    return tmp_path


def test_import_draws_a_bar_on_a_terminal_only(folder):
    entities = str(ROOT / "examples" / "entities.csv")
    code, stdout, terminal = on_terminal(folder, "import", "entities", entities)
    assert code == 0, terminal
    assert stdout == "entities: 3000 rows read, 3000 added, 0 changed, 0 unchanged\n"
    assert BAR + "import entities.csv [" in terminal and "rows/s" in terminal
    assert "3,000/3,000 100%" in terminal.rsplit(BAR, 1)[1]  # the last state: done
    assert "\x1b" not in stdout

    code, stdout, terminal = on_terminal(folder, "import", "entities", entities, "--json")
    assert code == 0 and terminal == ""  # --json: not a byte on the terminal
    assert json.loads(stdout)["unchanged"] == 3000

    run = piped(folder, "import", "entities", entities)
    assert run.returncode == 0 and run.stderr == ""  # piped: nothing but the summary
    assert run.stdout == "entities: 3000 rows read, 0 added, 0 changed, 3000 unchanged\n"


def test_a_refused_import_erases_the_bar_before_the_error(folder):
    code, stdout, terminal = on_terminal(folder, "import", "entities", str(ROOT / "examples" / "items.csv"))
    assert code == 2 and stdout == ""
    assert terminal.rsplit(BAR, 1)[1].startswith("spotcheck import: items.csv: line 1: missing required column")


def test_draw_export_and_verify_draw_a_bar_on_a_terminal_only(folder):
    from tests.integration.test_audit_package import build_draw

    engine = make_engine(f"sqlite:///{folder / 'cli.db'}")
    task_id = build_draw(engine).task_id
    engine.dispose()
    record, population = str(folder / "r.json"), str(folder / "p.csv")

    code, stdout, terminal = on_terminal(folder, "draw", "export", task_id, "--record", record, "--population", population)
    assert code == 0, terminal
    rows = sum(1 for _ in open(population, encoding="utf-8")) - 1
    assert BAR + f"export {task_id} [" in terminal and f"{rows:,}/{rows:,} 100%" in terminal
    assert "\x1b" not in stdout and stdout.startswith(f"draw {task_id} #1")

    code, stdout, terminal = on_terminal(folder, "draw", "verify", "--record", record, "--population", population)
    assert code == 0, stdout + terminal
    assert BAR + "verify r.json [" in terminal and f"{rows:,}/{rows:,} 100%" in terminal
    assert "\x1b" not in stdout and stdout.rstrip().endswith("verified: every check passes")

    code, stdout, terminal = on_terminal(folder, "draw", "verify", task_id, "--json")
    assert code == 0 and terminal == ""
    assert json.loads(stdout)["ok"] is True

    run = piped(folder, "draw", "verify", task_id)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert "verified: every check passes" in run.stdout
