"""How a Report reads for people: the words the printout and the messages share, so the
PDF, the HL7 notes and the FHIR conclusion never say a report's status, measurements or
technical notes differently. No patient data here: the Report carries none."""

from __future__ import annotations

from pydicom.valuerep import PersonName

from model.report import ComparisonStatement, Confirmation, CriticalFinding, Report

UNCONFIRMED = "UNCONFIRMED"
NOT_MEASURED = "n/a"
CRITICAL = "CRITICAL"


def technical_notes(warnings: list[str]) -> str:
    """The report's warnings (leads not used, an engine standing in for another, values
    the VLM got wrong) as one sentence for the over-reading physician."""
    if not warnings:
        return ""
    return "Technical notes: " + "; ".join(w.rstrip(". ") for w in warnings) + "."


def status_text(report: Report) -> str:
    """What the printout says the report is: a preliminary report is unconfirmed until a
    physician over-reads it; a confirmed one names who confirmed it and when."""
    if report.status == "preliminary" or report.confirmation is None:
        status = f"{UNCONFIRMED} preliminary machine report: a physician must over-read it"
        return f"CORRECTED {status}" if report.is_correction else status
    prefix = {"final": "FINAL", "corrected": "CORRECTED final", "amended": "AMENDED final"}
    return f"{prefix[report.status]} report, {confirmed_by(report.confirmation)}"


def confirmed_by(confirmation: Confirmation) -> str:
    """ "confirmed by Dr Given Family (id) on 2026-12-06 21:00 UTC"."""
    when = confirmation.confirmed_at.strftime("%Y-%m-%d %H:%M %Z").strip()
    return f"confirmed by {physician_display(confirmation)} on {when}"


def physician_display(confirmation: Confirmation) -> str:
    """The physician's name as people write it, with the id; the id alone without a name."""
    name = PersonName(confirmation.physician_name)  # the first (alphabetic) group
    parts = (name.name_prefix, name.given_name, name.middle_name, name.family_name)
    words = " ".join(part.strip() for part in (*parts, name.name_suffix) if part.strip())
    return f"{words} ({confirmation.physician_id})" if words else confirmation.physician_id


def shown_value(value: float | str | None) -> str:
    """A value as the reports print it: whole numbers whole, one decimal otherwise."""
    if value is None:
        return NOT_MEASURED
    if isinstance(value, str):
        return value
    rounded = round(float(value), 1)
    return str(int(rounded)) if rounded.is_integer() else f"{rounded:.1f}"


def comparison_line(statement: ComparisonStatement) -> str:
    """One serial-comparison statement with both values, the same in every format: its
    words, then the values they do not already say ("(now AFIB, prior SR)")."""
    unsaid = [
        f"{label} {shown_value(value)}"
        for label, value in (("now", statement.current), ("prior", statement.prior))
        if value is not None and not _says(statement.text, value)
    ]
    return f"{statement.text} ({', '.join(unsaid)})" if unsaid else statement.text


def _says(text: str, value: float | str) -> bool:
    """Whether the words already give the value: each code of a comma-joined list, or the
    number whole or as printed."""
    if isinstance(value, str):
        return all(part.strip() in text for part in value.split(","))
    return f"{float(value):.0f}" in text or shown_value(value) in text


def critical_line(finding: CriticalFinding) -> str:
    """One critical finding as the printout and the messages say it."""
    return f"{CRITICAL}: {finding.text}"


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
    """Critical findings first, then the impression, each coded statement, the statements
    a physician withdrew from an earlier version, and the comparison with the prior ECG,
    as the physician reads them."""
    lines = [critical_line(finding) for finding in report.critical]
    lines += [report.impression] if report.impression else []
    lines += [f"{statement.text} ({statement.code})" for statement in report.statements]
    if not lines:
        lines = ["No interpretation statements."]
    lines += [
        f"Withdrawn: {finding.text} ({finding.key})"
        for finding in report.withdrawn
        if finding.kind == "statement"
    ]
    if report.comparison is not None and report.comparison.statements:
        lines.append("Compared with the prior ECG:")
        lines += [comparison_line(statement) for statement in report.comparison.statements]
    return lines
