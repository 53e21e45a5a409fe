"""`kill -9` of the gateway again and again, each time with jobs in flight (the first job
after a restart is slow while the workers warm up): no acknowledged ECG ends failed, each
is done and delivered once, on either store backend. Restarts used to use up attempts and
fail jobs silently."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from tests import dicom_samples as samples
from tests.gateway_process import REPO, GatewayProcess

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")

ECGS = 10
KILLS = 4  # more than job_max_attempts (3)


def _in_flight(gateway: GatewayProcess, timeout_s: float = 60.0) -> None:
    """Wait until this gateway process holds a job's lease."""
    marker = f":{gateway.process.pid}:"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        store = gateway.open_store()
        try:
            leased = store.list_jobs(state="leased")
        finally:
            store.close()
        if any(marker in (job.lease_owner or "") for job in leased):
            return
        time.sleep(0.02)
    raise TimeoutError(f"no job in flight:\n{gateway.logs()[-3000:]}")


def _wait_all_sent(gateway: GatewayProcess, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    states: list[str] = []
    while time.monotonic() < deadline:
        store = gateway.open_store()
        try:
            states = [d.state for d in store.list_deliveries()]
            jobs = store.count_jobs()
        finally:
            store.close()
        if states == ["sent"] * ECGS or jobs.get("failed"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"deliveries {states}:\n{gateway.logs()[-3000:]}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_repeated_kill_9_with_jobs_in_flight_fails_no_ecg(shared_data, tmp_path, backend, request):
    vendor = shared_data / samples.VENDOR_ECG
    files = [samples.copy_with_new_uid(vendor, tmp_path / f"ecg-{i}.dcm") for i in range(ECGS)]
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    gateway = GatewayProcess(tmp_path / "data", store_url=url).start()
    try:
        sent = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "send", "--port", str(gateway.port)]
            + [str(f) for f in files],
            capture_output=True,
            check=False,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert sent.returncode == 0 and sent.stdout.count("OK") == ECGS, sent.stdout + sent.stderr
        for _ in range(KILLS):
            _in_flight(gateway)
            gateway.kill_hard()
            gateway.start()
        _wait_all_sent(gateway)
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()
    jobs, deliveries = gateway.store_contents()
    assert [j.error for j in jobs if j.state == "failed"] == []  # none silently given up
    assert [(j.state, j.error) for j in jobs] == [("done", None)] * ECGS
    assert sorted(d.job_id for d in deliveries) == sorted(j.id for j in jobs)
    assert {d.state for d in deliveries} == {"sent"}
    assert gateway.logs().count("requeued") >= KILLS  # each restart found work in flight
