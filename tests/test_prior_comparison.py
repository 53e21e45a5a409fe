"""Serial comparison in the pipeline: the prior is the patient's previous finished ECG
(same Patient ID AND issuer, acquired before) from the gateway's own store, on both
backends; the comparison and the critical findings are in the preliminary report that is
packaged and routed, and a critical report gets its alert row when someone is to be told."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from test_pipeline import Gateway
from test_store import open_backend

from gateway import metrics as m
from gateway.config import ComparisonConfig
from gateway.delivery.hl7 import build_oru
from gateway.durable import ensure_dir
from gateway.intake.accept import Intake
from gateway.metrics import Metrics
from gateway.processing.findings import PRIOR_NOT_COMPARED
from gateway.processing.package import ReportPackage
from gateway.processing.workers import Workers, WorkerSettings
from gateway.routing import Hl7Options, Router
from model.dicom_write import ecg_to_dicom
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg

FAST_AF = RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=130)
ROUTES = """
destinations:
  outbox: {type: file, directory: outbox}
default: [outbox]
critical:
  targets:
    pager: {type: webhook, url: "http://127.0.0.1:9/hook"}
  notify: [pager]
"""


def ecg_file(
    folder: Path, name: str, spec: RhythmSpec, patient: str, issuer: str, acquired: datetime
) -> Path:
    """A DICOM 12-lead ECG of `spec`, of this patient, acquired then."""
    ecg = rhythm_ecg(spec)[0]
    meta = ecg.metadata.with_updates(
        patient_id=patient,
        patient_id_issuer=issuer,
        patient_name="Doe^Jane",
        acquisition_time=acquired,
    )
    path = folder / f"{name}.dcm"
    ecg_to_dicom(replace(ecg, metadata=meta)).save_as(path, enforce_file_format=True)
    return path


class Pipeline:
    def __init__(self, store, data_dir: Path, comparison: ComparisonConfig | None = None) -> None:
        ensure_dir(data_dir / "spool")
        (data_dir / "routes.yaml").write_text(ROUTES)
        self.store = store
        self.metrics = Metrics()
        self.intake = Intake(store, data_dir / "spool", Metrics())
        self.workers = Workers(
            store,
            Router(data_dir / "routes.yaml", data_dir),
            WorkerSettings(
                reports_dir=data_dir / "reports", comparison=comparison or ComparisonConfig()
            ),
            self.metrics,
        )

    def process(self, path: Path) -> ReportPackage:
        outcome = Gateway.offer(self, path)  # as the SCP hands an object to intake
        assert outcome.status == 0, outcome
        assert self.workers.run_once("test-worker")
        job = self.store.list_jobs(limit=1)[0]
        assert job.state == "done", job.error
        folder = self.store.report_files_of(job)  # PostgreSQL: this node's copy
        assert folder is not None
        return ReportPackage.load(folder)


def assert_told_without_comparison(package: ReportPackage, warning: str) -> list[str]:
    """No comparison on the report, `warning` on it and in the HL7 result's notes (the
    EHR is told); the notes, for a caller's further checks."""
    assert package.report.comparison is None
    assert warning in package.report.warnings
    notes = [s for s in build_oru(package, Hl7Options(), "1").split("\r") if s[:4] == "NTE|"]
    assert any(warning in note for note in notes)
    return notes


@pytest.fixture(params=["sqlite", "postgresql"])
def pipeline(request, tmp_path):
    store = open_backend(request.param, request, tmp_path)
    yield Pipeline(store, tmp_path / "data")
    store.close()


def test_comparison_with_the_patients_previous_ecg(pipeline, tmp_path):
    day = datetime(2026, 3, 1, 9, 0)
    sinus = ecg_file(tmp_path, "a", RhythmSpec(rate_bpm=70), "P1", "HOSP", day)
    first = pipeline.process(sinus)
    assert first.report.comparison is None  # no prior: no comparison
    assert first.report.critical == []
    # the same Patient ID from another issuer is another patient: not a prior
    other = ecg_file(tmp_path, "b", RhythmSpec(rate_bpm=100), "P1", "OTHER", day.replace(hour=10))
    assert pipeline.process(other).report.comparison is None
    fast_af = ecg_file(tmp_path, "c", FAST_AF, "P1", "HOSP", day.replace(day=2))
    package = pipeline.process(fast_af)
    comparison = package.report.comparison
    assert comparison.prior_sop_instance_uid == first.sop_instance_uid
    assert comparison.prior_acquired_at.replace(tzinfo=None) == day
    codes = {s.code: (s.current, s.prior) for s in comparison.statements}
    assert codes["NEW_RHYTHM"] == ("AFIB", "SR")
    assert codes["RESOLVED_RHYTHM"] == ("AFIB", "SR")
    assert codes["RATE_INCREASED"][1] == first.report.measurements.heart_rate_bpm
    assert [f.rule for f in package.report.critical] == ["afib-flutter-rapid"]
    assert pipeline.metrics.get(m.JOBS_CRITICAL) == 1
    alert = pipeline.store.get_critical_alert(package.job_id)
    assert alert.rules == ("afib-flutter-rapid",) and alert.state == "pending"
    # an ECG acquired before the AF one (sent late) is compared with the sinus one
    late = ecg_file(
        tmp_path, "d", RhythmSpec(rate_bpm=72, seed=3), "P1", "HOSP", day.replace(hour=12)
    )
    assert pipeline.process(late).report.comparison.prior_sop_instance_uid == (
        first.sop_instance_uid
    )


def test_a_stored_prior_this_version_cannot_read_leaves_a_warning_not_a_failed_job(
    tmp_path, request, caplog
):
    """The patient's earlier report was stored by another version of the gateway (a
    measurement this one does not know: a rolling upgrade of a cluster). The new ECG's report
    still goes out, told in words that the prior could not be compared; the log names
    the fault, never the stored text."""
    store = open_backend("sqlite", request, tmp_path)
    try:
        pipeline = Pipeline(store, tmp_path / "data", ComparisonConfig())
        day = datetime(2026, 3, 1, 9, 0)
        pipeline.process(ecg_file(tmp_path, "a", RhythmSpec(rate_bpm=70), "P21", "HOSP", day))
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as conn:  # as a newer version wrote it
        changed = conn.execute(
            "UPDATE prior_ecgs SET report = json_set(report, '$.measurements.st_j_v9_uv', 150)"
        ).rowcount
    assert changed == 1
    store = open_backend("sqlite", request, tmp_path)
    try:
        pipeline = Pipeline(store, tmp_path / "data", ComparisonConfig())
        later = ecg_file(tmp_path, "b", FAST_AF, "P21", "HOSP", day.replace(day=2))
        package = pipeline.process(later)  # asserts the job is done
    finally:
        store.close()
    assert_told_without_comparison(package, PRIOR_NOT_COMPARED)
    assert "earlier reports not readable: ValidationError at" in caplog.text
    assert "P21" not in caplog.text and "st_j_v9_uv" not in caplog.text
