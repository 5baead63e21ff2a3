"""A second person's approval: `approve REQUEST_ID` (a supervisor, logged in) and `approvals` (those waiting)."""
from __future__ import annotations

import argparse
from dataclasses import asdict

from cli.common import Verbs, emit, person, shown
from service import approvals


async def cmd_approve(args, ctx):
    done = await approvals.approve(ctx, person(ctx), args.request_id)
    emit(args, asdict(done), f"request {done.request_id} ({done.kind} of {done.subject}, asked by {done.requested_by}) "
                             f"approved by {done.approved_by}: {done.message}")


def cmd_approvals(args, ctx):
    rows = approvals.pending(ctx)
    emit(args, rows, "\n".join(f"{r['request_id']} {r['kind']} {shown(r['subject'])} (unit {r['owner_unit']}) asked by "
                               f"{r['requested_by']} at {r['requested_at']:%Y-%m-%d %H:%M}" for r in rows)
         or "no request waits for approval")


def request_number(text: str) -> int:
    """REQUEST_ID: the number `draw redraw` or `plan adjust` printed."""
    if not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a request number (1, 2, …)")
    return int(text)


def register(verbs: Verbs) -> None:
    p = verbs.add(None, "approve", cmd_approve, "approve a planner's request (a redraw, a plan adjustment) and carry "
                  "it out: a supervisor of the plan's unit or above, logged in, not the planner who asked")
    p.add_argument("request_id", type=request_number)
    verbs.add(None, "approvals", cmd_approvals, "the requests waiting for a supervisor's approval")
