"""What the commands that work on a gateway's data directory share: the config options,
the config they name, and opening its store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.config import ConfigError, GatewayConfig
from gateway.config import load_config as load_config_file
from gateway.store import Store, StoreError


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, help="gateway.yaml (default: embedded defaults)")
    p.add_argument("--data-dir", type=Path, help="override data_dir (spool, store, reports)")


def load_config(args: argparse.Namespace, **overrides: object) -> GatewayConfig:
    """The config the options name, with command-line overrides applied."""
    return load_config_file(args.config).with_overrides(data_dir=args.data_dir, **overrides)


def open_existing_store(args: argparse.Namespace) -> tuple[GatewayConfig, Store] | None:
    """The config and the store of a gateway that has run; None (with the reason printed)
    when the config is bad or there is no store yet: the CLI never creates one."""
    try:
        config = load_config(args)
        if not config.store_path.exists():
            print(
                f"error: {config.store_path}: no store here (has the gateway run?)", file=sys.stderr
            )
            return None
        return config, Store(config.store_path)
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
