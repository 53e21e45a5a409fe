"""The processing pipeline on real received objects: each job ends done (with a report
package and its deliveries, in one transaction) or failed (with its reason), exactly once.

Objects enter through the real Intake (as the SCP hands them over), so the spool and
store are exactly what a running gateway has.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pydicom
import pytest
from PIL import Image

from gateway import metrics as m
from gateway.cli import main
from gateway.durable import ensure_dir
from gateway.intake.accept import Intake, Outcome
from gateway.metrics import Metrics
from gateway.processing import workers as workers_module
from gateway.processing.package import ReportPackage
from gateway.processing.workers import Workers, WorkerSettings
from gateway.routing import Router
from gateway.store import SqliteStore
from tests import dicom_samples as samples
from tests import poison


class Gateway:
    """Store + spool + intake + pipeline in a temp data dir, workers not started."""

    def __init__(self, data_dir: Path, workers: int = 1, **settings: float) -> None:
        self.data_dir = data_dir
        self.spool = data_dir / "spool"
        self.reports = data_dir / "reports"
        ensure_dir(self.spool)
        self.store = SqliteStore(data_dir / "gateway.sqlite3")
        self.metrics = Metrics()
        self.intake = Intake(self.store, self.spool, self.metrics)
        self.finished: list[list[str]] = []  # what delivery is told, per finished job
        self.pipeline = Workers(
            self.store,
            Router(data_dir / "no-routes.yaml", data_dir, optional=True),  # all to the outbox
            WorkerSettings(
                reports_dir=self.reports, workers=workers, retry_delay_s=0.0, **settings
            ),
            self.metrics,
            on_done=self.finished.append,
        )

    def receive(self, path: Path) -> int:
        """Hand a file to intake as the SCP would; returns the job id."""
        outcome = self.offer(path)
        assert outcome.status == 0, outcome
        return self.store.list_jobs(limit=1)[0].id

    def run_until_all_finished(self, timeout_s: float) -> None:
        """Start the workers, wait until every job is done or failed, stop them."""
        self.pipeline.start()
        try:
            deadline = time.monotonic() + timeout_s
            while set(self.store.count_jobs()) - {"done", "failed"}:
                assert time.monotonic() < deadline, self.store.count_jobs()
                self.pipeline.wake()
                time.sleep(0.1)
        finally:
            self.pipeline.stop(grace_s=10)

    def offer(self, path: Path) -> Outcome:
        """Hand a file to intake as the SCP would; what the sender is told."""
        return self.intake.accept(samples.received(path))

    def process_all(self) -> None:
        while self.pipeline.run_once("test-worker"):
            pass

    def package(self, job_id: int) -> ReportPackage:
        return ReportPackage.load(Path(self.store.get_job(job_id).report_dir))


@pytest.fixture
def gw(tmp_path):
    gateway = Gateway(tmp_path / "data")
    yield gateway
    gateway.store.close()


@pytest.fixture
def vendor(shared_data):
    return shared_data / samples.VENDOR_ECG


def test_waveform_job_gets_report_renderings_and_one_delivery(gw, vendor):
    job_id = gw.receive(vendor)
    gw.process_all()
    job = gw.store.get_job(job_id)
    assert job.state == "done" and job.error is None and job.attempts == 1
    package = gw.package(job_id)
    original = pydicom.dcmread(vendor)
    assert package.sop_instance_uid == original.SOPInstanceUID
    assert package.kind == "ecg-waveform" and package.report.source.kind == "ecg-waveform"
    assert package.report.engine.name and package.report.impression
    assert not package.report.is_correction
    assert Image.open(io.BytesIO(package.png)).format == "PNG"
    assert package.pdf.startswith(b"%PDF-")
    assert package.association.calling_ae == "CART1"
    [delivery] = gw.store.list_deliveries()
    assert (delivery.job_id, delivery.destination, delivery.state) == (job_id, "outbox", "pending")
    assert original.PatientID not in delivery.patient_key  # a hash, never the ID itself
    assert gw.metrics.get(m.JOBS_DONE) == 1
    assert gw.finished == [["outbox"]]  # delivery is woken for it at once


def test_correction_is_processed_and_marked(gw, vendor, tmp_path):
    first = gw.receive(vendor)
    amended = samples.changed_copy(vendor, tmp_path / "amended.dcm", StudyDescription="amended")
    second = gw.receive(amended)
    gw.process_all()
    assert not gw.package(first).report.is_correction
    assert gw.package(second).report.is_correction
    assert len(gw.store.list_deliveries()) == 2


def test_wfdb_records_as_dicom_are_measured(gw, shared_data, tmp_path):
    path = samples.wfdb_ecg(shared_data, "ptbxl/records500/00000/00001_hr", tmp_path / "a.dcm")
    job_id = gw.receive(path)
    gw.process_all()
    package = gw.package(job_id)
    assert package.report.measurements.heart_rate_bpm is not None
    assert package.report.source.leads[:3] == ["I", "II", "III"]


def test_secondary_capture_gets_image_report_with_the_image(gw, shared_data, tmp_path):
    path = samples.secondary_capture_jpeg(shared_data, tmp_path / "sc.dcm")
    job_id = gw.receive(path)
    gw.process_all()
    package = gw.package(job_id)
    report = package.report
    assert package.kind == "secondary-capture" and report.source.kind == "secondary-capture"
    assert report.statements == [] and report.measurements.heart_rate_bpm is None
    assert "received" in report.impression and "not available" in report.impression
    image = Image.open(io.BytesIO(package.png))
    photo = Image.open(shared_data / samples.PHOTO_JPEG)
    assert image.size == photo.size
    assert package.pdf.startswith(b"%PDF-")
    assert [d.destination for d in gw.store.list_deliveries()] == ["outbox"]


def test_encapsulated_pdf_is_routed_with_the_document(gw, shared_data, tmp_path):
    path = samples.encapsulated_pdf(shared_data, tmp_path / "doc.dcm")
    job_id = gw.receive(path)
    gw.process_all()
    package = gw.package(job_id)
    assert package.kind == "pdf" and package.report.source.kind == "pdf"
    assert package.pdf == (tmp_path / "doc.pdf").read_bytes()
    assert package.source_image_type == "application/pdf"
    assert len(gw.store.list_deliveries()) == 1


def test_undecodable_waveform_fails_permanently_and_shows_in_the_cli(gw, vendor, tmp_path, capsys):
    # Passes intake (structure and sizes are right) but its samples cannot be decoded.
    broken = samples.copy_with_new_uid(vendor, tmp_path / "broken.dcm")
    ds = pydicom.dcmread(broken)
    for item in ds.WaveformSequence:
        del item.ChannelDefinitionSequence
    ds.save_as(broken, enforce_file_format=True)
    job_id = gw.receive(broken)
    gw.process_all()
    job = gw.store.get_job(job_id)
    assert job.state == "failed" and job.error.startswith("undecodable")
    assert job.attempts == 1  # permanent: not retried
    assert gw.store.list_deliveries() == []
    assert gw.metrics.get(m.JOBS_FAILED) == 1
    assert gw.finished == []  # a failed job is not handed to delivery
    assert main(["jobs", "list", "--data-dir", str(gw.data_dir)]) == 0
    out = capsys.readouterr().out
    assert ds.SOPInstanceUID in out and "failed" in out and "undecodable" in out
    assert ds.PatientID not in out
    assert main(["jobs", "show", ds.SOPInstanceUID, "--data-dir", str(gw.data_dir)]) == 0
    assert "undecodable" in capsys.readouterr().out
    assert main(["jobs", "retry", ds.SOPInstanceUID, "--data-dir", str(gw.data_dir)]) == 0
    assert gw.store.get_job(job_id).state == "queued"


def test_transient_failure_is_retried_then_succeeds(gw, shared_data, tmp_path):
    job_id = gw.receive(samples.encapsulated_pdf(shared_data, tmp_path / "doc.dcm"))
    gw.reports.parent.mkdir(parents=True, exist_ok=True)
    gw.reports.write_text("a file where the reports directory should be")
    assert gw.pipeline.run_once("w")
    job = gw.store.get_job(job_id)
    assert job.state == "queued" and job.attempts == 1 and "Error" in job.error
    gw.reports.unlink()
    time.sleep(0.01)
    gw.process_all()
    job = gw.store.get_job(job_id)
    assert job.state == "done" and job.attempts == 2
    assert gw.metrics.get(m.JOBS_RETRIED) == 1 and len(gw.store.list_deliveries()) == 1


def test_an_unexpected_error_is_kept_by_type_and_line_never_its_message(
    gw, vendor, monkeypatch, caplog
):
    """pydantic and many other errors quote their input: the job's error, the log and an
    alert name the type and the line, never a patient's values."""
    from gateway.processing import job as job_module

    patient = pydicom.dcmread(vendor, stop_before_pixels=True).PatientID

    def broken(*args, **kwargs):
        raise ValueError(f"input_value={patient!r} is not valid")

    monkeypatch.setattr(job_module, "_package", broken)
    job_id = gw.receive(vendor)
    assert gw.pipeline.run_once("w")
    job = gw.store.get_job(job_id)
    assert job.state == "queued" and job.error.startswith("ValueError at test_pipeline.py:")
    assert patient not in job.error and patient not in caplog.text


def test_a_store_failure_while_matching_orders_keeps_its_message(gw, vendor, monkeypatch):
    """A StoreError names the store, never a value: the job's error keeps what it says."""
    from gateway.store import StoreError

    def unavailable(*args, **kwargs):
        raise StoreError("postgresql://gw@db/ecg: connection refused")

    monkeypatch.setattr(workers_module, "link_order", unavailable)
    job_id = gw.receive(vendor)
    assert gw.pipeline.run_once("w")
    job = gw.store.get_job(job_id)
    assert job.state == "queued"
    assert job.error == "order matching: postgresql://gw@db/ecg: connection refused"


def test_transient_failure_gives_up_after_max_attempts(gw, shared_data, tmp_path):
    job_id = gw.receive(samples.encapsulated_pdf(shared_data, tmp_path / "doc.dcm"))
    gw.reports.parent.mkdir(parents=True, exist_ok=True)
    gw.reports.write_text("blocks the reports directory")
    gw.process_all()
    job = gw.store.get_job(job_id)
    assert job.state == "failed" and job.attempts == 3 and "gave up after 3" in job.error


def test_workers_process_every_job_exactly_once(tmp_path, shared_data, vendor):
    gateway = Gateway(tmp_path / "data", workers=2)
    files = [samples.copy_with_new_uid(vendor, tmp_path / f"{i}.dcm") for i in range(6)]
    files.append(samples.secondary_capture_jpeg(shared_data, tmp_path / "sc.dcm"))
    gateway.pipeline.start()
    try:
        # Started and loaded with the pipeline, not at the first job after a restart.
        assert [len(e._processes) for e in gateway.pipeline._executors.values()] == [1, 1]
        for path in files:
            gateway.receive(path)
            gateway.pipeline.wake()
        deadline = time.monotonic() + 60
        while gateway.store.count_jobs().get("done", 0) < len(files):
            assert time.monotonic() < deadline, gateway.store.count_jobs()
            time.sleep(0.05)
    finally:
        gateway.pipeline.stop(grace_s=10)
    deliveries = gateway.store.list_deliveries()
    assert sorted(d.job_id for d in deliveries) == sorted(j.id for j in gateway.store.list_jobs())
    report_dirs = sorted(p.name for p in gateway.reports.iterdir())
    assert len(report_dirs) == len(files)
    assert all(json.loads((gateway.reports / d / "report.json").read_text()) for d in report_dirs)
    gateway.store.close()


def test_intake_records_the_headers_routing_facts_in_the_job(gw, vendor, tmp_path):
    """Engine rules match on modality, institution and station before decoding: intake
    keeps them in the job row, so the workers never read the DICOM header again."""
    sent = samples.copy_with_new_uid(
        vendor, tmp_path / "cart.dcm", InstitutionName="St Elsewhere", StationName="CART7"
    )
    job = gw.store.get_job(gw.receive(sent))
    assert (job.modality, job.institution, job.station) == ("ECG", "St Elsewhere", "CART7")
    unnamed = samples.copy_with_new_uid(
        vendor, tmp_path / "bare.dcm", InstitutionName=None, StationName=None
    )
    job = gw.store.get_job(gw.receive(unnamed))
    assert (job.institution, job.station) == ("", "")


def test_a_patients_deliveries_wait_for_an_ecg_received_earlier_and_still_processing(
    gw, vendor, tmp_path
):
    """A long recording received first finishes after the ones received next: the EHR
    must still get them in receipt order (the newest ECG last)."""
    received = [
        gw.receive(samples.copy_with_new_uid(vendor, tmp_path / f"{i}.dcm")) for i in range(3)
    ]
    first = received[0]
    assert gw.store.lease_job("slow-worker", 300, 3).id == first  # still rendering
    gw.process_all()
    assert [gw.store.get_job(j).state for j in received] == ["leased", "done", "done"]
    assert gw.store.lease_due_deliveries() == []  # the two done ones wait for the first
    assert gw.store.release_job(first, "slow-worker")
    gw.process_all()
    sent = []
    while due := gw.store.lease_due_deliveries(limit=10):
        for delivery in due:
            sent.append(delivery.job_id)
            gw.store.mark_delivery_sent(delivery.id)
    assert sent == received
    # Intake's key (from the header) is the one routing gives the deliveries.
    keys = {gw.store.get_job(j).patient_key for j in received}
    assert keys == {d.patient_key for d in gw.store.list_deliveries()}
    assert len(keys) == 1 and keys.pop().startswith("p:")


def test_an_object_that_kills_its_worker_process_fails_after_max_deaths(
    tmp_path, vendor, monkeypatch, caplog
):
    """Each worker thread has its own helper process, so the deaths are pinned on the
    poison object alone; the jobs beside it are done, whatever order they ran in."""
    monkeypatch.setattr(workers_module, "process_jobs", poison.process_jobs_or_die)
    gateway = Gateway(tmp_path / "data", workers=2)
    poisoned = samples.changed_copy(vendor, tmp_path / "p.dcm", SOPInstanceUID=poison.POISON_UID)
    jobs = [gateway.receive(poisoned)]
    jobs += [
        gateway.receive(samples.copy_with_new_uid(vendor, tmp_path / f"{i}.dcm")) for i in range(3)
    ]
    gateway.run_until_all_finished(timeout_s=120)
    dead, *fine = (gateway.store.get_job(j) for j in jobs)
    assert (dead.state, dead.worker_deaths, dead.attempts) == ("failed", 3, 0)
    assert dead.error == "the worker process died each of the 3 times it processed this object"
    assert [(j.state, j.worker_deaths) for j in fine] == [("done", 0)] * 3
    assert gateway.metrics.get(m.WORKER_DEATHS) == 3 and gateway.metrics.get(m.JOBS_FAILED) == 1
    [error] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert (
        error.getMessage().startswith(f"job {jobs[0]} (")
        and "died each of the 3" in error.getMessage()
    )
    gateway.store.close()


def test_intake_and_processing_agree_on_the_patient_of_a_multi_valued_id(gw, vendor, tmp_path):
    """Receipt order waits on the patient key intake records; with several IDs in
    PatientID both sides must take the same (first) one, or the wait would miss."""
    sent = samples.copy_with_new_uid(vendor, tmp_path / "two-ids.dcm", PatientID=["MRN1", "MRN2"])
    job_id = gw.receive(sent)
    gw.process_all()
    [delivery] = gw.store.list_deliveries()
    assert gw.store.get_job(job_id).patient_key == delivery.patient_key
    assert any("PatientID holds 2 values" in w for w in gw.package(job_id).report.warnings)


def test_a_header_element_that_cannot_be_read_refuses_the_object_before_the_spool(
    gw, vendor, tmp_path
):
    """PatientID with an invalid VR (found by bench/reliability.py): pydicom raises when
    it is read. Refused with a named status, not an internal error, and nothing written."""
    sent = samples.copy_with_new_uid(vendor, tmp_path / "bad-vr.dcm")
    raw = bytearray(sent.read_bytes())
    at = raw.index(b"\x10\x00\x20\x00LO")  # (0010,0020) PatientID, explicit VR
    raw[at + 4 : at + 6] = b"Z9"
    sent.write_bytes(bytes(raw))
    outcome = gw.offer(sent)
    assert (outcome.status, outcome.reason) == (0xC000, "undecodable")
    assert list(gw.spool.iterdir()) == [] and gw.store.list_jobs() == []


def test_an_object_whose_processing_never_returns_is_stopped_and_fails(
    tmp_path, vendor, monkeypatch, caplog
):
    """A helper stuck on one object is killed before its lease runs out (the wait for its
    answer has a limit), counted as a worker death, and the object fails after the
    allowed number; the other worker goes on meanwhile."""
    monkeypatch.setattr(workers_module, "process_jobs", poison.process_jobs_or_die)
    gateway = Gateway(tmp_path / "data", workers=2, lease_s=4.0, max_worker_deaths=2)
    stuck = samples.changed_copy(vendor, tmp_path / "h.dcm", SOPInstanceUID=poison.HANGING_UID)
    jobs = [
        gateway.receive(stuck),
        gateway.receive(samples.copy_with_new_uid(vendor, tmp_path / "ok.dcm")),
    ]
    gateway.run_until_all_finished(timeout_s=90)
    hung, fine = (gateway.store.get_job(j) for j in jobs)
    assert (hung.state, hung.worker_deaths) == ("failed", 2)
    assert fine.state == "done"
    assert "no answer from the helper process within 4 s" in caplog.text
    gateway.store.close()
