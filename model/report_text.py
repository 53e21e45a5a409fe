"""How a Report reads for people: the words the printout and the messages share, so the
PDF, the HL7 notes and the FHIR conclusion never say a report's status, measurements or
technical notes differently. No patient data here: the Report carries none."""

from __future__ import annotations

from model.report import Report

UNCONFIRMED = "UNCONFIRMED"
NOT_MEASURED = "n/a"


def technical_notes(warnings: list[str]) -> str:
    """The report's warnings (leads not used, an engine standing in for another, values
    the VLM got wrong) as one sentence for the over-reading physician."""
    if not warnings:
        return ""
    return "Technical notes: " + "; ".join(w.rstrip(". ") for w in warnings) + "."


def status_text(report: Report) -> str:
    """What the printout says the report is; a preliminary report is unconfirmed until a
    physician over-reads it."""
    status = f"{UNCONFIRMED} preliminary machine report: a physician must over-read it"
    return f"CORRECTED {status}" if report.is_correction else status


def produced_by(report: Report) -> str:
    """Every report says what produced it."""
    issued = report.created_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    return (
        f"Interpretation by ECG Gateway, engine {report.engine.name} {report.engine.version}, "
        f"issued {issued}"
    )


def measurement_rows(report: Report) -> list[tuple[str, str]]:
    """(label, value) as a cart prints them: rate, PR, QRS, QT/QTc, P-R-T axes; whole
    numbers (tenths of a millisecond are below any ECG measurement's precision); a value
    that could not be measured is 'n/a', never a zero."""
    m = report.measurements

    def shown(value: float | None, unit: str = "") -> str:
        return NOT_MEASURED if value is None else f"{round(value)}{unit}"

    return [
        ("Vent. rate", shown(m.heart_rate_bpm, " bpm")),
        ("PR interval", shown(m.pr_ms, " ms")),
        ("QRS duration", shown(m.qrs_ms, " ms")),
        ("QT/QTc Bazett", f"{shown(m.qt_ms)}/{shown(m.qtc_bazett_ms)} ms"),
        ("P-R-T axes", " ".join(shown(v) for v in (m.p_axis_deg, m.qrs_axis_deg, m.t_axis_deg))),
    ]


def interpretation_lines(report: Report) -> list[str]:
    """The impression, then each coded statement, as the physician reads them."""
    lines = [report.impression] if report.impression else []
    lines += [f"{statement.text} ({statement.code})" for statement in report.statements]
    return lines or ["No interpretation statements."]
