"""runtime/progress.py: a bar on a terminal, nothing otherwise (issue 6)."""
from __future__ import annotations

import io

import pytest

from runtime.progress import Progress, enabled_for, progress


class Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    monkeypatch.delenv("SPOTCHECK_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")


def test_enabled_only_for_a_terminal_without_json(monkeypatch):
    assert enabled_for(Terminal(), json_output=False)
    assert not enabled_for(Terminal(), json_output=True)
    assert not enabled_for(io.StringIO(), json_output=False)  # piped, redirected to a file
    monkeypatch.setenv("TERM", "dumb")
    assert not enabled_for(Terminal(), json_output=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("SPOTCHECK_PROGRESS", "0")
    assert not enabled_for(Terminal(), json_output=False)


def test_a_closed_stream_counts_as_no_terminal():
    stream = io.StringIO()
    stream.close()
    assert not enabled_for(stream, json_output=False)


def test_disabled_it_writes_nothing():
    for stream in (io.StringIO(), Terminal()):
        with progress("import entities.csv", json_output=True, stream=stream) as bar:
            for n in range(0, 100_000, 10_000):
                bar.update(n)
        assert stream.getvalue() == ""


def test_on_a_terminal_it_redraws_one_line_and_ends_it():
    stream = Terminal()
    with progress("import entities.csv", json_output=False, stream=stream) as bar:
        bar.update(10_000)
        bar.update(20_000)
    text = stream.getvalue()
    assert text.startswith("\r\x1b[Kimport entities.csv [") and text.endswith("\n")
    assert text.count("\n") == 1  # drawn in place: one line in the scrollback
    final = text.rsplit("\r\x1b[K", 1)[1]
    assert "20,000/20,000 100%" in final and "rows/s" in final  # done: the bar is full


def test_a_known_total_shows_the_share():
    bar = Progress("export T-1", total=40_000, stream=Terminal())
    bar.update(10_000)
    line = bar.line(100)
    assert "10,000/40,000  25%" in line and line.count("█") == int(0.25 * (line.index("]") - line.index("[") - 1))


def test_a_failure_erases_the_line_for_the_error_message():
    stream = Terminal()
    with pytest.raises(ValueError):
        with progress("import units.csv", json_output=False, stream=stream) as bar:
            bar.update(5)
            raise ValueError("bad row")
    assert stream.getvalue().endswith("\r\x1b[K") and "\n" not in stream.getvalue()


@pytest.mark.parametrize("width", [1, 10, 20, 40, 80, 200])
def test_a_line_never_wraps(width):
    for label in ("import entities.csv", "import 景德镇市市场主体名录（二〇二五年第一批）企业.csv"):
        bar = Progress(label, stream=Terminal())
        bar.update(4_000_000)
        line = bar.line(width)
        columns = sum(2 if "\u3000" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" else 1 for c in line)
        assert columns <= max(width - 1, 1) or len(line) <= 1, (width, line)


def test_an_ascii_terminal_gets_an_ascii_bar():
    class Ascii(Terminal):
        encoding = "ascii"

    bar = Progress("x", total=2, stream=Ascii())
    bar.update(1)
    assert "#" in bar.line(80) and "█" not in bar.line(80)


def test_a_terminal_gone_stops_the_bar_not_the_command():
    class Gone(Terminal):
        def write(self, text):
            raise OSError(5, "Input/output error")

    bar = Progress("x", stream=Gone())
    bar.update(1)
    bar.close()
    assert not bar.enabled
