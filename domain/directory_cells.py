"""The cells of a directory file: one rule per kind of column, and the fast path's whole-column checks.

A rule takes a stripped cell and returns the value to store, or raises Bad with the reason (the
import's error listing shows it). Pure: no I/O; directory_rows.py puts the rules to columns.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Callable, Sequence

from domain.uscc import all_valid, uscc_problem


class Bad(Exception):
    """A cell's value is not acceptable; the message is the reason."""


# Rule -> check of a whole column of clean cells (see "clean columns" below).
CLEAN: dict[Callable[[str], object], Callable[[Sequence[str]], bool]] = {}


_TAG = re.compile(r"[A-Za-z0-9._-]{1,32}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RATIO = re.compile(r"0(\.[0-9]{1,6})?|1(\.0{1,6})?")
TAG_RULE = "1-32 ASCII characters from A-Z a-z 0-9 . _ -"


def tag(raw: str) -> str:
    """Codes, tags and labels: every identifier in these files except names."""
    if _TAG.fullmatch(raw) is None:
        raise Bad(f"must be {TAG_RULE}")
    return raw


def optional_tag(raw: str) -> str | None:
    return tag(raw) if raw else None


def industry(raw: str) -> str:
    # A GB/T 4754 code (at most 5 characters) fits the 8-character column; empty: not classified.
    if raw and (len(raw) > 8 or _TAG.fullmatch(raw) is None):
        raise Bad("must be an industry code of 1-8 ASCII characters from A-Z a-z 0-9 . _ -, or empty")
    return raw


def free_text(raw: str) -> str:
    if "\x00" in raw:
        raise Bad("must not contain a NUL character")
    return raw


def name(raw: str) -> str:
    if not raw:
        raise Bad("must not be empty")
    return free_text(raw)


def cert_no(raw: str) -> str:
    if len(raw) > 64:
        raise Bad("must be at most 64 characters")
    return name(raw)


def region(raw: str) -> str:
    if len(raw) != 6 or not raw.isdigit() or not raw.isascii():  # isdigit alone takes '３' and '²'
        raise Bad("must be a 6-digit division code")
    return raw


def uscc(raw: str) -> str:
    problem = uscc_problem(raw)
    if problem:
        raise Bad(f"not a valid USCC: {problem}")
    return raw


def iso_date(raw: str) -> date:
    if _ISO_DATE.fullmatch(raw) is None:
        raise Bad("must be an ISO date YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise Bad(f"must be an ISO date YYYY-MM-DD ({exc})") from None


def optional_iso_date(raw: str) -> date | None:
    return iso_date(raw) if raw else None


def ratio(raw: str) -> str | None:
    if not raw:
        return None
    if _RATIO.fullmatch(raw) is None:
        raise Bad("must be an exact ratio from 0 to 1 with at most 6 decimals, such as 0.05")
    return raw


def one_of(*allowed: str) -> Callable[[str], str]:
    choices = frozenset(allowed)
    listing = ", ".join(repr(a) for a in allowed)

    def parse(raw: str) -> str:
        if raw not in choices:
            raise Bad(f"must be one of {listing}")
        return raw

    CLEAN[parse] = choices.issuperset
    return parse


def flag(default: bool) -> Callable[[str], bool]:
    def parse(raw: str) -> bool:
        if raw == "true":
            return True
        if raw == "false":
            return False
        if raw == "":
            return default
        raise Bad(f"must be true or false (empty: {'true' if default else 'false'})")

    return parse


def _members(raw: str) -> list[str]:
    return sorted({member.strip() for member in raw.split(";")} - {""})


def _list_of(member: Callable[[str], object], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not raw:
            return ""
        members = _members(raw)
        bad = []
        for value in members:
            try:
                member(value)
            except Bad:
                bad.append(value)
        if bad:
            raise Bad(f"{', '.join(repr(b) for b in bad)} {'is' if len(bad) == 1 else 'are'} not {what}")
        return ";".join(members)

    return parse


_TAG_LIST = re.compile(r"[A-Za-z0-9._-]{1,32}(?:;[A-Za-z0-9._-]{1,32})*")
_tag_list = _list_of(tag, f"tags ({TAG_RULE})")


def tags(raw: str) -> str:
    # Labels are on every entity row: a list already clean (no spaces, no empty members) is
    # recognised by one regex; anything else takes the general path, which names the bad members.
    if not raw or _TAG_LIST.fullmatch(raw) is None:
        return _tag_list(raw)
    return raw if ";" not in raw else ";".join(sorted(set(raw.split(";"))))


usccs = _list_of(uscc, "valid USCCs")


def subset_of(*allowed: str, default: str | None = None) -> Callable[[str], str]:
    """A non-empty ';'-list drawn from `allowed`; an empty cell means `default` (or is an error)."""
    member = one_of(*allowed)
    checked = _list_of(member, f"one of {', '.join(allowed)}")

    def parse(raw: str) -> str:
        value = checked(raw)
        if value:
            return value
        if default is None:
            raise Bad(f"must list at least one of {', '.join(allowed)}")
        return default

    return parse


# --- clean columns: what the fast path checks ---------------------------------------------------
# Most rows of a big file are clean: every cell valid and already as it is stored (stripped, a list
# sorted). For a rule whose clean cells are stored exactly as written, CLEAN holds a check of a
# whole column at once, True when every cell is clean; those cells are then staged as they are
# (RowChecker.clean). The checks are only given cells without '"', NUL, CR or LF.
_TAG_CHARS = re.compile(r"[A-Za-z0-9._-]*")
_TAG_LISTS = re.compile(rf"(?:{_TAG_LIST.pattern})?(?:\n(?:{_TAG_LIST.pattern})?)*")


def _stripped(cells: Sequence[str]) -> bool:
    return all(map(str.__eq__, cells, map(str.strip, cells)))


def _clean_tags(cells: Sequence[str]) -> bool:
    return min(map(len, cells)) >= 1 and max(map(len, cells)) <= 32 and _TAG_CHARS.fullmatch("".join(cells)) is not None


def _clean_industries(cells: Sequence[str]) -> bool:
    return max(map(len, cells)) <= 8 and _TAG_CHARS.fullmatch("".join(cells)) is not None


def _clean_names(cells: Sequence[str]) -> bool:
    return "" not in cells and _stripped(cells)


def _clean_regions(cells: Sequence[str]) -> bool:
    digits = "".join(cells)
    return set(map(len, cells)) == {6} and digits.isascii() and digits.isdigit()


def _in_order(members: list[str]) -> bool:
    return all(a < b for a, b in zip(members, members[1:]))


def _clean_tag_lists(cells: Sequence[str]) -> bool:
    # A list is clean when its members are already sorted and distinct; each distinct list once.
    return _TAG_LISTS.fullmatch("\n".join(cells)) is not None and all(
        _in_order(value.split(";")) for value in set(cells) if ";" in value
    )


CLEAN.update({
    tag: _clean_tags,
    industry: _clean_industries,
    free_text: _stripped,
    name: _clean_names,
    region: _clean_regions,
    uscc: all_valid,
    tags: _clean_tag_lists,
})
