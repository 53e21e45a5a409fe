"""`ecg-gateway serve`: the gateway as a service, in the foreground."""

from __future__ import annotations

import argparse
import sys

from gateway.cli.common import add_config_options, load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the DICOM gateway in the foreground")
    add_config_options(p)
    p.add_argument("--port", type=int, help="override the DICOM port")
    p.add_argument(
        "--bind",
        metavar="ADDRESS",
        help="override bind_address (e.g. 127.0.0.1: this machine only)",
    )
    p.add_argument(
        "--admin-port", type=int, metavar="N", help="override admin.port (0: any free port)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, GatewayConfig
    from gateway.routing import RoutesError
    from gateway.server import GatewayBusy, serve
    from gateway.store import StoreError

    try:

        def read_config() -> GatewayConfig:
            config = load_config(args, port=args.port, bind_address=args.bind)
            if args.admin_port is None:
                return config
            admin = {**config.admin.model_dump(), "port": args.admin_port}
            return config.with_overrides(admin=admin)

        return serve(read_config(), read_config)
    except (ConfigError, RoutesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (GatewayBusy, StoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
