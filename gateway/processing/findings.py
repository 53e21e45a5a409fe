"""What the pipeline adds to an engine's report before it is packaged: the comparison
with the patient's previous ECG and the critical findings of routes.yaml's rules.

Runs in the job's helper process (job.py), after the engine; the worker thread, which has
the store, hands it the patient's recent finished ECGs (PriorEcg) and the rules in force,
so both are part of the preliminary report that is routed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from gateway.config import ComparisonConfig, PriorArchiveConfig
from gateway.logs import fault
from gateway.processing.prior_archive import ArchiveError, archive_prior
from gateway.routing.critical import critical_findings
from gateway.routing.critical_schema import CriticalRule
from gateway.store.prior_ecgs import PriorEcg
from gateway.store.records import Job
from model.ecg import EcgMetadata
from model.report import Comparison, Report
from model.serial_comparison import Prior, compare

log = logging.getLogger(__name__)

# What a report (and so the EHR) is told when the archive could not be asked: words, never
# the exception's text (an OS error names a file, whose name may carry an ID); the log has it.
NO_ARCHIVE_NO_COMPARISON = "prior ECG archive unavailable; no comparison made"
NO_ARCHIVE_OWN_PRIOR = "prior ECG archive unavailable; compared with this gateway's prior ECG only"
# A prior that was found but could not be compared (the decoder or the engine failed on an
# archived ECG, the comparison itself failed): an optional step, so the report goes out.
PRIOR_NOT_COMPARED = "prior ECG could not be compared; no comparison made"
ARCHIVED_PRIOR_NOT_COMPARED = (
    "archived prior ECG could not be compared; compared with this gateway's prior ECG only"
)


@dataclass(frozen=True)
class Additions:
    """What the worker knows that a job's helper process needs (picklable)."""

    rules: tuple[CriticalRule, ...] = ()
    comparison: ComparisonConfig | None = None  # None: no serial comparison
    priors: dict[int, tuple[PriorEcg, ...]] = field(default_factory=dict)  # job id -> recent
    unreadable: frozenset[int] = frozenset()  # jobs whose patient's history could not be read


def add_findings(report: Report, job: Job, metadata: EcgMetadata, additions: Additions) -> Report:
    """The report with its comparison (if a prior exists) and critical findings."""
    updates: dict = {}
    if additions.comparison is not None and additions.comparison.enabled:
        comparison, warnings = _safe_comparison(report, job, metadata, additions)
        if comparison is not None:
            updates["comparison"] = comparison
        if warnings:
            updates["warnings"] = [*report.warnings, *warnings]
    if updates:
        report = report.model_copy(update=updates)
    findings = critical_findings(list(additions.rules), report)
    return report.model_copy(update={"critical": findings}) if findings else report


def acquired_epoch(metadata: EcgMetadata) -> float | None:
    """When the ECG was acquired, as epoch seconds. A time without a UTC offset (most
    DICOM objects) is taken as the gateway's local time: carts and gateway share a site."""
    moment = metadata.acquisition_time
    return None if moment is None else moment.timestamp()


def choose_prior(
    candidates: tuple[PriorEcg, ...], acquired_at: float | None, job_id: int
) -> PriorEcg | None:
    """The ECG acquired last before this one; without an acquisition time on this one,
    the last one received before it. Of two versions of one ECG (a correction), the later."""
    latest: dict[str, PriorEcg] = {}
    for prior in candidates:
        if (
            prior.sop_instance_uid not in latest
            or prior.job_id > latest[prior.sop_instance_uid].job_id
        ):
            latest[prior.sop_instance_uid] = prior
    if acquired_at is None:
        earlier = [p for p in latest.values() if p.job_id < job_id]
        return max(earlier, key=lambda p: p.job_id, default=None)
    earlier = [
        p for p in latest.values() if p.acquired_at is not None and p.acquired_at < acquired_at
    ]
    return max(earlier, key=lambda p: (p.acquired_at, p.job_id), default=None)


def _safe_comparison(
    report: Report, job: Job, metadata: EcgMetadata, additions: Additions
) -> tuple[Comparison | None, list[str]]:
    """The comparison and the report's warnings about it; a failure never holds the current
    report back: it is told in words (the exception's text may quote a file or a value)."""
    if job.id in additions.unreadable:  # the worker logged why
        return None, [PRIOR_NOT_COMPARED]
    try:
        return _comparison(report, job, metadata, additions)
    except Exception as exc:  # noqa: BLE001 - an optional step
        log.warning("job %d: prior ECG not compared: %s", job.id, fault(exc))
        return None, [PRIOR_NOT_COMPARED]


def _comparison(
    report: Report, job: Job, metadata: EcgMetadata, additions: Additions
) -> tuple[Comparison | None, list[str]]:
    settings = additions.comparison
    acquired_at = acquired_epoch(metadata)
    prior = choose_prior(additions.priors.get(job.id, ()), acquired_at, job.id)
    warnings: list[str] = []
    if settings.archive is not None and metadata.patient_id:
        prior, warnings = _with_archived(settings.archive, metadata, acquired_at, prior, job.id)
    if prior is None:
        return None, warnings
    when = (
        None
        if prior.acquired_at is None
        else datetime.fromtimestamp(prior.acquired_at).astimezone()
    )
    comparison = compare(
        report, Prior(prior.report, prior.sop_instance_uid, when), settings.thresholds
    )
    return comparison, warnings


def _with_archived(
    archive: PriorArchiveConfig,
    metadata: EcgMetadata,
    acquired_at: float | None,
    own: PriorEcg | None,
    job_id: int,
) -> tuple[PriorEcg | None, list[str]]:
    """The prior to compare with (the archive's if newer than the gateway's own) and what
    the report is told when the archive could not be asked or its prior not analysed."""
    try:
        found = archive_prior(archive, metadata, acquired_at)
    except (ArchiveError, OSError) as exc:  # the report goes out without it
        # ArchiveError's text is the gateway's own (the AE title, a DIMSE status)
        why = str(exc) if isinstance(exc, ArchiveError) else fault(exc)
        log.warning("job %d: prior ECG archive not used: %s", job_id, why)
        return own, [NO_ARCHIVE_NO_COMPARISON if own is None else NO_ARCHIVE_OWN_PRIOR]
    except Exception as exc:  # noqa: BLE001 - the decoder or the engine failed on the prior
        log.warning("job %d: archived prior ECG not compared: %s", job_id, fault(exc))
        return own, [PRIOR_NOT_COMPARED if own is None else ARCHIVED_PRIOR_NOT_COMPARED]
    return (found if found is not None and _newer(found, own) else own), []


def _newer(found: PriorEcg, own: PriorEcg | None) -> bool:
    if own is None:
        return True
    if found.sop_instance_uid == own.sop_instance_uid or found.acquired_at is None:
        return False
    return own.acquired_at is None or found.acquired_at > own.acquired_at
