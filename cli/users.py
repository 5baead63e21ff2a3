"""`spotcheck user add|disable|enable|list|reset-password`: local accounts (api.md "Identities").

Run at the operator's shell, with the project database in reach: the local operator acts as an admin
(method `cli-local`), which is how the first admin account is made.
"""
from __future__ import annotations

import sys
from datetime import datetime, timezone

from cli.common import UsageError, Verbs, emit
from domain.access import ROLES, Actor
from service import identity

LOCAL_ADMIN = Actor(id="operator", roles=frozenset({"admin"}), unit=None, method="cli-local")


def _password(args) -> str:
    if not args.password_stdin:
        raise UsageError("give the password on standard input with --password-stdin (never as an argument)")
    return sys.stdin.readline().rstrip("\r\n")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def cmd_add(args, ctx):
    identity.add_user(ctx.engine(), LOCAL_ADMIN, args.id, _password(args), roles=args.role or [], unit=args.unit,
                      now=_now())
    emit(args, {"id": args.id, "roles": sorted(args.role or []), "unit": args.unit}, f"user {args.id} added")


def cmd_disable(args, ctx):
    identity.disable_user(ctx.engine(), LOCAL_ADMIN, args.id, now=_now())
    emit(args, {"id": args.id, "status": "disabled"}, f"user {args.id} disabled")


def cmd_enable(args, ctx):
    identity.enable_user(ctx.engine(), LOCAL_ADMIN, args.id, now=_now())
    emit(args, {"id": args.id, "status": "active"}, f"user {args.id} enabled")


def cmd_reset(args, ctx):
    identity.reset_password(ctx.engine(), LOCAL_ADMIN, args.id, _password(args), now=_now())
    emit(args, {"id": args.id}, f"password of {args.id} reset")


def cmd_list(args, ctx):
    rows = [{"id": u.id, "roles": list(u.roles), "unit": u.unit, "status": u.status,
             "locked_until": u.locked_until.isoformat() if u.locked_until else None}
            for u in identity.list_users(ctx.engine(), LOCAL_ADMIN)]
    emit(args, rows, "\n".join(f"{r['id']:<20} {r['status']:<9} {','.join(r['roles']) or '-':<24} {r['unit'] or ''}"
                               for r in rows) or "no users")


def register(verbs: Verbs) -> None:
    p = verbs.add("user", "add", cmd_add, "a local account (operator roles; an inspector's come from the directory)")
    p.add_argument("id")
    p.add_argument("--role", action="append", choices=sorted(ROLES))
    p.add_argument("--unit")
    p.add_argument("--password-stdin", action="store_true")
    for name, handler, text in (("disable", cmd_disable, "the user can do nothing from the next request on"),
                                ("enable", cmd_enable, "the user's account works again")):
        verbs.add("user", name, handler, text).add_argument("id")
    p = verbs.add("user", "reset-password", cmd_reset, "a new password (lifts a lockout)")
    p.add_argument("id")
    p.add_argument("--password-stdin", action="store_true")
    verbs.add("user", "list", cmd_list, "local accounts (never a password hash)")
