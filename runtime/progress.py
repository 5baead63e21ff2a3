"""Progress of a long command (import, draw export, draw verify) on stderr.

A bar with the count and the rate, redrawn in place, when stderr is a terminal and --json is off;
nothing at all otherwise, so a piped or --json run prints exactly what it printed before: stdout
stays one document and stderr holds only errors. `SPOTCHECK_PROGRESS=0` turns it off on a
terminal too. No dependency: carriage returns and one erase-line code.

    with progress("import entities.csv", unit="rows", json_output=args.json) as bar:
        import_directory(..., progress=bar.update)
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import unicodedata
from typing import TextIO

_ERASE = "\r\x1b[K"  # back to column 1, erase the line: an error printed next starts clean
_INTERVAL = 0.1  # seconds between redraws: cheap to call per row
_TEXT = 36  # columns kept for the count and the rate


def enabled_for(stream: TextIO, json_output: bool) -> bool:
    """A bar only for a person watching: a terminal, no --json, not a dumb terminal, not turned off."""
    if json_output or os.environ.get("SPOTCHECK_PROGRESS") == "0":
        return False
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """A count towards an optional total, drawn as `label [████░░░░] 1,234/5,000 25% 812 rows/s`.

    `update(done, total=None)` sets the count (the importer's `progress(rows)` callback fits);
    `advance(n)` adds to it. Disabled, every call returns at once and nothing is written.
    """

    def __init__(self, label: str, *, unit: str = "rows", total: int | None = None, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.label = label
        self.unit = unit
        self.total = total
        self.done = 0
        self.enabled = enabled
        self._stream = stream if stream is not None else sys.stderr
        self._started = time.monotonic()
        self._drawn_at = 0.0
        self._bar = "█░" if "utf" in (getattr(self._stream, "encoding", "") or "").lower() else "#-"

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close(failed=kind is not None)

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        self._draw()

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)

    def close(self, failed: bool = False) -> None:
        """The final state on its own line; on a failure the line is erased for the error message."""
        if not self.enabled:
            return
        if failed:
            self._write(_ERASE)
        else:
            self.total = self.total or self.done  # done: a full bar, whether the total was known or not
            self._draw(force=True)
            self._write("\n")
        self.enabled = False

    # --- drawing ----------------------------------------------------------------------------
    def line(self, width: int = 80) -> str:
        """The bar as drawn, fitted to `width` columns."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = f"{self.done / elapsed:,.0f} {self.unit}/s"
        if self.total:
            share = min(self.done / self.total, 1.0)
            count = f"{self.done:,}/{self.total:,} {share:4.0%}"
        else:  # no total known: a block that moves, so the bar still shows life
            share = None
            count = f"{self.done:,} {self.unit}"
        text = f" {count} {rate}"
        label = _fit(self.label, max(width // 2, 8))
        room = min(width - _columns(label) - max(len(text), _TEXT) - 4, 30)  # the bar keeps its width as counts grow
        if room < 5:  # a narrow terminal: no bar, and never a wrapped line (\r could not return over it)
            return _fit(f"{label}{text}", max(width - 1, 1))
        full, empty = self._bar
        if share is None:
            at = int(elapsed * 8) % room
            bar = empty * at + full + empty * (room - at - 1)
        else:
            filled = int(share * room)
            bar = full * filled + empty * (room - filled)
        return f"{self.label} [{bar}]{text}"

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < _INTERVAL:
            return
        self._drawn_at = now
        self._write(_ERASE + self.line(self._width()))

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        return columns or shutil.get_terminal_size((80, 24)).columns  # a terminal of unknown size reports 0

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: the command itself goes on
            self.enabled = False


def _columns(text: str) -> int:
    """Terminal columns: CJK characters (a file named 企业.csv) take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fit(text: str, columns: int) -> str:
    if _columns(text) <= columns:
        return text
    while text and _columns(text) > columns - 1:
        text = text[:-1]
    return text + "…"


def progress(label: str, *, json_output: bool, unit: str = "rows", total: int | None = None,
             stream: TextIO | None = None) -> Progress:
    """A Progress on stderr (or `stream`), enabled only for a terminal without --json."""
    stream = stream if stream is not None else sys.stderr
    return Progress(label, unit=unit, total=total, enabled=enabled_for(stream, json_output), stream=stream)
