"""A later version of a job's report (a physician's confirmation or correction) joined
with the job's saved package, as delivery sends it and the report view shows it.

The PDF prints the report's status, impression and statements, so it is drawn again
for the new version from the samples the package keeps; a received page or PDF carries
no text of the gateway's and is kept as received. The PNG has no report text.
"""

from __future__ import annotations

import dataclasses

import model
from gateway.intake.accept import WAVEFORM
from gateway.processing.package import ReportPackage
from model.ecg import Ecg
from model.report import Report


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
