"""`ecg-gateway web user add USER_ID --role physician --name 'Doe^Jane'`: add a user of the
over-read web application (or give an existing one a new password, name or role) in
web.users_file. The password is asked twice on a terminal, else read from the first
line of standard input (`printf '%s\\n' "$PW" | ecg-gateway web user add ...`); it is
never an argument, where `ps` and shell history would show it."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from gateway.cli.common import add_config_options, load_config
from gateway.config import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="the over-read web application's users")
    commands = p.add_subparsers(dest="web_command", required=True, metavar="COMMAND")
    users = commands.add_parser("user", help="manage web users").add_subparsers(
        dest="user_command", required=True, metavar="COMMAND"
    )
    add = users.add_parser("add", help="add a user, or set a user's password, name and role")
    add_config_options(add)
    add.add_argument("user_id", help="the sign-in name, e.g. jdoe")
    add.add_argument("--role", required=True, choices=("reader", "physician", "admin"))
    add.add_argument(
        "--name", required=True, help="the name in DICOM PN form as it goes to the EHR: Doe^Jane"
    )
    add.add_argument("--users-file", type=Path, help="default: web.users_file of the config")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.cli.common import audit_action
    from gateway.web.auth import add_user

    password = _read_password()
    if password is None:
        print("error: no password given (type it, or pipe it on standard input)", file=sys.stderr)
        return 2
    try:
        config = load_config(args)
        path = args.users_file or config.web.users_file
        new = add_user(path, args.user_id, args.name, args.role, password)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the users file: {exc}", file=sys.stderr)
        return 1
    verb = "added" if new else "updated"
    audit_action(config, f"web user {args.user_id} {verb} (role {args.role})")
    print(
        f"{path}: {verb} {args.user_id} ({args.role}); a running gateway reads it at the next sign-in"
    )
    return 0


def _read_password() -> str | None:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            print("error: the passwords differ", file=sys.stderr)
            return None
        return first or None
    line = sys.stdin.readline().rstrip("\r\n")
    return line or None
