"""`ecg-gateway routes`: check a routes file, or show where an ECG would go."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.common import add_config_options, load_config
from gateway.cli.dicom_warnings import values_unquoted
from gateway.store.order_records import OrderReference


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("routes", help="check the routes file, or show where an ECG would go")
    routes = p.add_subparsers(dest="routes_command", required=True, metavar="ACTION")
    check = routes.add_parser("check", help="validate a routes file; every error with its line")
    check.add_argument("file", nargs="?", type=Path, help="default: the config's routes file")
    test = routes.add_parser("test", help="analyze INPUT and show matching rules and destinations")
    test.add_argument("input", type=Path, help="DICOM file, WFDB record or vendor XML")
    test.add_argument("-r", "--routes", type=Path, help="default: the config's routes file")
    test.add_argument("--calling-ae", default="", help="pretend it came from this AE title")
    test.add_argument("--called-ae", default="ECGGW", help="pretend it was sent to this AE title")
    test.add_argument("--source", default="", help="pretend it came from this folder or upload")
    test.add_argument(
        "--priority",
        choices=["stat", "asap", "routine"],
        help="pretend it was matched to an order of this priority",
    )
    test.add_argument("--ordering-facility", help="... an order from this facility")
    test.add_argument("--procedure-code", help="... an order for this procedure (OBR-4.1)")
    for action in (check, test):
        add_config_options(action)
    p.set_defaults(func=values_unquoted(run))


def run(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError
    from gateway.routing import RoutesError, check_routes, load_routes

    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.routes_command == "check":
        path = args.file or config.routes
        issues = check_routes(path)
        for issue in issues:
            print(issue.format(path), file=sys.stderr)
        if issues:
            print(f"{path}: {len(issues)} error(s)", file=sys.stderr)
            return 2
        routes = load_routes(path, config.data_dir)
        print(f"{path}: OK, {len(routes.destinations)} destinations, {len(routes.rules)} rules")
        return 0
    from gateway.processing.package import Association
    from gateway.routing.dry_run import format_route_test, package_for_input

    try:
        routes = load_routes(args.routes or config.routes, config.data_dir)
    except RoutesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    package = package_for_input(
        args.input,
        Association(args.calling_ae, args.called_ae, source=args.source),
        config.statement_limits,
        _pretended_order(args),
    )
    print(format_route_test(package, routes))
    return 0


def _pretended_order(args: argparse.Namespace) -> OrderReference | None:
    """The order `routes test` pretends the ECG was matched to, when any order key is given."""
    if args.priority is None and args.ordering_facility is None and args.procedure_code is None:
        return None
    return OrderReference(
        placer_order_number="ROUTES-TEST",
        priority=args.priority or "routine",
        ordering_facility=args.ordering_facility or "",
        procedure_code=args.procedure_code or "",
    )
