"""The site's alert command hears every ECG that will not reach the EHR: a job failed for
good and a delivery given up, each with its SOP Instance UID and reason, never patient
data. The real gateway process, the real FHIR test peer refusing every Bundle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from peers import FhirTestServer

from gateway.alerts import DELIVERY_DEAD, JOB_FAILED, Alert, AlertHook
from tests import dicom_samples as samples
from tests.gateway_process import REPO, GatewayProcess

# The alert command: append the event's variables to a file, one JSON line per alert.
RECORD = (
    "import json, os, sys; "
    "open(sys.argv[1], 'a').write(json.dumps("
    "{k: v for k, v in os.environ.items() if k.startswith('ECG_GATEWAY_')}) + '\\n')"
)


def _recorded(path: Path, count: int, timeout_s: float = 60.0) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.1)
    raise TimeoutError(f"{count} alerts expected in {path}")


def test_the_hook_passes_the_event_in_the_environment(tmp_path):
    out = tmp_path / "alerts.jsonl"
    hook = AlertHook((sys.executable, "-c", RECORD, str(out)))
    hook.send(Alert(JOB_FAILED, "1.2.3", "job 7", "undecodable: no samples")).join(30)
    assert _recorded(out, 1) == [
        {
            "ECG_GATEWAY_EVENT": "job-failed",
            "ECG_GATEWAY_SUBJECT": "1.2.3",
            "ECG_GATEWAY_DETAIL": "job 7",
            "ECG_GATEWAY_REASON": "undecodable: no samples",
        }
    ]


def test_a_failing_command_is_logged_and_changes_nothing(tmp_path, caplog):
    hook = AlertHook((sys.executable, "-c", "raise SystemExit(3)"))
    hook.send(Alert(DELIVERY_DEAD, "1.2.3", "delivery 1 to ehr", "HTTP 400")).join(30)
    assert "exited 3" in caplog.text
    assert AlertHook().send(Alert(JOB_FAILED, "1.2.3", "job 1", "x")) is None  # no command


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")
def test_the_gateway_alerts_for_a_failed_job_and_a_dead_delivery(shared_data, tmp_path):
    out = tmp_path / "alerts.jsonl"
    fhir = FhirTestServer().start()
    fhir.fail_status, fhir.fail_message = 400, "Bundle refused"
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"destinations:\n  ehr: {{type: fhir, endpoint: '{fhir.base_url}'}}\ndefault: [ehr]\n"
    )
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"routes: {routes}\nalert_command: {json.dumps([sys.executable, '-c', RECORD, str(out)])}\n"
    )
    vendor = shared_data / samples.VENDOR_ECG
    good = samples.copy_with_new_uid(vendor, tmp_path / "good.dcm")
    broken = samples.copy_with_new_uid(vendor, tmp_path / "broken.dcm")
    ds = pydicom.dcmread(broken)
    for item in ds.WaveformSequence:  # passes intake, but its samples cannot be decoded
        del item.ChannelDefinitionSequence
    ds.save_as(broken, enforce_file_format=True)
    gateway = GatewayProcess(tmp_path / "data", config=config).start()
    try:
        sent = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "send", "--port", str(gateway.port)]
            + [str(good), str(broken)],
            capture_output=True,
            check=False,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert sent.stdout.count("OK") == 2, sent.stdout + sent.stderr
        alerts = {a["ECG_GATEWAY_EVENT"]: a for a in _recorded(out, 2)}
    finally:
        gateway.stop_if_running()
        fhir.stop()
    failed, dead = alerts["job-failed"], alerts["delivery-dead"]
    assert failed["ECG_GATEWAY_SUBJECT"] == str(ds.SOPInstanceUID)
    assert failed["ECG_GATEWAY_REASON"].startswith("undecodable")
    assert dead["ECG_GATEWAY_SUBJECT"] == str(pydicom.dcmread(good).SOPInstanceUID)
    assert dead["ECG_GATEWAY_DETAIL"].endswith("to ehr") and "400" in dead["ECG_GATEWAY_REASON"]
    patient = pydicom.dcmread(good)
    for alert in alerts.values():
        for value in (str(patient.PatientID), str(patient.PatientName.family_name)):
            assert value not in json.dumps(alert)
