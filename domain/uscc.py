"""Unified social credit code (统一社会信用代码), GB 32100-2015: charset and check digit."""
from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


class InvalidUSCC(ValueError):
    pass


def check_char(body: str) -> str:
    """The 18th character for a 17-character body."""
    if len(body) != 17:
        raise InvalidUSCC(f"USCC body {body!r} must be 17 characters of {ALPHABET}")
    try:  # one pass: the lookup itself rejects a character outside the charset (this runs per row of a draw)
        total = sum(map(int.__mul__, map(_VALUE.__getitem__, body), _WEIGHTS))
    except KeyError:
        raise InvalidUSCC(f"USCC body {body!r} must be 17 characters of {ALPHABET}") from None
    return ALPHABET[(31 - total % 31) % 31]


def uscc_problem(value: str) -> str | None:
    """Why `value` is not a valid USCC, or None when it is."""
    if len(value) != 18:
        return f"must be 18 characters, got {len(value)}"
    try:  # the valid case first, in one pass: imports check millions of rows
        expected = check_char(value[:17])
    except InvalidUSCC:
        expected = None
    if expected is None or value[17] not in _VALUE:
        bad = sorted({c for c in value if c not in _VALUE})
        return f"characters {''.join(bad)!r} are not in the GB 32100-2015 charset"
    if value[17] != expected:
        return f"check digit is {value[17]!r}, expected {expected!r}"
    return None


def make_uscc(body: str) -> str:
    """A valid USCC from a 17-character body (synthetic directories, tests)."""
    return body + check_char(body)
