"""`spotcheck`: the operator command line (contract.md), thin wiring over the command service and the read side.

Every verb that prints data accepts --json and then prints one JSON document on stdout and
nothing else. Errors go to stderr with a non-zero exit code and name the bad input.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import sys

from cli import api, draws, ops, plans, public, register, targets, tasks, users
from cli.common import EXIT_FAILED, EXIT_REFUSED, UsageError, Verbs, fail
from domain.plan import PlanInvalid
from service.imports import ImportRejected
from runtime import config
from runtime.context import Context
from store.plans import PlanConflict
from runtime.server import ServerError
from service.errors import CommandError, Refused
from service.identity import IdentityError

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
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="spotcheck", description="双随机、一公开 inspections on Temporal.")
    verbs = Verbs(root, GROUPS)
    ops.register(verbs)
    plans.register(verbs)
    tasks.register(verbs)
    targets.register_signals(verbs)
    draws.register(verbs)
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
    public.register(verbs)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = config.load()
    try:
        outcome = args.handler(args, Context(settings))
        if asyncio.iscoroutine(outcome):
            outcome = asyncio.run(outcome)
        return outcome or 0
    except UnicodeEncodeError as error:  # an argument typed in another encoding (Python surrogate-escapes it)
        bad = [_raw(a) for a in (sys.argv[1:] if argv is None else argv) if not _utf8(a)]
        fail(args, f"argument {', '.join(bad)} is not UTF-8 text; set the terminal to UTF-8" if bad else str(error))
        return EXIT_REFUSED
    except Refused as error:
        fail(args, f"refused: {error}")
        return EXIT_REFUSED
    except (CommandError, IdentityError, UsageError, PlanInvalid, ImportRejected, PlanConflict, ServerError, LookupError,
            ValueError) as error:
        fail(args, str(error))
        return EXIT_REFUSED
    except OSError as error:  # a file named on the command line: missing, a directory, not readable
        if error.filename is None and not isinstance(error, FileNotFoundError):
            raise
        where = "" if error.filename is None else f"{error.filename}: "
        fail(args, f"{where}{error.strerror or error}")
        return EXIT_REFUSED
    except RuntimeError as error:
        if "connect" in str(error).lower():
            fail(args, f"cannot reach Temporal at {settings.temporal_address}: {error}"
                       " (start it with `spotcheck server` or set TEMPORAL_ADDRESS)")
            return EXIT_FAILED
        raise
    finally:
        # A refused command's exception and traceback form a reference cycle that keeps the Temporal
        # client alive; freed only at interpreter shutdown, its Rust core then aborts the process
        # (SIGABRT, exit -6, temporalio/sdk-python#300). Free it while the interpreter is whole.
        gc.collect()


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
