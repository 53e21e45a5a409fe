"""Signals to a real `ecg-gateway serve`: SIGHUP reloads routes and gateway.yaml while
dcmtk's storescu is mid-association (nothing dropped, the new policy for the next
association, a bad file changing nothing); SIGTERM drains (leased jobs finish, the rest
stay queued, nothing failed); JSON logs."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pydicom
import pytest

from tests import dicom_samples as samples
from tests.gateway_process import GatewayProcess, free_port

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")

ROUTES = """destinations:
  archive:
    type: file
    directory: archive
    formats: [fhir]
rules: []
default: [archive]
"""


def ecgs(shared_data: Path, directory: Path, count: int) -> list[Path]:
    return [
        samples.copy_with_new_uid(shared_data / samples.VENDOR_ECG, directory / f"e{i}.dcm")
        for i in range(count)
    ]


def storescu(port: int, files: list[Path], aet: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        ["storescu", "-aet", aet, "127.0.0.1", str(port), *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kwargs,
    )


def wait_for_log(gateway: GatewayProcess, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in gateway.logs():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{gateway.logs()[-3000:]}"
        time.sleep(0.05)


def test_sighup_reloads_routes_and_config_without_dropping_an_association(tmp_path, shared_data):
    config = tmp_path / "gateway.yaml"
    admin = f"admin: {{port: {free_port()}}}\n"  # named here, so the gateway reads this file
    config.write_text(admin + "routes_optional: true\nallowed_calling_aes: [CART1, ECHOSCU]\n")
    files = ecgs(shared_data, tmp_path, 40)
    gateway = GatewayProcess(tmp_path / "data", config=config).start()
    try:
        sending = storescu(gateway.port, files, "CART1")
        wait_for_log(gateway, "accepted ")  # the association is under way
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "routes.yaml").write_text(ROUTES)
        config.write_text(
            admin + "routes_optional: true\nallowed_calling_aes: [CART1, CART2, ECHOSCU]\n"
            "workers: 3\n"
        )
        assert sending.poll() is None, "storescu finished before the reload: send more files"
        gateway.process.send_signal(signal.SIGHUP)
        output, _ = sending.communicate(timeout=120)
        assert sending.returncode == 0, output.decode(errors="replace")
        wait_for_log(gateway, "reload: applied allowed_calling_aes")
        log = gateway.logs()
        assert "reload: workers changed: takes effect at the next restart" in log
        assert "routes reloaded from config/routes.yaml" in log

        second = storescu(gateway.port, files[:1], "CART2")  # allowed since the reload
        assert second.wait(timeout=60) == 0
        counts = gateway.wait_until_processed(40)
        assert counts == {"done": 40}  # every object of the association and none more

        config.write_text(admin + "routes_optional: true\nallowed_calling_aes: [CART1]\nport: x\n")
        gateway.process.send_signal(signal.SIGHUP)
        wait_for_log(gateway, "configuration NOT changed")
        assert "line 4: port" in gateway.logs()
        assert storescu(gateway.port, files[:1], "CART2").wait(timeout=60) == 0  # unchanged
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()
    trail = (gateway.data_dir / "audit" / "audit-trail.jsonl").read_text()
    assert "configuration reloaded: allowed_calling_aes" in trail
    assert "routes reloaded" in trail
    archived = list((gateway.data_dir / "archive").glob("*.fhir.json"))
    assert archived, "reports after the reload go to the reloaded routes' destination"


def test_sigterm_drains_finishing_leased_jobs_and_leaving_the_rest_queued(tmp_path, shared_data):
    config = tmp_path / "gateway.yaml"
    config.write_text("routes_optional: true\nworkers: 1\nshutdown_grace_s: 60\n")
    files = ecgs(shared_data, tmp_path, 100)
    gateway = GatewayProcess(tmp_path / "data", config=config).start()
    try:
        url = gateway.admin_url
        sending = storescu(gateway.port, files, "CART1")
        wait_for_log(gateway, "accepted ")  # the association is under way
        gateway.process.send_signal(signal.SIGTERM)
        ready = httpx.get(f"{url}/readyz")
        while ready.status_code == 200:
            ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["draining"] == {"ok": False}
        wait_for_log(gateway, "no new associations")
        time.sleep(0.5)  # the accept loop polls every 0.2 s
        echo = subprocess.run(
            ["echoscu", "127.0.0.1", str(gateway.port)], capture_output=True, check=False
        )
        assert sending.poll() is None, "storescu finished before the drain: send more files"
        assert echo.returncode != 0  # not accepting, while the association in progress goes on
        output, _ = sending.communicate(timeout=120)
        assert sending.returncode == 0, output.decode(errors="replace")
        assert gateway.process.wait(timeout=120) == 0
    finally:
        gateway.stop_if_running()
    jobs, _ = gateway.store_contents()
    states = {state: sum(job.state == state for job in jobs) for state in ("done", "queued")}
    assert len(jobs) == 100  # every object of the association, acknowledged and kept
    assert states["done"] + states["queued"] == 100  # none left leased, none failed
    assert states["queued"] > 0, "the rest stays queued for the next start"
    assert "released to the queue" not in gateway.logs()  # the job in hand finished


def test_json_logs_hold_no_patient_data(tmp_path, shared_data):
    config = tmp_path / "gateway.yaml"
    config.write_text("routes_optional: true\nlog_format: json\n")
    files = ecgs(shared_data, tmp_path, 1)
    patient_id = str(pydicom.dcmread(files[0], stop_before_pixels=True).PatientID)
    gateway = GatewayProcess(tmp_path / "data", config=config).start()
    try:
        assert storescu(gateway.port, files, "CART1").wait(timeout=60) == 0
        gateway.wait_until_processed(1)
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()
    lines = [line for line in gateway.logs().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "name", "message"} <= set(records[-1])
    assert any(r["message"].startswith("accepted ") for r in records)
    assert records[-1]["message"] == "stopped"
    assert patient_id not in gateway.logs()
