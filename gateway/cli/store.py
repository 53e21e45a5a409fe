"""`ecg-gateway store migrate|backup`: the store's schema and its backup."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.common import add_config_options, load_config
from gateway.config import ConfigError
from gateway.store import StoreError, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="the store: schema migration, backup")
    actions = p.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate", help="bring the store's schema to this gateway's version (serve does too)"
    )
    add_config_options(migrate)
    migrate.set_defaults(func=run_migrate)
    backup = actions.add_parser(
        "backup",
        help="a consistent copy while the gateway runs: SQLite's online backup, or pg_dump"
        " (custom format) for PostgreSQL",
    )
    add_config_options(backup)
    backup.add_argument("file", type=Path, help="where the copy goes (must not exist)")
    backup.set_defaults(func=run_backup)


def run_migrate(args: argparse.Namespace) -> int:
    try:
        store = open_store(load_config(args))  # opening migrates, or refuses a newer schema
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"{store}: schema version {store.schema_version}")
        return 0
    finally:
        store.close()


def run_backup(args: argparse.Namespace) -> int:
    if args.file.exists():
        print(f"error: {args.file} exists; a backup never overwrites a file", file=sys.stderr)
        return 2
    try:
        store = open_store(load_config(args))
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        store.backup(args.file)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{store} backed up to {args.file}")
    return 0
