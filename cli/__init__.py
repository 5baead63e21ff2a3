"""`spotcheck`: the operator command line (contract.md), thin wiring over the command service and the read side.

Every verb that prints data accepts --json and then prints one JSON document on stdout and
nothing else. Errors go to stderr with a non-zero exit code and name the bad input.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import traceback

from temporalio.service import RPCError

from cli import api, approvals, draws, login, ops, plans, projection, public, register, targets, tasks, users
from cli.common import EXIT_FAILED, EXIT_REFUSED, UsageError, Verbs, fail, for_stderr
from db.engine import DatabaseUnavailable
from domain.plan import PlanInvalid
from runtime import config
from runtime.context import Context
from runtime.server import ServerError
from service.errors import CommandError, Refused
from service.identity import IdentityError
from service.imports import ImportRejected
from store.plans import PlanConflict

GROUPS = {
    "plan": "the annual plan",
    "task": "inspection tasks",
    "draw": "the verifiable draw",
    "dispatch": "inspector dispatch",
    "check": "the on-site check",
    "result": "results",
    "publication": "the public register",
    "case": "follow-ups",
    "archive": "the hash-chained history archive in the project database",
    "user": "local accounts (api.md)",
    "public": "the public site (公示)",
    "notice": "the signed inspection and result notices",
    "projection": "the projection tables, rebuilt from the event histories",
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="spotcheck", description="双随机、一公开 inspections on Temporal.")
    root.add_argument("--debug", action="store_true", help="on a failure, print its traceback too")
    verbs = Verbs(root, GROUPS)
    ops.register(verbs)
    plans.register(verbs)
    tasks.register(verbs)
    targets.register_signals(verbs)
    draws.register(verbs)
    approvals.register(verbs)
    targets.register_assign(verbs)
    draws.register_dispatch_export(verbs)
    targets.register(verbs)
    register.register_publication(verbs)
    register.register_cases(verbs)
    targets.register_recheck(verbs)
    ops.register_archive(verbs)
    register.register_figures(verbs)
    ops.register_demo(verbs)
    api.register(verbs)
    users.register(verbs)
    login.register(verbs)
    public.register(verbs)
    projection.register(verbs)
    return root


def main(argv: list[str] | None = None) -> int:
    """One error path: every failure is one sentence on stderr naming the input and what to do, with exit code 2
    for what the operator must correct and 1 for what failed; `--debug` prints the traceback as well."""
    args = parser().parse_args(argv)
    try:
        return _run(args, argv)
    except BrokenPipeError:  # `spotcheck … | head`: the reader has gone; nothing is left to say to it
        with contextlib.suppress(OSError, ValueError):  # and Python's own flush at exit must not complain either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    finally:
        # A refused command's exception and traceback form a reference cycle that keeps the Temporal
        # client alive; freed only at interpreter shutdown, its Rust core then aborts the process
        # (SIGABRT, exit -6, temporalio/sdk-python#300). Free it while the interpreter is whole.
        gc.collect()


def _run(args, argv: list[str] | None) -> int:
    settings = config.load()
    try:
        outcome = args.handler(args, Context(settings))
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
        sys.stdout.flush()  # here, so that a reader that has gone is a BrokenPipeError of this command
        return outcome or 0
    except BrokenPipeError:
        raise
    except Exception as error:  # every failure ends as one sentence; with --debug, its traceback first
        if args.debug:
            traceback.print_exc()
        code, sentence = _sentence(error, args, argv, settings)
        fail(args, sentence)
        return code


def _sentence(error: BaseException, args, argv: list[str] | None, settings) -> tuple[int, str]:
    """The exit code and the one sentence for a failure."""
    if isinstance(error, UnicodeEncodeError):  # an argument typed in another encoding (Python surrogate-escapes it)
        bad = [_raw(a) for a in (sys.argv[1:] if argv is None else argv) if not _utf8(a)]
        return EXIT_REFUSED, (f"argument {', '.join(bad)} is not UTF-8 text; set the terminal to UTF-8" if bad
                              else str(error))
    if isinstance(error, Refused):
        return EXIT_REFUSED, f"refused: {error}"
    if isinstance(error, (CommandError, IdentityError, UsageError, PlanInvalid, ImportRejected, PlanConflict, ServerError,
                          LookupError, ValueError)):
        return EXIT_REFUSED, str(error)
    if isinstance(error, DatabaseUnavailable):
        return EXIT_FAILED, str(error)
    if isinstance(error, OSError) and error.filename is not None:  # a file named on the command line
        # A file name is one value: a line break in it is escaped too, not taken as the message's next line.
        return EXIT_REFUSED, f"{for_stderr(str(error.filename))}: {error.strerror or error}"
    if isinstance(error, FileNotFoundError):
        return EXIT_REFUSED, str(error)
    if isinstance(error, RPCError):
        return EXIT_FAILED, (f"Temporal at {settings.temporal_address} answered {error.status.name}: "
                             f"{_first_line(error.message)}; check the server (`spotcheck server`) and try again")
    if isinstance(error, RuntimeError) and "connect" in str(error).lower():
        return EXIT_FAILED, (f"cannot reach Temporal at {settings.temporal_address}: {_first_line(str(error))}"
                             " (start it with `spotcheck server` or set TEMPORAL_ADDRESS)")
    return EXIT_FAILED, (f"failed: {type(error).__name__}: {_first_line(str(error))}; "
                         "run again with --debug for the traceback")


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return (lines[0][:300] if lines else "") or "(no message)"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raw(text: str) -> str:
    """An argument as the bytes typed, e.g. b'\\xd5\\xc5' for GBK."""
    try:
        return repr(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return ascii(text)
