"""A report as a person reads it on a terminal (`ecg-gateway analyze` without --json)."""

from __future__ import annotations

from model.report import Report

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
