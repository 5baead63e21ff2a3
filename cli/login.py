"""`spotcheck login ID` and `spotcheck logout`: the human verbs act as the user who logged in (api.md
"Who acted is who authenticated"). The token is kept 0600 in the user's config; scripts pass one in
SPOTCHECK_TOKEN instead (`spotcheck login ID --password-stdin --print-token`)."""
from __future__ import annotations

import getpass
import os
import sys

from cli.common import UsageError, Verbs, emit, login_tokens, token_file
from runtime.config import PRIVATE_FILE, private_dir
from service import identity


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask the password on: give it on standard input with --password-stdin")
    return getpass.getpass(f"password for {args.id}: ")


def cmd_login(args, ctx):
    actor = identity.authenticate(ctx.engine(), args.id, _password(args))
    token, seconds = identity.issue_access_token(actor.id, login_tokens(ctx.settings))
    data = {"id": actor.id, "roles": sorted(actor.roles), "unit": actor.unit, "expires_in": seconds}
    if args.print_token:
        print(token)
        return
    path = token_file()
    private_dir(path.parent)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE), "w") as out:
        out.write(token)
    path.chmod(PRIVATE_FILE)  # a file left by an older login may have had other bits
    emit(args, data, f"logged in as {actor.id} ({', '.join(sorted(actor.roles))}) for {seconds // 3600} hours")


def cmd_logout(args, ctx):
    try:
        token_file().unlink()
        emit(args, {"logged_out": True}, "logged out")
    except FileNotFoundError:
        emit(args, {"logged_out": False}, "not logged in")


def register(verbs: Verbs) -> None:
    p = verbs.add(None, "login", cmd_login, "log in: the human verbs (check, result, review, assign) act as you")
    p.add_argument("id")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--print-token", action="store_true",
                   help="print the token for a script's SPOTCHECK_TOKEN instead of keeping it")
    verbs.add(None, "logout", cmd_logout, "forget the login kept in your config")
