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
    p.add_argument(
        "input",
        help="DICOM waveform file or WFDB record; with a VLM engine also "
        "a PDF, PNG/JPEG or DICOM Secondary Capture / Encapsulated PDF page",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--engine",
        choices=("measure", "vlm", "hybrid"),
        default="measure",
        help="measure (rules, default), vlm (SmolVLM reads the page) or hybrid "
        "(SmolVLM given the measurements)",
    )
    p.add_argument(
        "--model",
        help="VLM: hub id or local directory (default HuggingFaceTB/SmolVLM-500M-Instruct)",
    )
    p.add_argument("--adapter", help="VLM: PEFT LoRA adapter directory")
    p.add_argument("--4bit", dest="four_bit", action="store_true", help="VLM: 4-bit NF4 weights")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="VLM device")
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        help="gateway.yaml whose rule settings (rules:) apply, as in the gateway",
    )
    p.set_defaults(func=_cmd_analyze)


def _cmd_analyze(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config

    try:
        rules = load_config(args.config).rules
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.engine == "measure":
        from model.vlm.page_image import is_page_file

        if is_page_file(args.input):
            print(
                f"error: {args.input} is an ECG page (PDF, image or DICOM Secondary Capture /"
                " Encapsulated PDF), not a waveform: the measurement engine needs samples;"
                " read the page with --engine vlm or --engine hybrid",
                file=sys.stderr,
            )
            return 2
        report = model.analyze(model.load(args.input), rules)
    else:
        from model.vlm.engine import VlmEngine
        from model.vlm.settings import DEFAULT_MODEL, VlmSettings, VlmUnavailable

        settings = VlmSettings(
            mode=args.engine,
            model=args.model or DEFAULT_MODEL,
            adapter=args.adapter,
            quantization="4bit" if args.four_bit else "none",
            device=args.device,
        )
        try:
            engine = VlmEngine(settings, rules)
        except VlmUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        report = engine.interpret_file(args.input)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        from gateway.summary import format_report

        print(format_report(report))
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="serve, send the sample ECGs, print their reports, stop")
    p.add_argument(
        "--out",
        default="out/demo",
        help="data directory and outbox of the demo "
        "(default out/demo; a previous demo's output there is replaced)",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="sample data (default $ECG_GATEWAY_DATA or "
        "../shared/data; without it a synthetic ECG)",
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the reports (default 120)"
    )
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(Path(args.out), data_dir=args.data, timeout_s=args.timeout)


def _add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, help="gateway.yaml (default: embedded defaults)")
    p.add_argument("--data-dir", type=Path, help="override data_dir (spool, store, reports)")


def _load_config(args: argparse.Namespace, **overrides: object):
    from gateway.config import load_config

    return load_config(args.config).with_overrides(data_dir=args.data_dir, **overrides)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the DICOM gateway in the foreground")
    _add_config_options(p)
    p.add_argument("--port", type=int, help="override the DICOM port")
    p.add_argument(
        "--bind",
        metavar="ADDRESS",
        help="override bind_address (e.g. 127.0.0.1: this machine only)",
    )
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError
    from gateway.routing import RoutesError
    from gateway.server import GatewayBusy, serve

    try:
        return serve(_load_config(args, port=args.port, bind_address=args.bind))
    except (ConfigError, RoutesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (GatewayBusy, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _add_send(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("send", help="send DICOM files with C-STORE and print each status")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=11112)
    p.add_argument("--aet", default="ECGSEND", help="calling AE title (default ECGSEND)")
    p.add_argument("--called-aet", default="ECGGW", help="called AE title (default ECGGW)")
    p.add_argument("--tls-ca", type=Path, help="use TLS; verify the gateway against this CA")
    p.add_argument("--tls-cert", type=Path, help="client certificate (PEM) for mutual TLS")
    p.add_argument("--tls-key", type=Path, help="client private key (PEM) for mutual TLS")
    p.set_defaults(func=_cmd_send)


def _cmd_send(args: argparse.Namespace) -> int:
    from gateway.send import client_tls_context, send_files

    tls = client_tls_context(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca else None
    results = send_files(args.files, args.host, args.port, args.aet, args.called_aet, tls)
    for result in results:
        status = f"0x{result.status:04X}" if result.status is not None else "------"
        verdict = "OK    " if result.ok else "FAILED"
        print(
            f"{verdict} {status} {result.path}" + (f": {result.message}" if result.message else "")
        )
    return 0 if all(r.ok for r in results) else 1


def _add_jobs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("jobs", help="list, show or retry processing jobs")
    jobs = p.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    listing = jobs.add_parser("list", help="recent jobs, newest first (no patient data)")
    listing.add_argument("--state", choices=("queued", "leased", "done", "failed"))
    listing.add_argument("--limit", type=int, default=50)
    show = jobs.add_parser("show", help="every job received under a SOP Instance UID")
    show.add_argument("uid")
    retry = jobs.add_parser("retry", help="requeue the failed jobs of a SOP Instance UID")
    retry.add_argument("uid")
    for action in (listing, show, retry):
        _add_config_options(action)
    p.set_defaults(func=_cmd_jobs)


def _cmd_jobs(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError
    from gateway.jobs import format_job_details, format_job_list, retry_jobs
    from gateway.store import Store, StoreError

    try:
        config = _load_config(args)
        if not config.store_path.exists():
            print(
                f"error: {config.store_path}: no store here (has the gateway run?)", file=sys.stderr
            )
            return 2
        store = Store(config.store_path)
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.jobs_command == "list":
            print(format_job_list(store, config.metrics_path, args.state, args.limit))
            return 0
        if args.jobs_command == "show":
            text = format_job_details(store, args.uid)
            print(text or f"no job for SOP Instance UID {args.uid}")
            return 0 if text else 1
        count = retry_jobs(store, args.uid)
        print(f"requeued {count} failed job(s) for {args.uid}")
        return 0 if count else 1
    finally:
        store.close()


def _add_routes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("routes", help="check the routes file, or show where an ECG would go")
    routes = p.add_subparsers(dest="routes_command", required=True, metavar="ACTION")
    check = routes.add_parser("check", help="validate a routes file; every error with its line")
    check.add_argument("file", nargs="?", type=Path, help="default: the config's routes file")
    test = routes.add_parser("test", help="analyze INPUT and show matching rules and destinations")
    test.add_argument("input", type=Path, help="DICOM file, WFDB record or vendor XML")
    test.add_argument("-r", "--routes", type=Path, help="default: the config's routes file")
    test.add_argument("--calling-ae", default="", help="pretend it came from this AE title")
    test.add_argument("--called-ae", default="ECGGW", help="pretend it was sent to this AE title")
    for action in (check, test):
        _add_config_options(action)
    p.set_defaults(func=_cmd_routes)


def _cmd_routes(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError
    from gateway.routing import RoutesError, check_routes, load_routes

    try:
        config = _load_config(args)
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
    from gateway.package import Association
    from gateway.route_test import format_route_test, package_for_input

    try:
        routes = load_routes(args.routes or config.routes, config.data_dir)
    except RoutesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    package = package_for_input(
        args.input, Association(args.calling_ae, args.called_ae), config.rules
    )
    print(format_route_test(package, routes))
    return 0


def _add_deliveries(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deliveries", help="list deliveries, or send failed/dead ones again")
    deliveries = p.add_subparsers(dest="deliveries_command", required=True, metavar="ACTION")
    listing = deliveries.add_parser("list", help="deliveries, oldest first (no patient data)")
    listing.add_argument("--dead", action="store_true", help="only those that were given up")
    listing.add_argument("--limit", type=int, default=1000)
    retry = deliveries.add_parser("retry", help="send a failed or dead delivery again")
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", type=int, help="delivery ID (from `deliveries list`)")
    target.add_argument("--all-dead", action="store_true", help="every dead delivery")
    for action in (listing, retry):
        _add_config_options(action)
    p.set_defaults(func=_cmd_deliveries)


def _cmd_deliveries(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError
    from gateway.delivery import format_deliveries
    from gateway.store import Store, StoreError

    try:
        config = _load_config(args)
        if not config.store_path.exists():
            print(
                f"error: {config.store_path}: no store here (has the gateway run?)", file=sys.stderr
            )
            return 2
        store = Store(config.store_path)
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.deliveries_command == "list":
            print(format_deliveries(store.list_deliveries(dead_only=args.dead, limit=args.limit)))
            return 0
        if args.all_dead:
            print(f"requeued {store.retry_all_dead()} dead deliveries")
            return 0
        if store.retry_delivery(args.id):
            print(f"requeued delivery {args.id}")
            return 0
        print(f"error: delivery {args.id} does not exist or is not failed or dead", file=sys.stderr)
        return 1
    finally:
        store.close()


def _add_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="VLM model tools")
    actions = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    tiny = actions.add_parser("tiny", help="build a random-weight SmolVLM-shaped test model in DIR")
    tiny.add_argument("dir", type=Path)
    p.set_defaults(func=_cmd_model)


def _cmd_model(args: argparse.Namespace) -> int:
    from model.vlm.tiny_checkpoint import build_tiny_model

    print(
        f"wrote a random-weight test model (not for clinical use) to {build_tiny_model(args.dir)}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg-gateway", description="ECG Gateway: DICOM ECGs in, structured reports out."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_render,
        _add_analyze,
        _add_demo,
        _add_serve,
        _add_send,
        _add_jobs,
        _add_routes,
        _add_deliveries,
        _add_model,
    ):
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
