"""Unified social credit code (统一社会信用代码), GB 32100-2015: charset and check digit."""
from __future__ import annotations

from typing import Sequence

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


# A file of a province's entities holds millions of codes: all_valid checks a batch of them with
# a few operations over whole byte strings. The weighted sum of the body, position by position,
# is added with one byte per code: the values of positions 0-7 (and of 8-15) are each at most 30,
# so their sum, at most 240, stays within its byte; it is reduced mod 31 before the next additions.
_ASCII = ALPHABET.encode("ascii")
_TERM = [bytes.maketrans(_ASCII, bytes(_VALUE[c] * w % 31 for c in ALPHABET)) for w in _WEIGHTS]
_MOD_31 = bytes(b % 31 for b in range(256))
_CHECK_CHAR = bytes(_ASCII[(31 - b % 31) % 31] for b in range(256))


def all_valid(values: Sequence[str]) -> bool:
    """Whether every value is a valid USCC (as uscc_problem would find it), for many values at once."""
    count = len(values)
    if count == 0:
        return True
    if set(map(len, values)) != {18}:
        return False
    try:
        codes = "".join(values).encode("ascii")
    except UnicodeEncodeError:
        return False
    if codes.translate(None, _ASCII):  # a character outside the charset
        return False

    def weighted(positions: range) -> int:  # one byte per code: the sum over `positions`, mod 31
        total = sum(int.from_bytes(codes[p::18].translate(_TERM[p]), "big") for p in positions)
        return int.from_bytes(total.to_bytes(count, "big").translate(_MOD_31), "big")

    total = weighted(range(0, 8)) + weighted(range(8, 16)) + weighted(range(16, 17))  # each byte at most 90
    return total.to_bytes(count, "big").translate(_CHECK_CHAR) == codes[17::18]
