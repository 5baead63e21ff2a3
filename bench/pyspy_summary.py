"""Summarise a py-spy raw (collapsed-stack) profile of a worker: where its samples go, ours first.

    .venv/bin/python bench/pyspy_summary.py PROFILE.txt [--top 25]

Each stack is put in the first category (in the order below) that one of its frames matches, and
every frame of ours (activities/, workflows/, domain/, runtime/, db/, store/, service/, read/, cli/) gets the stack's
samples inclusively. Threads: `workflow` is the SDK's workflow-activation threads (sandboxed workflow
code, queries, update validators), `activity` the activity ThreadPoolExecutor threads (the synchronous
activities), `loop` the asyncio thread (the SDK's Core bridge, activity and workflow task dispatch).
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
OURS = ("activities/", "workflows/", "domain/", "runtime/", "db/", "store/", "service/", "read/", "cli/")
IDLE_LEAF = re.compile(r"^(\S*\.)?(wait|get|_worker|select|poll) \((threading|queue|concurrent/futures/thread|selectors)\.py")
# (category, test on the list of frames, root first)
CATEGORIES = [
    ("sandbox: re-import of the workflow module per run",
     lambda fs: any("workflow_sandbox/_importer.py" in f for f in fs) and any("_create_instance" in f for f in fs)),
    ("sandbox: restricted proxies and import hooks", lambda fs: any("workflow_sandbox/" in f for f in fs[-4:])),
    ("PG: waiting in psycopg2 (statement round trip)",
     lambda fs: re.match(r"(\S+\.)?(do_execute|do_executemany|_exec_insertmany_context) \(sqlalchemy", fs[-1]) is not None),
    ("PG: BEGIN/COMMIT/ROLLBACK, pre-ping, connect",
     lambda fs: any(re.match(r"(\S+\.)?(do_commit|do_rollback|do_ping|do_begin|_do_ping_w_event|connect|_checkout) ", f)
                   for f in fs[-3:])),
    ("SQLAlchemy: statement building, compilation, results", lambda fs: any("sqlalchemy/" in f for f in fs)),
    ("outbox: JSONL receiver (file append)", lambda fs: any("JsonlReceiver.send" in f for f in fs)),
    ("pydantic (validation, serialisation)", lambda fs: any("pydantic" in f for f in fs)),
    ("payload conversion (temporalio converter, json)", lambda fs: any("temporalio/converter" in f for f in fs)),
    ("calendar (domain/workdays, chinesecalendar)", lambda fs: any("domain/workdays" in f or "chinese_calendar" in f for f in fs)),
    ("logging (structlog, logging)", lambda fs: any("structlog" in f or "logging/__init__" in f for f in fs)),
    ("SDK: workflow activations", lambda fs: any("_workflow_instance.py" in f or "worker/_workflow.py" in f for f in fs)),
    ("SDK: activity dispatch", lambda fs: any("temporalio/worker/_activity.py" in f for f in fs)),
    ("SDK: other temporalio", lambda fs: any("temporalio/" in f for f in fs)),
    ("asyncio and the rest", lambda fs: True),
]


def parse(path: Path):
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        yield stack.split(";"), int(count)


def thread_of(frames: list[str]) -> str:
    if any("_execute_sync_activity" in f for f in frames):
        return "activity"
    if any("_RunningWorkflow" in f or "workflow_sandbox/_runner" in f for f in frames):
        return "workflow"
    if any("run_forever" in f or "run_until_complete" in f for f in frames):
        return "loop"
    return "other"


def short(frame: str) -> str:
    m = FRAME.match(frame)
    return f"{m['func']} ({m['file']})" if m else frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/pyspy_summary.py")
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    total = 0
    idle = 0
    threads: Counter = Counter()
    categories: Counter = Counter()
    by_thread_category: Counter = Counter()
    ours: Counter = Counter()
    for frames, n in parse(args.profile):
        thread = thread_of(frames)
        if IDLE_LEAF.match(frames[-1]):
            idle += n
            continue
        total += n
        threads[thread] += n
        for name, test in CATEGORIES:
            if test(frames):
                categories[name] += n
                by_thread_category[(thread, name)] += n
                break
        for f in {short(f) for f in frames if any(f"({o}" in f for o in OURS)}:
            ours[f] += n
    print(f"{args.profile}: {total} busy samples ({idle} idle samples left out)")
    print("threads: " + ", ".join(f"{t} {100 * n / total:.0f}%" for t, n in threads.most_common()))
    print("\nwhere the busy samples go (first matching category):")
    for name, n in categories.most_common():
        split = ", ".join(f"{t} {by_thread_category[(t, name)]}" for t in ("workflow", "activity", "loop", "other")
                          if by_thread_category[(t, name)])
        print(f"  {100 * n / total:5.1f}%  {name}  [{split}]")
    print(f"\nour functions, inclusive (top {args.top}):")
    for f, n in ours.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
