"""Bounding untrusted text: what every door and validator applies to what a person typed (issue 13).

Pure. Each check returns the value it accepts or raises `TextRefused`, one line naming the field and
the cap or rule (`note is 120000 characters; the cap is 2000`); the value itself is never echoed raw.

Forbidden in every text field (`FORBIDDEN`):
- C0 controls U+0000–001F (among them ESC, so every ANSI escape sequence), DEL, C1 U+0080–009F:
  they move a terminal's cursor, recolour or erase what an operator reads;
- bidirectional overrides, embeddings, isolates and marks (U+202A–202E, U+2066–2069, U+200E,
  U+200F, U+061C): they reorder what a reviewer sees ("Trojan Source", CVE-2021-42574);
- the line and paragraph separators U+2028/2029, which break a line in JSON readers and browsers;
- lone UTF-16 surrogates: not text, neither UTF-8 nor PostgreSQL can hold them.

Refuse or strip, by field kind:
- a line (`check_line`: names, reasons, codes): every forbidden character is refused;
- a note (`check_note`: multi-line prose such as findings and review notes): line feeds and tabs are
  kept, and the carriage return of a CR LF line end is stripped (browsers send textarea lines as CR LF;
  it carries nothing). Everything else forbidden is refused, a lone CR too (it overwrites a line).
Nothing else is ever stripped: a record is evidence, and a silently changed text would make it say
what its author did not write.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

_BIDI = "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
_CONTROLS = "\x00-\x1f\x7f-\x9f"
FORBIDDEN = re.compile(f"[{_CONTROLS}{_BIDI}\u2028\u2029\ud800-\udfff]")
_FORBIDDEN_IN_NOTES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\u2028\u2029\ud800-\udfff]")

# User and inspector ids (shared/spec/api.md, draw-protocol.md).
_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")

# Evidence is `URI#sha256` (contract.md `check record --evidence`, domain/messages/target.py CheckRecord): a
# file where the bureau stores it, pinned by the hash of its content. Only these schemes name such a
# file; `javascript:`, `file:`, `data:` and the rest are refused. http is kept: bureau intranets
# serve files over it, and the hash, not the transport, vouches for the content.
EVIDENCE_SCHEMES = ("https", "http", "s3")
# A file uploaded through the API is kept in spotcheck's own store by the hash of its content:
# `evidence:{sha256}/{percent-encoded name}#{sha256}`, the same digest twice.
STORED_EVIDENCE = re.compile(r"evidence:([0-9a-f]{64})/([A-Za-z0-9._~%-]{1,255})")
EVIDENCE_CAP = 2048  # characters; the longest URL that browsers and servers commonly all accept
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHOWN_CAP = 40  # characters of a refused value shown in its message


class TextRefused(ValueError):
    """A text that may not be taken as it is; `str()` is one line: the field, then the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def check_line(value: object, field: str, cap: int) -> str:
    """One line of text of at most `cap` characters, with no forbidden character (refused, not stripped)."""
    text = _text(value, field, cap)
    _refuse_forbidden(text, field, FORBIDDEN)
    return text


def check_note(value: object, field: str, cap: int) -> str:
    """Multi-line text of at most `cap` characters: line feeds and tabs kept, CR LF stored as LF."""
    if isinstance(value, str):
        value = value.replace("\r\n", "\n")
    text = _text(value, field, cap)
    _refuse_forbidden(text, field, _FORBIDDEN_IN_NOTES)
    return text


def check_id(value: object, field: str = "id") -> str:
    """A user or inspector id: 1-32 of A-Z a-z 0-9 . _ -"""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise TextRefused(field, f"{_shown(value)}: must be 1-32 of A-Z a-z 0-9 . _ -")
    return value


def check_evidence_uri(value: object, field: str = "evidence") -> str:
    """`URI#sha256`: an https, http or s3 URI naming one file (or a file of spotcheck's own evidence
    store, `evidence:{sha256}/{name}`), then the 64 lower-case hex digits of its content's sha256. No credentials in the URI, no `.` or `..` path segment (percent-encoded
    ones too), no backslash, no space."""
    text = check_line(value, field, EVIDENCE_CAP)
    shown = _shown(text)
    uri, hashed, digest = text.rpartition("#")
    if not hashed:
        raise TextRefused(field, f"{shown}: must be URI#sha256 (the file's URI, #, its sha256)")
    if not _SHA256.fullmatch(digest):
        raise TextRefused(field, f"{shown}: after the last # must come the file's sha256, 64 lower-case hex digits")
    if "#" in uri:
        raise TextRefused(field, f"{shown}: holds more than one #")
    stored = STORED_EVIDENCE.fullmatch(uri)
    if stored:
        name = unquote(stored.group(2))
        if stored.group(1) != digest:
            raise TextRefused(field, f"{shown}: a stored file is named by its own sha256, twice the same")
        if name in (".", "..") or "/" in name or "\\" in name:
            raise TextRefused(field, f"{shown}: names no single file")
        return text
    scheme = _SCHEME.match(uri)
    if scheme is None or scheme.group(1).lower() not in EVIDENCE_SCHEMES:
        named = f"scheme {scheme.group(1)}:" if scheme else "no scheme"
        raise TextRefused(field, f"{shown}: {named} is refused; evidence is a file at "
                                 f"{', '.join(s + '://' for s in EVIDENCE_SCHEMES)} (URI#sha256)")
    rest = uri[scheme.end():]
    if not rest.startswith("//"):
        raise TextRefused(field, f"{shown}: must name a host or bucket after {scheme.group()}//")
    authority, _, path = rest[2:].partition("/")
    path = path.partition("?")[0]
    if re.search(r"\s|\\", uri):
        raise TextRefused(field, f"{shown}: a URI holds no space or backslash (percent-encode a space as %20)")
    if "@" in authority:
        raise TextRefused(field, f"{shown}: carries credentials (user@host); an evidence URI names no account")
    if not _HOST.fullmatch(authority):
        raise TextRefused(field, f"{shown}: the host or bucket {_shown(authority)} is not a name")
    segments = re.split(r"[/\\]", unquote(path))
    if {".", ".."} & set(segments):
        raise TextRefused(field, f"{shown}: has a . or .. path segment; evidence names one file, never a way "
                                 "up or around a directory")
    if not segments[-1]:
        raise TextRefused(field, f"{shown}: names no file (the path is empty or ends with /)")
    return text


def for_terminal(text: str) -> str:
    """`text` safe to print: every forbidden character and the backslash shown as a Python escape
    (`\\x1b`, `\\u202e`, `\\n`, `\\\\`), so an escape sequence is seen, never obeyed, and what is shown
    reads back unambiguously."""
    return _UNSAFE_TO_PRINT.sub(_escape, text)


_UNSAFE_TO_PRINT = re.compile(f"{FORBIDDEN.pattern}|\\\\")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


def _text(value: object, field: str, cap: int) -> str:
    if not isinstance(value, str):
        raise TextRefused(field, f"must be text, not {type(value).__name__}")
    if len(value) > cap:
        raise TextRefused(field, f"is {len(value)} characters; the cap is {cap}")
    return value


def _refuse_forbidden(text: str, field: str, forbidden: re.Pattern[str]) -> None:
    found = forbidden.search(text)
    if found is None:
        return
    char = found.group()
    name = unicodedata.name(char, "")
    if char == "\r":
        why = "a carriage return, which overwrites a line on a terminal"
    elif char in "\n\t":
        why = "a line break or tab; this field is one line"
    elif name:
        why = f"{name}, a bidirectional or line control that reorders or breaks what a reader sees"
    elif "\ud800" <= char <= "\udfff":
        why = "a lone UTF-16 surrogate, which is not text"
    else:
        why = "a control character (terminal escape sequences start with one)"
    raise TextRefused(field, f"holds U+{ord(char):04X} at character {found.start() + 1}: {why}; it is refused")


def _shown(value: object) -> str:
    if not isinstance(value, str):
        return f"({type(value).__name__})"
    cut = value[:_SHOWN_CAP]
    return '"' + for_terminal(cut) + ('…"' if len(value) > _SHOWN_CAP else '"')
