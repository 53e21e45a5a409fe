"""What the over-read worklist indexes of a finished job's report (version 1, written
with the job's completion; gateway/store/report_versions.py)."""

from __future__ import annotations

from gateway.processing.package import ReportPackage
from gateway.store import Job
from gateway.store.report_records import ReportHead


def report_head(job: Job, package: ReportPackage) -> ReportHead:
    """The worklist row of `package`'s report: priority from the matched order, the site
    and station as intake read them, when it was received and acquired, who it is."""
    report, meta = package.report, package.metadata
    acquired = meta.acquisition_time.timestamp() if meta.acquisition_time else None
    return ReportHead(
        report_json=report.model_dump_json(),
        status=report.status,
        critical_texts=tuple(finding.text for finding in report.critical),
        priority=package.order.priority if package.order is not None else "routine",
        site=job.institution or meta.institution_name or "",
        station=job.station or meta.station_name or "",
        received_at=job.created_at,
        acquired_at=acquired,
        patient_name=meta.patient_name or "",
        patient_id=meta.patient_id or "",
        summary=report.impression,
    )
