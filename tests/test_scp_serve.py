"""The whole gateway as a process: dcmtk storescu sends real files to `ecg-gateway serve`,
reports appear, `ecg-gateway send` prints statuses, SIGTERM stops it cleanly (exit 0)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pydicom
import pytest

from gateway.store import SqliteStore
from tests import dicom_samples as samples
from tests.gateway_process import REPO, GatewayProcess

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")


@pytest.fixture
def server(tmp_path):
    process = GatewayProcess(tmp_path / "data").start()
    yield process
    process.stop_if_running()


def test_real_files_from_storescu_become_reports(server, shared_data, tmp_path):
    files = [
        shared_data / samples.VENDOR_ECG,
        samples.wfdb_ecg(shared_data, "ptbxl/records500/00000/00001_hr", tmp_path / "ptbxl.dcm"),
        samples.wfdb_ecg(shared_data, "cinc2021/E07500", tmp_path / "georgia.dcm"),
        samples.secondary_capture_jpeg(shared_data, tmp_path / "photo.dcm"),
        samples.encapsulated_pdf(shared_data, tmp_path / "printout.dcm"),
    ]
    result = subprocess.run(
        ["storescu", "-xy", "-aet", "CART1", "127.0.0.1", str(server.port), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert server.wait_until_processed(len(files)) == {"done": len(files)}

    store = SqliteStore(server.data_dir / "gateway.sqlite3")
    jobs = {job.sop_instance_uid: job for job in store.list_jobs()}
    deliveries = store.list_deliveries()
    store.close()
    for path in files:
        job = jobs[pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID]
        report = json.loads((server.data_dir / "reports" / str(job.id) / "report.json").read_text())
        assert report["status"] == "preliminary" and report["impression"]
        assert report["source"]["kind"] == job.kind
    assert sorted(d.job_id for d in deliveries) == sorted(j.id for j in jobs.values())

    assert server.terminate() == 0
    log = server.logs()
    assert "stopped" in log
    for path in files[:1]:
        patient_id = str(pydicom.dcmread(path).PatientID)
        assert patient_id not in log  # patient data never in the log


def test_send_prints_each_status_and_fails_if_any_failed(server, shared_data, tmp_path):
    good = shared_data / samples.VENDOR_ECG
    bad = samples.copy_with_new_uid(good, tmp_path / "nowave.dcm", WaveformSequence=None)
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not a DICOM file")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "send",
            "--port",
            str(server.port),
            str(good),
            str(bad),
            str(not_dicom),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("OK     0x0000") and str(good) in lines[0]
    assert lines[1].startswith("FAILED 0xA900") and "WaveformSequence" in lines[1]
    assert lines[2].startswith("FAILED ------") and "not a DICOM file" in lines[2]


def test_second_server_on_the_same_data_dir_is_refused(server):
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--data-dir",
            str(server.data_dir),
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )
    assert second.returncode == 1 and "another gateway is already running" in second.stderr
