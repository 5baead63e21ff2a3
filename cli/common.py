"""What every verb shares: the acting identity, output, argument types and the errors a person corrects."""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from domain.access import Actor
from domain.text import FORBIDDEN, for_terminal
from runtime import config
from service import identity
from service.identity import LocalTokens

EXIT_REFUSED = 2  # bad input or a refused command: nothing changed
EXIT_FAILED = 1
LINE_CAP = 1000  # characters of one line of an error: a huge argument is named by its start, not echoed whole


class UsageError(Exception):
    """A command the operator must correct; printed without a traceback."""


def operator(identity: str | None = None) -> Actor:
    """The local operator of the operator verbs (plans, draws, imports, archive): whoever can run this shell
    against the project database. A human step never acts as them: see `person`."""
    return Actor(id=identity or "operator", roles=frozenset(), unit=None, method="cli-local")


# --- the logged-in user (`spotcheck login`) -----------------------------------------------------------
TOKEN_ENV = "SPOTCHECK_TOKEN"  # for scripts: a token from `spotcheck login --print-token`
LOGIN_HOURS = 10  # a CLI login lasts a working day; the user's status is read again at every command


def login_tokens(settings) -> LocalTokens:
    """The CLI's logins: signed with the API's key, under their own issuer, so neither door takes the other's."""
    try:
        return LocalTokens(secret=config.token_secret(settings.data_dir), ttl=timedelta(hours=LOGIN_HOURS),
                           issuer="spotcheck-cli")
    except ValueError as error:
        raise UsageError(f"SPOTCHECK_API_SECRET: {error}") from None


def token_file() -> Path:
    """$XDG_CONFIG_HOME/spotcheck/token, else ~/.config/spotcheck/token (kept 0600)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "spotcheck" / "token"


def person(ctx) -> Actor:
    """Who acts in a human step (check, result, review, assignment, field signals): the logged-in user, as the
    directory and their account stand now (method `cli-local`). No flag chooses the actor."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        try:
            token = token_file().read_text().strip()
        except FileNotFoundError:
            raise UsageError(f"not logged in: run `spotcheck login ID` (or set {TOKEN_ENV})") from None
    try:
        return identity.actor_from_access_token(ctx.engine(), token, login_tokens(ctx.settings), "cli-local")
    except identity.TokenRejected as error:
        if error.rule == "expired":
            raise UsageError("your login has expired: run `spotcheck login ID` again") from None
        raise


def year(text: str) -> int:
    """--year: a plan year (2000-2999, as in the plan file)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a year (YYYY)") from None
    if not 2000 <= value <= 2999:
        raise argparse.ArgumentTypeError(f"{text[:40]} is not a year from 2000 to 2999")
    return value


def draw_seq(text: str) -> int:
    """--draw-seq: a draw's number (1, 2, …)."""
    try:
        seq = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a draw number (1, 2, …)") from None
    if not 1 <= seq <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text[:40]} is not a draw number (1, 2, …)")
    return seq


def output_path(option: str, value: str) -> Path:
    """A file a command writes: checked before anything is read or written."""
    path = Path(value).resolve()
    if path.is_dir():
        raise UsageError(f"{option} {value}: is a directory; name the file to write")
    if not path.parent.is_dir():
        raise UsageError(f"{option} {value}: directory {path.parent} does not exist")
    return path


def shown(value: object) -> str:
    """A stored or typed value in a line printed to a terminal: its escapes shown, never obeyed (domain.text)."""
    return "" if value is None else for_terminal(str(value))


def emit(args, data, text: str | None = None) -> None:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, default=str, indent=1))
    elif text is not None:
        print(text)
    else:
        print(json.dumps(data, ensure_ascii=False, default=str, indent=2))


def for_stderr(line: str) -> str:
    """Control and bidi characters as their escapes; a lone surrogate (a non-UTF-8 file name) is left to
    stderr's own backslashreplace, which shows it the same way."""
    return FORBIDDEN.sub(lambda c: c.group() if "\ud800" <= c.group() <= "\udfff" else for_terminal(c.group()), line)


def fail(args, message: str) -> None:
    """The error on stderr: each line's control and bidi characters shown as escapes, and a long line clipped."""
    lines = [for_stderr(line) for line in message.split("\n")]
    lines = [line if len(line) <= LINE_CAP else f"{line[:LINE_CAP]}… ({len(line)} characters)" for line in lines]
    print(f"spotcheck {args.verb}: " + "\n".join(lines), file=sys.stderr)


class Verbs:
    """The parser's verbs: `add(group, name, handler, help)` puts a verb at the top (group None) or in a group."""

    def __init__(self, root: argparse.ArgumentParser, groups: dict[str, str]) -> None:
        self._top = root.add_subparsers(dest="verb", required=True)
        self._help = groups
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def add(self, group: str | None, name: str, handler, help_text: str,
            json_flag: bool = True) -> argparse.ArgumentParser:
        p = self._parent(group).add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON document")
        return p

    def _parent(self, group: str | None):
        if group is None:
            return self._top
        if group not in self._groups:
            self._groups[group] = self._top.add_parser(group, help=self._help[group]).add_subparsers(
                dest="sub", required=True)
        return self._groups[group]
