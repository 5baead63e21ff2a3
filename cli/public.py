"""The public side's doors: `public build` (the static site), `notice inspection|result` (the signed PDFs),
and the register's changes after publication: `publication correct` (更正) and `publication stop-*` (R27).

The site's files and the notice keys are public/site.py's, shared with the pages `spotcheck api` serves.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from cli.common import UsageError, Verbs, emit, output_path, person
from cli.register import write_atomically
from domain.workdays import SHANGHAI
from public.site import files as site_files
from public.site import notice_public_keys, signing_key
from read.notices import KINDS, notice
from service import corrections, stop_publication

SITE_URL = "SPOTCHECK_PUBLIC_URL"  # where the public site is served: the QR code then opens its checker
BUILT_MARK = ".spotcheck-public"  # a directory with this file was written by `public build` and may be replaced


def cmd_public_build(args, ctx):
    out = Path(args.out).resolve()
    if out.exists() and not (out / BUILT_MARK).is_file():
        raise UsageError(f"--out {args.out}: exists and was not written by `spotcheck public build`; "
                         "name a new directory or a previous build")
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: directory {out.parent} does not exist")
    keys = notice_public_keys()
    with ctx.engine().connect() as connection:
        files = site_files(connection, keys)
    files[BUILT_MARK] = "written by spotcheck public build\n"
    replace_directory(out, files)
    emit(args, {"path": str(out), "files": len(files) - 1, "notice_keys": sorted(keys)}, str(out))


def cmd_notice(args, ctx):
    out = output_path("--out", args.out)
    key = signing_key()
    issued = datetime.now(SHANGHAI).date()
    with ctx.engine().connect() as connection:
        made = notice(connection, args.kind, args.task_id, args.uscc, key=key, issued=issued,
                      site_url=args.site_url or os.environ.get(SITE_URL))
    write_atomically(out, made.pdf)
    emit(args, {"kind": made.kind, "path": str(out), "bytes": len(made.pdf), "token": made.token}, str(out))


async def cmd_correct(args, ctx):
    done = await corrections.correct(ctx, person(ctx), args.task_id, args.uscc, category=args.category,
                                     note=args.note, reason=args.reason)
    emit(args, {"workflow_id": done.workflow_id, "correction": done.n, "already_started": done.already_started,
                "message": done.message}, done.message)


async def cmd_stop_apply(args, ctx):
    message = await stop_publication.apply(ctx, person(ctx), args.task_id, args.uscc, applicant=args.applicant,
                                           grounds=args.grounds)
    emit(args, {"message": message}, message)


async def cmd_stop_decide(args, ctx):
    message = await stop_publication.decide(ctx, person(ctx), args.task_id, args.uscc, approve=args.approve,
                                            reason=args.reason)
    emit(args, {"message": message}, message)


async def cmd_stop_status(args, ctx):
    status = await stop_publication.status(ctx, args.task_id, args.uscc)
    emit(args, status.model_dump(mode="json"), " ".join(f"{k}={v}" for k, v in status.model_dump(mode="json").items()
                                                         if v is not None))


def replace_directory(out: Path, files: dict[str, str]) -> None:
    """Write the site into a fresh sibling directory, then swap it in: a reader sees the old site or the
    new one, never half of one (between the two renames, briefly, no site at all)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, text in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o755)
        retired = None
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(retired / "site")
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if retired is not None:
        shutil.rmtree(retired)


def register(verbs: Verbs) -> None:
    p = verbs.add("public", "build", cmd_public_build, "write the public site (公示) as static files")
    p.add_argument("--out", required=True, metavar="DIR")
    for kind, title in KINDS.items():
        p = verbs.add("notice", kind, cmd_notice, f"the {kind} notice ({title}) of a target, as PDF, signed")
        p.set_defaults(kind=kind)
        p.add_argument("task_id")
        p.add_argument("uscc")
        p.add_argument("--out", required=True, metavar="notice.pdf")
        p.add_argument("--site-url", help=f"the public site's address for the QR code (default ${SITE_URL})")
    p = verbs.add("publication", "correct", cmd_correct, "correct a published result (更正; a supervisor of its unit, "
                  "logged in, approves it by giving it); the register keeps both")
    _target(p)
    p.add_argument("--category", help="the corrected result category")
    p.add_argument("--note", help="the corrected note, as published")
    p.add_argument("--reason", required=True)
    p = verbs.add("publication", "stop-apply", cmd_stop_apply, "record an entity's application to stop publishing "
                  "its result (R27; staff of the result's unit, logged in)")
    _target(p)
    p.add_argument("--applicant", required=True, help="the entity's representative, as named on the application")
    p.add_argument("--grounds", required=True)
    p = verbs.add("publication", "stop-decide", cmd_stop_decide, "decide on a stop-publication application "
                  "(a supervisor of the result's unit, logged in)")
    _target(p)
    choice = p.add_mutually_exclusive_group(required=True)
    choice.add_argument("--approve", dest="approve", action="store_true")
    choice.add_argument("--reject", dest="approve", action="store_false")
    p.add_argument("--reason", default="")
    p = verbs.add("publication", "stop-status", cmd_stop_status, "a stop-publication application and its dates")
    _target(p)


def _target(p) -> None:
    p.add_argument("task_id")
    p.add_argument("uscc")
