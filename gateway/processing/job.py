"""What is done with one job: decode, interpret with an engine, render, save the package.

This runs in worker processes (see gateway/processing/workers.py), so decoding, measuring and
rendering use every core and never hold the interpreter lock of the process that
receives DICOM. It touches no store: it reads the spool file, writes the report
package, and returns what the pipeline needs to finish the job; what it needs from the
store (the patient's recent ECGs, for the serial comparison) the worker hands it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

import model
from gateway.intake.accept import WAVEFORM
from gateway.logs import fault
from gateway.processing.findings import Additions, add_findings
from gateway.processing.package import Association, ReportPackage
from gateway.processing.received_pages import ImageObject, read_image_object
from gateway.store import Job
from model.ecg import Ecg, EcgMetadata
from model.engine import Engine, EngineChoice, Held, engine_for
from model.errors import EcgDecodeError
from model.report import Report
from model.vlm.page_image import PageImage
from model.vlm.settings import VlmUnavailable


@dataclass(frozen=True)
class JobResult:
    """Exactly one of package, permanent_error, transient_error is set.

    Errors travel as text: exception objects do not all survive the trip between
    processes (EcgDecodeError's constructor takes two arguments, pickle passes one).
    """

    package: ReportPackage | None = None
    report_dir: Path | None = None
    permanent_error: str | None = None
    transient_error: str | None = None
    held: str | None = None  # the engine is unavailable and jobs are held: why


@dataclass(frozen=True)
class _Decoded:
    """A job's input, read from the spool: a waveform, or a received page."""

    job: Job
    ecg: Ecg | None = None
    image: ImageObject | None = None


def process_jobs(
    jobs: Sequence[Job],
    reports_dir: Path,
    choice: EngineChoice,
    additions: Additions | None = None,
) -> list[JobResult]:
    """Build and save the report packages of jobs that share an engine, one result per job.

    A VLM interprets them all in one generation batch (that is what keeps a GPU busy);
    bad input fails only its own job. `additions`: the rules and priors for the critical
    findings and the serial comparison (gateway/processing/findings.py)."""
    try:
        engine = engine_for(choice)
    except VlmUnavailable as exc:
        return [JobResult(held=f"{choice.name} engine unavailable: {exc}") for _ in jobs]
    results: dict[int, JobResult] = {}
    decoded = []
    for job in jobs:
        try:
            decoded.append(_decode(job))
        except Exception as exc:  # noqa: BLE001 - EcgDecodeError or anything unexpected
            results[job.id] = _error_result(exc)
    try:
        reports = _interpret(engine, decoded)
    except Exception as exc:  # noqa: BLE001 - the engine failed: the whole batch retries
        reports = []
        results.update({item.job.id: _error_result(exc) for item in decoded})
    for item, report in zip(decoded, reports, strict=False):
        if isinstance(report, Held):
            results[item.job.id] = JobResult(held=f"{choice.name} engine: {report.reason}")
            continue
        try:
            package = _package(item, report, additions or Additions())
            report_dir = reports_dir / str(item.job.id)
            package.save(report_dir)
            results[item.job.id] = JobResult(package=package, report_dir=report_dir)
        except Exception as exc:  # noqa: BLE001 - rendering or disk: retried, then failed
            results[item.job.id] = _error_result(exc)
    return [results[job.id] for job in jobs]


def _error_result(exc: Exception) -> JobResult:
    """Bad input is a permanent error; anything else may pass: retried, then failed."""
    if isinstance(exc, EcgDecodeError):
        return JobResult(permanent_error=f"undecodable: {exc.reason}")
    return JobResult(transient_error=fault(exc))


def _decode(job: Job) -> _Decoded:
    path = Path(job.spool_path)
    if job.kind == WAVEFORM:
        return _Decoded(job, ecg=model.load(path))
    return _Decoded(job, image=read_image_object(path, job.kind))


def _interpret(engine: Engine, items: Sequence[_Decoded]) -> list[Report | Held]:
    """One report per item. A VLM reads waveforms (rendered) and received pages in one
    batch; a received page the engine does not read (no VLM) keeps its intake report."""
    inputs = [_engine_input(item, engine.reads_pages) for item in items]
    wanted = [value for value in inputs if value is not None]
    generated = iter(engine.interpret_batch(wanted) if wanted else [])
    reports = [next(generated) if value is not None else None for value in inputs]
    return [
        report if report is not None else item.image.report
        for item, report in zip(items, reports, strict=True)
    ]


def _engine_input(item: _Decoded, reads_pages: bool) -> Ecg | PageImage | None:
    """What the engine is given: the waveform, or the received page decoded for an engine
    that reads pages; None keeps the page's intake report."""
    if item.ecg is not None:
        return item.ecg
    if not reads_pages or item.image.png is None:
        return None
    with Image.open(io.BytesIO(item.image.png)) as page:
        return PageImage(page.convert("RGB"), item.job.kind, "image")


def _package(item: _Decoded, report: Report, additions: Additions) -> ReportPackage:
    job = item.job
    association = Association(job.calling_ae, job.called_ae, job.peer, job.source)
    if job.is_correction:
        report = report.model_copy(update={"is_correction": True})
    metadata = item.ecg.metadata if item.ecg is not None else item.image.metadata
    if metadata.sop_instance_uid is None:  # a vendor file: the UID intake derived from it
        metadata = metadata.with_updates(sop_instance_uid=job.sop_instance_uid)
    report = add_findings(_with_metadata_warnings(report, metadata), job, metadata, additions)
    return ReportPackage(
        job_id=job.id,
        kind=job.kind,
        metadata=metadata,
        report=report,
        association=association,
        **_pictures(item, report),
    )


def _pictures(item: _Decoded, report: Report) -> dict[str, bytes | str | Ecg | None]:
    """The package's pages: rendered here for a waveform (the PNG without patient data, as
    a model reads it; the PDF the report as a cart prints it; the samples without the
    patient, for routes that send the waveform), as received for a picture or PDF (with
    the original kept)."""
    if item.ecg is not None:
        ecg = item.ecg
        return {
            "png": model.render_png(ecg, header=False),
            "pdf": model.render_pdf(ecg, header=True, report=report),
            "waveform": Ecg(ecg.signal, ecg.sampling_rate, ecg.lead_names),
        }
    image = item.image
    return {
        "png": image.png,
        "pdf": image.pdf,
        "source_image": image.source_image,
        "source_image_type": image.source_image_type,
    }


def _with_metadata_warnings(report: Report, metadata: EcgMetadata) -> Report:
    """What the decoder left out of the patient data (an invalid birth date, say) goes to
    the physician with the report, the way the engine's own warnings do."""
    added = [warning for warning in metadata.warnings if warning not in report.warnings]
    return report.model_copy(update={"warnings": [*report.warnings, *added]}) if added else report
