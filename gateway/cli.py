"""The `ecg-gateway` command. It parses arguments and calls the parts; it holds no logic.

Each subcommand is a pair: `_add_<name>(subparsers)` registers it and `_cmd_<name>(args)`
runs it and returns the exit code. Exit codes: 0 ok, 1 the work failed, 2 bad input or
configuration (the message names the file and the reason).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import model
from model.errors import EcgDecodeError


def _add_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render an ECG as a 12-lead PNG or PDF page")
    p.add_argument("input", help="DICOM waveform file or WFDB record (with or without .hea)")
    p.add_argument("-o", "--output", required=True, help="OUT.png or OUT.pdf")
    p.add_argument("--dpi", type=int, default=200, help="PNG resolution (default 200)")
    p.add_argument("--header", action="store_true", help="print patient and study details")
    p.set_defaults(func=_cmd_render)


def _cmd_render(args: argparse.Namespace) -> int:
    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".pdf"):
        print(f"error: {out}: output must end in .png or .pdf", file=sys.stderr)
        return 2
    ecg = model.load(args.input)
    if suffix == ".png":
        data = model.render_png(ecg, dpi=args.dpi, header=args.header)
    else:
        data = model.render_pdf(ecg, header=args.header)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"wrote {out} ({len(data)} bytes)")
    return 0


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="measure and interpret an ECG")
    p.add_argument("input", help="DICOM waveform file or WFDB record")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_analyze)


def _cmd_analyze(args: argparse.Namespace) -> int:
    from gateway.summary import format_report

    report = model.analyze(model.load(args.input))
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(format_report(report))
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on embedded defaults")
    p.add_argument("--out", default="out/demo", help="where to write the demo output")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg-gateway", description="ECG Gateway: DICOM ECGs in, structured reports out."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_render, _add_analyze, _add_demo):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except EcgDecodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
