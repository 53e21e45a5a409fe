"""`ecg-gateway audit verify`: is the local audit trail whole? Every record's hash and
every link to the record before it are checked; exit 0 when intact, 1 with each problem
(its line) when a record was altered, removed or reordered, 2 when there is no trail."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.audit.auditor import CURSOR_NAME, TRAIL_NAME
from gateway.audit.forwarder import read_cursor
from gateway.audit.trail import verify
from gateway.cli.common import add_config_options, load_config
from gateway.config import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="check the local audit trail (IHE ATNA records)")
    commands = p.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    check = commands.add_parser("verify", help="check the trail's hash chain")
    add_config_options(check)
    check.add_argument(
        "file", nargs="?", type=Path, help=f"a trail file (default: <data-dir>/audit/{TRAIL_NAME})"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.file is not None:
        path = args.file
    else:
        try:
            path = load_config(args).audit_dir / TRAIL_NAME
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not path.is_file():
        print(f"error: {path}: no audit trail here", file=sys.stderr)
        return 2
    verdict = verify(path, read_cursor(path.parent / CURSOR_NAME).seq)
    if verdict.ok:
        print(f"{path}: {verdict.records} records, chain intact")
        return 0
    for problem in verdict.problems:
        print(f"{path}: {problem}")
    print(f"{path}: {len(verdict.problems)} problems in {verdict.records} records")
    return 1
