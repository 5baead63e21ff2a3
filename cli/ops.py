"""Operators' verbs: the embedded server, the workers, the codec server, the history archive, the demo."""
from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import worker
from cli.common import EXIT_FAILED, UsageError, Verbs, emit, fail, operator
from cli.demo import run_demo
from cli.demo_api import DemoStopped
from runtime import logs
from runtime.codec import codec_for
from runtime.codec_server import DEFAULT_CORS_ORIGIN, CodecServer
from runtime.server import run_server
from service import archive


def cmd_server(args, ctx):
    return asyncio.run(run_server(Path(args.data_dir or ctx.settings.data_dir), port=args.port, ui_port=args.ui_port))


def cmd_worker(args, ctx):
    return worker.main(["--queue", args.queue] if args.queue else [])


def cmd_codec_server(args, ctx):
    codec = codec_for(ctx.settings)
    if codec is None:
        raise UsageError("SPOTCHECK_CODEC_KEYS is not set: no key to encode or decode with (docs/codec.md)")
    logs.configure()
    try:
        server = CodecServer(codec, ctx.settings.codec_token, host=args.host, port=args.port,
                             cors_origins=args.cors_origin or [DEFAULT_CORS_ORIGIN])
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error}") from error
    server.serve()


async def cmd_archive_run(args, ctx):
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise UsageError(f"--since {args.since!r}: not an ISO 8601 instant "
                             "(e.g. 2025-03-01T00:00:00+08:00)") from None
        if since.tzinfo is None:
            raise UsageError(f"--since {args.since!r}: give the time zone (e.g. +08:00 or Z)")
    total = await archive.run_archive(ctx, operator(), since=since,
                                      full=args.full)
    emit(args, total.model_dump(mode="json"),
         f"archived {total.archived} histories ({total.already} already archived, {total.gone} gone "
         f"from the server first); chain head: "
         + (f"entry {total.head_seq} {total.head_hash}" if total.head_seq is not None else "empty"))


async def cmd_archive_schedule(args, ctx):
    result = await archive.schedule_archive(ctx, operator(), cron=args.cron, time_zone=args.tz)
    zone = ZoneInfo(result.time_zone)
    times = ", ".join(t.astimezone(zone).strftime("%Y-%m-%d %H:%M") for t in result.next_action_times[:3])
    emit(args, result.as_json(),
         f"schedule {result.schedule_id} {'created' if result.created else 'updated'}: cron {result.cron!r} "
         f"{result.time_zone}" + (" (paused)" if result.paused else "")
         + f"\nnext runs ({result.time_zone}): {times or 'none'}")


def cmd_demo(args, ctx):
    try:
        return asyncio.run(run_demo(ctx.settings, json_output=args.json))
    except DemoStopped as error:  # the worker or the API stopped: say so, no traceback
        fail(args, str(error))
        return EXIT_FAILED


def register(verbs: Verbs) -> None:
    p = verbs.add(None, "server", cmd_server, "start the embedded Temporal server", json_flag=False)
    p.add_argument("--port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=8233)
    p.add_argument("--data-dir")
    p = verbs.add(None, "worker", cmd_worker, "run the workers", json_flag=False)
    p.add_argument("--queue")
    p = verbs.add(None, "codec-server", cmd_codec_server, "decode/encode payloads for the Web UI and CLI "
                  "(--codec-endpoint; docs/codec.md)", json_flag=False)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--cors-origin", action="append", metavar="URL",
                   help="a Web UI origin allowed to call it (repeatable; default http://127.0.0.1:8233)")


def register_archive(verbs: Verbs) -> None:
    p = verbs.add("archive", "run", cmd_archive_run, "archive the histories of closed workflows now (what the "
                  "Schedule history-archive runs)")
    p.add_argument("--since", metavar="INSTANT", help="only workflows closed after this ISO 8601 instant "
                   "(default: since the archive's newest entry, less a day; everything when it is empty)")
    p.add_argument("--full", action="store_true", help="list every closed workflow the server still has")
    p = verbs.add("archive", "schedule", cmd_archive_schedule, "create or update the Schedule history-archive "
                  "(hourly by default; a paused schedule stays paused)")
    p.add_argument("--cron", help='when it runs (default "17 * * * *": hourly)')
    p.add_argument("--tz", help="the cron's time zone (default Asia/Shanghai)")


def register_demo(verbs: Verbs) -> None:
    verbs.add(None, "demo", cmd_demo, "the main job on embedded defaults")
