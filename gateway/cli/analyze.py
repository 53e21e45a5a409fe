"""`ecg-gateway render` and `ecg-gateway analyze`: one ECG file in, a page or a report out,
without the service (for trying an input, and for scripts)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import model
from gateway.cli.dicom_warnings import values_unquoted
from model.report import Report

ECG_FILE = "DICOM waveform, WFDB record, GE MUSE, Philips, HL7 aECG or SCP-ECG file"
PAGE_FILE = "a PDF, PNG/JPEG or DICOM Secondary Capture / Encapsulated PDF page"
# (label, measurement key, unit) in the order a cart prints them.
_ROWS = (
    ("Heart rate", "heart_rate_bpm", "/min"),
    ("RR", "rr_ms", "ms"),
    ("P duration", "p_duration_ms", "ms"),
    ("PR", "pr_ms", "ms"),
    ("QRS", "qrs_ms", "ms"),
    ("QT", "qt_ms", "ms"),
    ("QTc Bazett", "qtc_bazett_ms", "ms"),
    ("QTc Fridericia", "qtc_fridericia_ms", "ms"),
    ("P axis", "p_axis_deg", "°"),
    ("QRS axis", "qrs_axis_deg", "°"),
    ("T axis", "t_axis_deg", "°"),
)


def add_render_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render an ECG as a 12-lead PNG or PDF page")
    p.add_argument("input", help=ECG_FILE)
    p.add_argument("-o", "--output", required=True, help="OUT.png or OUT.pdf")
    p.add_argument("--dpi", type=int, default=200, help="PNG resolution (default 200)")
    p.add_argument("--header", action="store_true", help="print patient and study details")
    p.set_defaults(func=values_unquoted(run_render))


def run_render(args: argparse.Namespace) -> int:
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


def add_analyze_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="measure and interpret an ECG")
    p.add_argument("input", help=f"{ECG_FILE}; with a VLM engine also {PAGE_FILE}")
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
        help="gateway.yaml whose statement limits (statement_limits:) apply, as in the gateway",
    )
    p.set_defaults(func=values_unquoted(run_analyze))


def run_analyze(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config

    try:
        limits = load_config(args.config).statement_limits
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
        report = model.analyze(model.load(args.input), limits)
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
            engine = VlmEngine(settings, limits)
        except VlmUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        report = engine.interpret_file(args.input)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(format_report(report))
    return 0


def format_report(report: Report) -> str:
    """Impression, measurements (with the reason for each missing one), statements, quality."""
    header = (
        f"{report.status.upper()} report ({report.engine.name} {report.engine.version}); "
        "a physician must confirm it."
    )
    lines = [header, "", report.impression, "", "Measurements:"]
    for label, key, unit in _ROWS:
        value = getattr(report.measurements, key)
        shown = (
            f"{value:.0f} {unit}"
            if value is not None
            else (f"not measured: {report.null_reasons.get(key, 'no reason recorded')}")
        )
        lines.append(f"  {label:<15} {shown}")
    if report.statements:
        lines += ["", "Statements:"]
        for statement in report.statements:
            lines.append(f"  {statement.code:<6} {statement.text}")
            if statement.evidence is not None:
                values = ", ".join(f"{k}={v}" for k, v in statement.evidence.values.items())
                lines.append(f"         because {statement.evidence.criterion}: {values}")
    source = report.source
    described = (
        f"Source: {source.kind}, {source.format}, {len(source.leads)} leads, "
        f"{source.sampling_rate_hz:g} Hz, {source.duration_s:g} s"
    )
    lines += ["", described]
    for flag in source.quality_flags:
        lines.append(f"  quality: {flag}")
    for warning in report.warnings:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)
