"""What the commands that work on a gateway's data directory share: the config options,
the config they name, and running against its store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.audit import RESTRICTED, Auditor
from gateway.config import ConfigError, GatewayConfig
from gateway.config import load_config as load_config_file
from gateway.store import Store, StoreError, open_store


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, help="gateway.yaml (default: embedded defaults)")
    p.add_argument("--data-dir", type=Path, help="override data_dir (spool, store, reports)")


def load_config(args: argparse.Namespace, **overrides: object) -> GatewayConfig:
    """The config the options name, with command-line overrides applied."""
    return load_config_file(args.config).with_overrides(data_dir=args.data_dir, **overrides)


StoreAction = Callable[[argparse.Namespace, GatewayConfig, Store], int]


def on_existing_store(action: StoreAction) -> Callable[[argparse.Namespace], int]:
    """A command run against the store of a gateway that has run: the store is opened for
    `action` and closed after it; without one the command exits 2 with the reason."""

    def run(args: argparse.Namespace) -> int:
        try:
            config = load_config(args)
            if config.store.url is None and not config.store_path.exists():
                print(
                    f"error: {config.store_path}: no store here (has the gateway run?)",
                    file=sys.stderr,
                )
                return 2
            store = open_store(config)
        except (ConfigError, StoreError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            return action(args, config, store)
        finally:
            store.close()

    return run


def audit_action(config: GatewayConfig, description: str) -> None:
    """An operator's action in the gateway's audit trail (the running gateway sends it
    on to the collector); a trail this user cannot write is a warning, not a failure."""
    try:
        auditor = Auditor.for_config(config)
        if auditor is None:
            return
        try:
            auditor.admin_action(RESTRICTED, description)
        finally:
            auditor.close()
    except OSError as exc:
        print(f"warning: not audited ({exc}); run as the gateway's user", file=sys.stderr)
