"""The prior ECG from a DICOM archive: dcmtk's dcmqrscp as the real archive, filled by
storescu; the gateway finds the patient's ECG by C-FIND (study, series, instance) and
retrieves it by C-GET, accepting only the same Patient ID and issuer, acquired before."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pydicom
import pytest
from test_prior_comparison import FAST_AF, Pipeline, assert_told_without_comparison, ecg_file
from test_store import open_backend

from gateway.config import ComparisonConfig, PriorArchiveConfig
from gateway.delivery.base import safe_file_stem
from gateway.delivery.sweeper import DeliverySweeper
from gateway.processing.findings import (
    ARCHIVED_PRIOR_NOT_COMPARED,
    NO_ARCHIVE_NO_COMPARISON,
    NO_ARCHIVE_OWN_PRIOR,
    PRIOR_NOT_COMPARED,
)
from gateway.processing.prior_archive import ArchiveError, archive_prior
from gateway.routing import Router
from model.ecg import EcgMetadata
from model.rhythm_synthetic import RhythmSpec
from tests import dicom_samples as samples
from tests.gateway_process import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("dcmqrscp") is None or shutil.which("storescu") is None,
    reason="dcmtk's dcmqrscp and storescu are needed (installed by .ci/run)",
)
DAY = datetime(2026, 3, 1, 9, 0)


@pytest.fixture
def archive(tmp_path):
    """A running dcmqrscp with an empty storage area, called ARCHIVE, that knows the
    gateway's move destination GWMOVE (the settings retrieve by C-GET unless changed)."""
    settings, server = start_archive(tmp_path)
    yield settings
    server.terminate()
    server.wait(timeout=10)


def start_archive(tmp_path: Path, *options: str) -> tuple[PriorArchiveConfig, subprocess.Popen]:
    """dcmqrscp (with these command-line options) and the settings that call it."""
    storage = tmp_path / "archive"
    storage.mkdir()
    port, move_port = free_port(), free_port()
    config = tmp_path / "dcmqrscp.cfg"
    config.write_text(
        f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 8\n"
        f"HostTable BEGIN\ngateway = (GWMOVE, 127.0.0.1, {move_port})\nHostTable END\n"
        "VendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\nARCHIVE {storage} RW (100, 512mb) ANY\nAETable END\n"
    )
    server = subprocess.Popen(
        ["dcmqrscp", *options, "-c", str(config), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    settings = PriorArchiveConfig(
        host="127.0.0.1",
        port=port,
        called_ae="ARCHIVE",
        timeout_s=10,
        move_destination_ae="GWMOVE",
        move_bind="127.0.0.1",
        move_port=move_port,
    )
    _wait_for(settings)
    return settings, server


def _wait_for(settings: PriorArchiveConfig) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["echoscu", "-aec", settings.called_ae, settings.host, str(settings.port)],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError("dcmqrscp did not start")


def store_in(settings: PriorArchiveConfig, *paths: Path) -> None:
    subprocess.run(
        [
            "storescu",
            "-aec",
            settings.called_ae,
            settings.host,
            str(settings.port),
            *map(str, paths),
        ],
        check=True,
        capture_output=True,
    )


def _meta(path: Path) -> EcgMetadata:
    ds = pydicom.dcmread(path)
    return EcgMetadata(
        patient_id=str(ds.PatientID),
        patient_id_issuer=str(ds.get("IssuerOfPatientID", "")) or None,
        sop_instance_uid=str(ds.SOPInstanceUID),
    )


def test_the_newest_earlier_ecg_of_the_same_patient_and_issuer(archive, tmp_path):
    older = ecg_file(tmp_path, "older", RhythmSpec(rate_bpm=60), "P7", "HOSP", DAY)
    prior = ecg_file(tmp_path, "prior", RhythmSpec(rate_bpm=65), "P7", "HOSP", DAY.replace(day=5))
    other_issuer = ecg_file(
        tmp_path, "other", RhythmSpec(rate_bpm=90), "P7", "ELSEWHERE", DAY.replace(day=8)
    )
    current = ecg_file(tmp_path, "current", FAST_AF, "P7", "HOSP", DAY.replace(day=9))
    store_in(archive, older, prior, other_issuer, current)
    found = archive_prior(archive, _meta(current), DAY.replace(day=9).timestamp())
    assert found.sop_instance_uid == _meta(prior).sop_instance_uid
    assert found.acquired_at == DAY.replace(day=5).timestamp()
    assert found.report.codes[0] == "SR"
    # before the older one: nothing
    assert archive_prior(archive, _meta(current), DAY.replace(hour=8).timestamp()) is None


def test_an_archive_without_c_get_sends_the_prior_by_c_move(archive, tmp_path):
    prior = ecg_file(tmp_path, "prior", RhythmSpec(rate_bpm=65), "P11", "HOSP", DAY)
    current = ecg_file(tmp_path, "current", FAST_AF, "P11", "HOSP", DAY.replace(day=2))
    store_in(archive, prior, current)
    moving = archive.model_copy(update={"retrieve": "move"})
    found = archive_prior(moving, _meta(current), DAY.replace(day=2).timestamp())
    assert found.sop_instance_uid == _meta(prior).sop_instance_uid
    assert found.report.codes[0] == "SR"
    unknown = moving.model_copy(update={"move_destination_ae": "NOBODY"})
    with pytest.raises(ArchiveError, match="C-MOVE failed"):  # the archive refuses it
        archive_prior(unknown, _meta(current), DAY.replace(day=2).timestamp())


def test_move_needs_its_destination():
    with pytest.raises(ValueError, match="move_destination_ae and move_port"):
        PriorArchiveConfig(host="h", port=104, called_ae="A", retrieve="move")


def test_no_ecg_of_the_patient(archive, tmp_path):
    store_in(archive, ecg_file(tmp_path, "a", RhythmSpec(), "SOMEONE", "HOSP", DAY))
    assert (
        archive_prior(
            archive, _meta(ecg_file(tmp_path, "b", RhythmSpec(), "P8", "HOSP", DAY)), None
        )
        is None
    )


def test_an_unreachable_archive_is_an_archive_error(tmp_path):
    settings = PriorArchiveConfig(host="127.0.0.1", port=free_port(), called_ae="NONE", timeout_s=2)
    with pytest.raises(ArchiveError, match="refused or not answered"):
        archive_prior(settings, EcgMetadata(patient_id="P1"), None)


def test_pipeline_compares_with_the_archived_prior_when_the_store_has_none(
    archive, tmp_path, request
):
    prior = ecg_file(tmp_path, "prior", RhythmSpec(rate_bpm=65), "P9", "HOSP", DAY)
    store_in(archive, prior)
    store = open_backend("sqlite", request, tmp_path)
    try:
        pipeline = Pipeline(store, tmp_path / "data", ComparisonConfig(archive=archive))
        current = ecg_file(tmp_path, "current", FAST_AF, "P9", "HOSP", DAY.replace(day=3))
        report = pipeline.process(current).report
        assert report.comparison.prior_sop_instance_uid == _meta(prior).sop_instance_uid
        assert {s.code for s in report.comparison.statements} >= {"NEW_RHYTHM", "RATE_INCREASED"}
    finally:
        store.close()


def test_an_unreachable_archive_leaves_a_warning_not_a_failed_job(tmp_path, request):
    store = open_backend("sqlite", request, tmp_path)
    try:
        gone = PriorArchiveConfig(host="127.0.0.1", port=free_port(), called_ae="GONE", timeout_s=2)
        pipeline = Pipeline(store, tmp_path / "data", ComparisonConfig(archive=gone))
        path = ecg_file(tmp_path, "a", RhythmSpec(), "P10", "HOSP", DAY)
        report = pipeline.process(path).report
        assert report.comparison is None
        assert NO_ARCHIVE_NO_COMPARISON in report.warnings
        later = ecg_file(tmp_path, "b", FAST_AF, "P10", "HOSP", DAY.replace(day=2))
        report = pipeline.process(later).report  # compared with the store's own prior
        assert report.comparison is not None
        assert NO_ARCHIVE_OWN_PRIOR in report.warnings
    finally:
        store.close()


def test_an_archive_os_error_is_told_in_words_and_its_text_kept_out_of_the_report(
    archive, tmp_path, request, monkeypatch, caplog
):
    """The C-MOVE lock file cannot be made (a folder stands at its path): the OS error's
    text names the path, which may carry an ID. The report (and the HL7 result built
    from it) says in words what failed; the log names the error's type and reason."""
    prior = ecg_file(tmp_path, "prior", RhythmSpec(rate_bpm=65), "P12", "HOSP", DAY)
    store_in(archive, prior)
    temp = tmp_path / "tmp-P12-ACC0042"  # a temporary folder named after the patient
    (temp / f"ecg-gateway-move-{archive.move_port}.lock").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # run_once before start: in-process
    moving = archive.model_copy(update={"retrieve": "move"})
    store = open_backend("sqlite", request, tmp_path)
    try:
        pipeline = Pipeline(store, tmp_path / "data", ComparisonConfig(archive=moving))
        current = ecg_file(tmp_path, "current", FAST_AF, "P12", "HOSP", DAY.replace(day=2))
        package = pipeline.process(current)
    finally:
        store.close()
    notes = assert_told_without_comparison(package, NO_ARCHIVE_NO_COMPARISON)
    for text in (*package.report.warnings, *notes):
        assert "P12" not in text and "Errno" not in text and "lock" not in text
    log = caplog.text
    assert "prior ECG archive not used: IsADirectoryError (Is a directory)" in log
    assert "tmp-P12" not in log


def test_an_archive_that_refuses_c_get_leaves_a_warning_not_a_failed_job(tmp_path, request, caplog):
    """dcmqrscp --disable-get: the C-GET presentation context is refused, which pynetdicom
    raises as a ValueError; the report still goes out, told in words, the log says why."""
    settings, server = start_archive(tmp_path, "--disable-get")
    store = open_backend("sqlite", request, tmp_path)
    try:
        store_in(settings, ecg_file(tmp_path, "prior", RhythmSpec(rate_bpm=65), "P13", "HOSP", DAY))
        pipeline = Pipeline(store, tmp_path / "data", ComparisonConfig(archive=settings))
        current = ecg_file(tmp_path, "current", FAST_AF, "P13", "HOSP", DAY.replace(day=2))
        report = pipeline.process(current).report  # asserts the job is done
        assert report.comparison is None
        assert NO_ARCHIVE_NO_COMPARISON in report.warnings
        assert "prior ECG archive not used: ARCHIVE does not accept C-GET" in caplog.text
    finally:
        store.close()
        server.terminate()
        server.wait(timeout=10)


def _malformed_prior(tmp_path: Path, shared_data: Path, patient: str) -> Path:
    """The real DICOM ECG, made this patient's ECG of DAY, its waveform cut short (an
    archive's copy that the decoder refuses)."""
    ds = pydicom.dcmread(shared_data / samples.VENDOR_ECG)
    ds.PatientID, ds.IssuerOfPatientID = patient, "HOSP"
    ds.AcquisitionDateTime = DAY.strftime("%Y%m%d%H%M%S")
    ds.StudyDate, ds.StudyTime = DAY.strftime("%Y%m%d"), DAY.strftime("%H%M%S")
    group = ds.WaveformSequence[0]
    group.WaveformData = group.WaveformData[: len(group.WaveformData) // 3]
    path = tmp_path / "malformed-prior.dcm"
    ds.save_as(path)
    return path


def test_a_prior_the_decoder_refuses_leaves_a_warning_and_the_report_is_delivered(
    archive, tmp_path, request, shared_data, caplog
):
    """The archive's prior of this patient cannot be decoded (its waveform is truncated):
    the current report still goes out, to the outbox as FHIR and HL7, told in words that
    the prior could not be compared, never the decoder's text (it names a file); the log
    names the fault. The next ECG is compared with the gateway's own prior instead, told so;
    the malformed one is not passed over for an older archived ECG."""
    older = ecg_file(
        tmp_path, "older", RhythmSpec(rate_bpm=65), "P14", "HOSP", DAY.replace(day=1, hour=8)
    )
    store_in(archive, older, _malformed_prior(tmp_path, shared_data, "P14"))
    store = open_backend("sqlite", request, tmp_path)
    data = tmp_path / "data"
    try:
        pipeline = Pipeline(store, data, ComparisonConfig(archive=archive))
        current = ecg_file(tmp_path, "current", FAST_AF, "P14", "HOSP", DAY.replace(day=2))
        package = pipeline.process(current)  # asserts the job is done
        assert_told_without_comparison(package, PRIOR_NOT_COMPARED)
        later = ecg_file(
            tmp_path, "later", RhythmSpec(rate_bpm=70), "P14", "HOSP", DAY.replace(day=3)
        )
        report = pipeline.process(later).report
        assert report.comparison.prior_sop_instance_uid == package.sop_instance_uid
        assert ARCHIVED_PRIOR_NOT_COMPARED in report.warnings
        assert DeliverySweeper(store, Router(data / "routes.yaml", data)).sweep().sent == 2
    finally:
        store.close()
    stem = safe_file_stem(package.sop_instance_uid)
    hl7 = (data / "outbox" / f"{stem}.hl7").read_text()
    fhir = (data / "outbox" / f"{stem}.fhir.json").read_text()
    assert PRIOR_NOT_COMPARED in hl7 and PRIOR_NOT_COMPARED in fhir  # the EHR is told
    for text in (*package.report.warnings, hl7, fhir):
        assert "EcgDecodeError" not in text and "prior.dcm" not in text and "bytes" not in text
    assert "archived prior ECG not compared: EcgDecodeError at" in caplog.text
    assert "prior.dcm" not in caplog.text and "P14" not in caplog.text
