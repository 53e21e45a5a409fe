"""`kill -9` of the gateway while objects arrive and jobs are in flight, then a restart:
every object that got a success status is processed exactly once, and nothing that the
sender resends after the crash is processed twice."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pydicom
import pytest

from tests import dicom_samples as samples
from tests.gateway_process import REPO, GatewayProcess

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")

OBJECTS = 16
KILL_AFTER_SUCCESSES = 8


def _objects(shared_data, tmp_path) -> list:
    vendor = shared_data / samples.VENDOR_ECG
    files = []
    for i in range(OBJECTS // 2):
        files.append(samples.copy_with_new_uid(vendor, tmp_path / f"ecg-{i}.dcm"))
        files.append(samples.secondary_capture_jpeg(shared_data, tmp_path / f"photo-{i}.dcm"))
    return files


def _send(port: int, files: list) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "send",
            "--port",
            str(port),
            "--aet",
            "CART1",
            *map(str, files),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _all_exit(pids: list[int], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_loses_nothing_and_processes_each_object_once(
    shared_data, tmp_path, backend, request
):
    files = _objects(shared_data, tmp_path)
    uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    gateway = GatewayProcess(tmp_path / "data", store_url=url).start()
    try:
        sender = _send(gateway.port, files)
        acknowledged = []
        for line in sender.stdout:
            if line.startswith("OK"):
                acknowledged.append(line.split()[2])
            if len(acknowledged) == KILL_AFTER_SUCCESSES:
                workers = gateway.children()
                gateway.kill_hard()  # mid-association, with a backlog being processed
                break
        sender.wait(timeout=60)
        assert workers and _all_exit(workers, within_s=15)  # no orphaned worker processes

        store = gateway.open_store()
        at_crash = store.count_jobs()
        received = {job.sop_instance_uid for job in store.list_jobs(limit=1000)}
        store.close()
        # Every success the sender saw is in the store; some work was still unfinished.
        acknowledged_uids = {
            str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in acknowledged
        }
        assert acknowledged_uids <= received
        assert at_crash.get("queued", 0) + at_crash.get("leased", 0) > 0, at_crash

        gateway.start()
        resend = _send(gateway.port, files)  # the modality sends everything again
        out, err = resend.communicate(timeout=120)
        assert resend.returncode == 0, out + err
        counts = gateway.wait_until_processed(len(files), timeout_s=180)
        assert counts == {"done": len(files)}, gateway.logs()[-3000:]
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()

    jobs, deliveries = gateway.store_contents()
    assert sorted(j.sop_instance_uid for j in jobs) == sorted(uids)  # one job per object
    assert Counter(d.job_id for d in deliveries) == Counter({j.id: 1 for j in jobs})
    assert _jobs_with_reports(gateway) == sorted(j.id for j in jobs)


def _jobs_with_reports(gateway: GatewayProcess) -> list[int]:
    """The jobs whose report files the store can hand to delivery."""
    if gateway.store_url is None:
        return sorted(int(p.name) for p in (gateway.data_dir / "reports").iterdir())
    with psycopg.connect(gateway.store_url) as conn:
        rows = conn.execute("SELECT DISTINCT job_id FROM report_files WHERE name = 'report.json'")
        return sorted(row[0] for row in rows)
