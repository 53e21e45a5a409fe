"""What is done with one job: decode, interpret with an engine, render, save the package.

This runs in worker processes (see gateway/pipeline.py), so decoding, measuring and
rendering use every core and never hold the interpreter lock of the process that
receives DICOM. It touches no store: it reads the spool file, writes the report
package, and returns what the pipeline needs to finish the job.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pydicom.config
from PIL import Image

import model
from gateway.image_inputs import ImageObject, read_image_object
from gateway.intake import WAVEFORM
from gateway.package import Association, ReportPackage
from gateway.store import Job
from model.ecg import Ecg
from model.errors import EcgDecodeError
from model.report import Report
from model.vlm_settings import VlmSettings, VlmUnavailable

log = logging.getLogger(__name__)


class Engine(Protocol):
    """What turns an ECG into a report: the measurement engine or a VLM engine."""

    name: str

    def interpret(self, ecg: Ecg) -> Report: ...


class MeasurementEngine:
    """Signal measurement and coded rule statements (model.analyze)."""

    name = "measure"

    def interpret(self, ecg: Ecg) -> Report:
        return model.analyze(ecg)


class FallbackEngine(MeasurementEngine):
    """The measurement engine standing in for a VLM that could not be loaded; every
    report says so, so nobody mistakes it for the configured engine's."""

    def __init__(self, configured: str, reason: str) -> None:
        self._notice = (
            f"the configured {configured} engine could not be loaded ({reason}); "
            "this report is from the measurement engine"
        )

    def interpret(self, ecg: Ecg) -> Report:
        report = model.analyze(ecg)
        source = report.source.model_copy(
            update={"quality_flags": [*report.source.quality_flags, "engine-fallback"]}
        )
        return report.model_copy(
            update={"source": source, "warnings": [*report.warnings, self._notice]}
        )


@dataclass(frozen=True)
class EngineChoice:
    """The engine the workers run, and what they do when its model cannot be loaded."""

    name: str = "measure"
    vlm: VlmSettings | None = None  # the vlm and hybrid engines' settings
    on_unavailable: str = "fallback"  # "fallback" | "hold"


_engines: dict[EngineChoice, Engine] = {}  # one per process: a VLM is loaded once
_WORKER_NICENESS = 10


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


def process_job(job: Job, reports_dir: Path, choice: EngineChoice) -> JobResult:
    """Build and save the job's report package; bad input is a permanent error."""
    try:
        engine = _engine(choice)
    except VlmUnavailable as exc:
        return JobResult(held=f"{choice.name} engine unavailable: {exc}")
    try:
        package = build_package(job, engine)
        report_dir = reports_dir / str(job.id)
        package.save(report_dir)
    except EcgDecodeError as exc:
        return JobResult(permanent_error=f"undecodable: {exc.reason}")
    except Exception as exc:  # noqa: BLE001 - anything else may pass: retried, then failed
        return JobResult(transient_error=f"{type(exc).__name__}: {exc}")
    return JobResult(package=package, report_dir=report_dir)


def build_package(job: Job, engine: Engine) -> ReportPackage:
    """The report and artefacts for one job (raises EcgDecodeError for bad input)."""
    association = Association(job.calling_ae, job.called_ae, job.peer)
    path = Path(job.spool_path)
    if job.kind == WAVEFORM:
        ecg = model.load(path)
        package = ReportPackage(
            job_id=job.id,
            kind=job.kind,
            metadata=ecg.metadata,
            report=engine.interpret(ecg),
            association=association,
            png=model.render_png(ecg, header=False),
            pdf=model.render_pdf(ecg, header=True),
        )
    else:
        image = read_image_object(path, job.kind)
        package = ReportPackage(
            job_id=job.id,
            kind=job.kind,
            metadata=image.metadata,
            report=_image_report(image, job.kind, engine),
            association=association,
            png=image.png,
            pdf=image.pdf,
            source_image=image.source_image,
            source_image_type=image.source_image_type,
        )
    if job.is_correction:
        package.report = package.report.model_copy(update={"is_correction": True})
    return package


def _image_report(image: ImageObject, kind: str, engine: Engine) -> Report:
    """A VLM reads a received page itself; otherwise the page's intake report stands."""
    if image.png is None or not hasattr(engine, "interpret_image"):
        return image.report
    with Image.open(io.BytesIO(image.png)) as page:
        return engine.interpret_image(page.convert("RGB"), kind)


def _engine(choice: EngineChoice) -> Engine:
    """This process's engine; a VLM that cannot be loaded is tried again on the next job
    (it may have been provided since), and raises VlmUnavailable when jobs are held."""
    if choice not in _engines:
        if choice.vlm is None:
            return _engines.setdefault(choice, MeasurementEngine())
        from model.vlm import VlmEngine  # torch and transformers: only where a VLM runs

        try:
            _engines[choice] = VlmEngine(choice.vlm)
        except VlmUnavailable as exc:
            if choice.on_unavailable == "hold":
                log.error("%s engine unavailable, job held: %s", choice.name, exc)
                raise
            log.error("%s engine unavailable, measuring instead: %s", choice.name, exc)
            return FallbackEngine(choice.name, str(exc))
    return _engines[choice]


def init_worker_process(log_level: int, server_pid: int) -> None:
    """Set up a freshly spawned worker process like the server process.

    `server_pid` comes from the server: by the time a slow import finishes here the
    server may already be gone, and os.getppid() would name init instead.
    """
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s"
    )
    # pydicom's value-validation warnings quote the offending value (a name, an ID).
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    # Processing takes what CPU is left: a modality waiting for its C-STORE response
    # (intake, in the server process) comes first.
    os.nice(_WORKER_NICENESS)
    threading.Thread(target=_exit_with_server, args=(server_pid,), daemon=True).start()


def _exit_with_server(server_pid: int) -> None:
    """A worker whose server was killed (kill -9) must not live on as an orphan, blocked
    forever writing a result that nobody reads."""
    while os.getppid() == server_pid:
        time.sleep(1.0)
    os._exit(0)
