"""The `ecg-gateway` command. It parses arguments and calls the parts; it holds no logic.

One module per command group, each with `add_parser(subparsers)` and `run(args)` (the
exit code): analyze.py (render, analyze), convert.py, serve.py, send.py, jobs.py,
deliveries.py, reports.py, routes.py, demo.py, model_tools.py, audit.py, store.py,
orders.py, web.py. Exit codes: 0 ok, 1 the work failed, 2 bad input or configuration (the
message names the file and the reason).
"""

from __future__ import annotations

import argparse
import logging
import sys

from gateway.cli import (
    analyze,
    audit,
    convert,
    deliveries,
    demo,
    jobs,
    model_tools,
    orders,
    reports,
    routes,
    send,
    serve,
    store,
    web,
)
from gateway.logs import TEXT_FORMAT
from model.errors import EcgDecodeError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg-gateway", description="ECG Gateway: DICOM ECGs in, structured reports out."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        analyze.add_render_parser,
        analyze.add_analyze_parser,
        convert.add_parser,
        demo.add_parser,
        serve.add_parser,
        send.add_parser,
        jobs.add_parser,
        routes.add_parser,
        deliveries.add_parser,
        reports.add_parser,
        model_tools.add_parser,
        audit.add_parser,
        store.add_parser,
        orders.add_parser,
        web.add_parser,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=TEXT_FORMAT,
    )
    try:
        return int(args.func(args))
    except EcgDecodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
