"""`kill -9` of the whole gateway while it is delivering to a FHIR server, then a
restart: every report reaches the EHR, once, in order; nothing is lost; on either store
backend."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from peers import FhirTestServer

from tests import dicom_samples as samples
from tests.gateway_process import REPO, GatewayProcess

pytestmark = pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk not installed")

OBJECTS = 10
KILL_AT_REQUEST = 4


def _wait_for(condition, timeout_s: float, what: str, gateway: GatewayProcess) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}\n{gateway.logs()[-3000:]}")
        time.sleep(0.05)


def _deliveries(gateway: GatewayProcess) -> list:
    store = gateway.open_store()
    try:
        return store.list_deliveries()
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_during_delivery_loses_and_duplicates_nothing(
    shared_data: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    ehr = FhirTestServer(delay_s=0.2).start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "destinations:\n"
        f"  ehr: {{type: fhir, endpoint: '{ehr.base_url}', timeout_s: 5}}\n"
        "  outbox: {type: file, directory: outbox}\n"
        "default: [ehr, outbox]\n"
    )
    files = [
        samples.secondary_capture_native(shared_data, tmp_path / f"scan-{i}.dcm")
        for i in range(OBJECTS)
    ]
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    gateway = GatewayProcess(
        tmp_path / "data", store_url=url, extra_config=f"routes: {routes}\n"
    ).start()
    try:
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "send",
                "--port",
                str(gateway.port),
                *map(str, files),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
            check=False,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        _wait_for(lambda: ehr.requests >= KILL_AT_REQUEST - 1, 60, "no deliveries", gateway)
        ehr.delay_s = 2.0  # the next request stays in the EHR's hands long enough
        _wait_for(lambda: ehr.requests >= KILL_AT_REQUEST, 10, "no next delivery", gateway)
        gateway.kill_hard()  # while the EHR is working on request KILL_AT_REQUEST
        ehr.delay_s = 0.1
        sent_before_kill = [
            d for d in _deliveries(gateway) if d.destination == "ehr" and d.state == "sent"
        ]
        assert len(sent_before_kill) == KILL_AT_REQUEST - 1, gateway.logs()[-3000:]

        gateway.start()
        _wait_for(
            lambda: (
                all(d.state == "sent" for d in _deliveries(gateway))
                and len(_deliveries(gateway)) == 2 * OBJECTS
            ),
            90,
            "deliveries did not finish after restart",
            gateway,
        )
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()
        ehr.stop()

    delivered = [d.sop_instance_uid for d in _deliveries(gateway) if d.destination == "ehr"]
    assert sorted(delivered) == sorted(uids)
    # one DiagnosticReport per ECG, created in the order the ECGs were received (sent),
    # whatever order the two workers finished them in
    assert ehr.report_arrivals == [f"urn:oid:{uid}" for uid in uids]
    assert len(ehr.resources("DiagnosticReport")) == OBJECTS
    assert len(ehr.resources("Patient")) == 1
    # the transaction in flight at the kill was received, then sent once more after
    # the restart; its conditional creates made the second copy a no-op
    assert len(ehr.transactions) == OBJECTS + 1
    outbox = gateway.data_dir / "outbox"
    assert sorted(p.name for p in outbox.glob("*.fhir.json")) == sorted(
        f"{u}.fhir.json" for u in uids
    )
