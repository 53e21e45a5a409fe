"""A later version of a job's report (a physician's confirmation or correction) joined
with the job's saved package, as delivery sends it and the report view shows it.

The PDF prints the report's status, impression and statements, so it is drawn again
for the new version from the samples the package keeps; a received page or PDF carries
no text of the gateway's and is kept as received. The PNG has no report text.

A new version also lists what it withdrew: every finding an earlier version held (sent,
or superseded before it was sent) that it no longer holds, so the outputs retract it.
"""

from __future__ import annotations

import dataclasses

import model
from gateway.intake.accept import WAVEFORM
from gateway.processing.package import ReportPackage
from model.ecg import Ecg
from model.report import MEASUREMENT_KEYS, Report, WithdrawnFinding


def revised_package(package: ReportPackage, report: Report) -> ReportPackage:
    """`package` carrying `report` instead of the version it was saved with. A waveform
    package saved without its samples gets no PDF: never an older version's text beside
    the newer report."""
    pdf = package.pdf
    if package.kind == WAVEFORM:
        pdf = None
        if package.waveform is not None:
            samples = package.waveform
            ecg = Ecg(samples.signal, samples.sampling_rate, samples.lead_names, package.metadata)
            pdf = model.render_pdf(ecg, header=True, report=report)
    return dataclasses.replace(package, report=report, pdf=pdf)


def withdrawn_findings(earlier: list[Report], report: Report) -> list[WithdrawnFinding]:
    """What ANY of the `earlier` versions held and `report` does not: statements by code,
    measurements with a value (now null), critical findings by rule, a non-empty
    impression, comparison statements by position. Against every earlier version, not just the last: a version superseded
    before it was sent withdrew nothing from the EHR."""
    held = _findings(report)
    withdrawn: dict[tuple[str, str], WithdrawnFinding] = {}
    for version in earlier:
        for identity, finding in _findings(version).items():
            if identity not in held:
                withdrawn.setdefault(identity, finding)
    return list(withdrawn.values())


def _findings(report: Report) -> dict[tuple[str, str], WithdrawnFinding]:
    """The report's retractable findings by (kind, key), each as it would be withdrawn."""
    findings = [
        WithdrawnFinding(kind="statement", key=s.code, text=s.text) for s in report.statements
    ]
    findings += [
        WithdrawnFinding(kind="measurement", key=key)
        for key in MEASUREMENT_KEYS
        if getattr(report.measurements, key) is not None
    ]
    findings += [
        WithdrawnFinding(kind="critical", key=c.rule, text=c.text) for c in report.critical
    ]
    if report.impression:
        findings.append(WithdrawnFinding(kind="impression"))
    if report.comparison is not None:  # the outputs number comparison rows by position
        findings += [
            WithdrawnFinding(kind="comparison", key=str(number), text=statement.text)
            for number, statement in enumerate(report.comparison.statements, start=1)
        ]
    return {(finding.kind, finding.key): finding for finding in findings}
