"""Several `ecg-gateway serve` nodes on one PostgreSQL database (a throwaway cluster),
ECGs sent by dcmtk's storescu, a FHIR server as the one destination: a node killed with
-9 mid-run loses nothing acknowledged, the survivor finishes its leased jobs within the
lease time, and every acknowledged ECG reaches the EHR once. Also: an unreachable
database stops the start with one line; losing it makes the SCP answer 0xA700 instead
of acknowledging, and intake recovers by itself when it returns."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from peers import FhirTestServer

from gateway.server import node_name
from tests import dicom_samples as samples
from tests.gateway_process import REPO, GatewayProcess, free_port

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")

LEASE_S = 10
PER_NODE = 12


def storescu(port: int, files: list[Path]) -> dict[Path, str]:
    """Each file's C-STORE status as storescu reports it ('Success', 'Out of Resources'...);
    a file without one was not acknowledged (the association broke)."""
    done = subprocess.run(
        ["storescu", "-v", "-aet", "CART1", "-aec", "ECGGW", "127.0.0.1", str(port)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return parse_storescu(done.stdout + done.stderr)


def parse_storescu(output: str) -> dict[Path, str]:
    statuses: dict[Path, str] = {}
    current: Path | None = None
    for line in output.splitlines():
        sending = re.search(r"Sending file: (.+)$", line)
        if sending:
            current = Path(sending.group(1).strip())
        answer = re.search(r"Received Store Response \(([^)]*)\)", line)
        if answer and current is not None:
            statuses[current] = answer.group(1)
            current = None
    return statuses


def _uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def _node(tmp_path: Path, name: str, store_url: str, routes: Path) -> GatewayProcess:
    data_dir = tmp_path / name
    config = tmp_path / f"{name}.yaml"
    config.write_text(f"store: {store_url}\nroutes: {routes}\njob_lease_s: {LEASE_S}\nworkers: 1\n")
    return GatewayProcess(data_dir, config=config, store_url=store_url)


def _wait(condition, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(what)
        time.sleep(0.1)
    return time.monotonic() - started


def test_serve_with_an_unreachable_database_stops_with_one_line(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"store: postgresql://ecg@127.0.0.1:{free_port()}/ecg\nroutes_optional: true\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "-c", str(config), "--port", str(free_port()),
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1
    assert len(errors) == 1 and "cannot connect" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_without_the_database_the_scp_answers_out_of_resources_and_recovers(
    shared_data, tmp_path, postgres_cluster, postgres_url
):
    ehr = FhirTestServer().start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"destinations:\n  ehr: {{type: fhir, endpoint: '{ehr.base_url}'}}\n"
                      "default: [ehr]\n")  # fmt: skip
    vendor = shared_data / samples.VENDOR_ECG
    files = [samples.copy_with_new_uid(vendor, tmp_path / f"ecg-{i}.dcm") for i in range(3)]
    gateway = _node(tmp_path, "node", postgres_url, routes).start()
    try:
        assert storescu(gateway.port, files[:1]) == {files[0]: "Success"}
        postgres_cluster.stop()
        try:
            assert storescu(gateway.port, files[1:2]) == {
                files[1]: "Refused: OutOfResources"
            }  # 0xA700
        finally:
            postgres_cluster.start()
        # The modality tries again later; the gateway needs no restart.
        _wait(lambda: storescu(gateway.port, files[1:]) == dict.fromkeys(files[1:], "Success"),
              60, "intake did not recover")  # fmt: skip
        _wait(lambda: len(ehr.resources("DiagnosticReport")) == 3, 120, gateway.logs()[-3000:])
        assert gateway.terminate() == 0
    finally:
        gateway.stop_if_running()
        ehr.stop()
    assert "store-unavailable" in gateway.logs()


def test_a_node_killed_mid_run_loses_nothing_and_the_other_takes_over_its_jobs(
    shared_data, tmp_path, postgres_url
):
    ehr = FhirTestServer().start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"destinations:\n  ehr: {{type: fhir, endpoint: '{ehr.base_url}'}}\n"
                      "default: [ehr]\n")  # fmt: skip
    vendor = shared_data / samples.VENDOR_ECG
    files = [
        samples.copy_with_new_uid(vendor, tmp_path / f"ecg-{i}.dcm") for i in range(2 * PER_NODE)
    ]
    a = _node(tmp_path, "a", postgres_url, routes).start()
    b = _node(tmp_path, "b", postgres_url, routes).start()
    node_a = node_name(a.data_dir)
    store = a.open_store()
    try:
        to_b = subprocess.Popen(
            ["storescu", "-v", "-aet", "CART1", "-aec", "ECGGW", "127.0.0.1", str(b.port)]
            + [str(f) for f in files[PER_NODE:]],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        to_a = subprocess.Popen(
            ["storescu", "-v", "-aet", "CART1", "-aec", "ECGGW", "127.0.0.1", str(a.port)]
            + [str(f) for f in files[:PER_NODE]],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

        def a_holds_a_job() -> bool:
            return any(
                (job.lease_owner or "").startswith(f"{node_a}:")
                for job in store.list_jobs(state="leased")
            )

        _wait(a_holds_a_job, 120, f"node a leased nothing\n{a.logs()[-3000:]}")
        a.kill_hard()
        killed_at = time.monotonic()
        orphaned = {job.id for job in store.list_jobs(state="leased")
                    if (job.lease_owner or "").startswith(f"{node_a}:")}  # fmt: skip
        statuses = parse_storescu(to_a.communicate(timeout=120)[0])
        statuses |= parse_storescu(to_b.communicate(timeout=300)[0])

        def orphans_done() -> bool:
            return all(store.get_job(job_id).state == "done" for job_id in orphans)

        orphans = orphaned
        _wait(orphans_done, LEASE_S + 60, f"orphaned jobs not finished\n{b.logs()[-3000:]}")
        takeover_s = time.monotonic() - killed_at
        for job_id in orphans:
            assert store.get_job(job_id).attempts >= 1

        a.start()  # back later; the modality resends what was not acknowledged
        unacknowledged = [f for f in files[:PER_NODE] if statuses.get(f) != "Success"]
        if unacknowledged:
            again = storescu(a.port, unacknowledged)
            assert set(again.values()) == {"Success"}, again
        acknowledged = {_uid(f) for f in files}
        _wait(lambda: len(ehr.resources("DiagnosticReport")) >= len(acknowledged), 240,
              b.logs()[-2000:] + a.logs()[-2000:])  # fmt: skip
        jobs = store.list_jobs(limit=1000)
        deliveries = store.list_deliveries(limit=1000)
        assert a.terminate() == 0 and b.terminate() == 0
    finally:
        store.close()
        for node in (a, b):
            node.stop_if_running()
        ehr.stop()
    assert sorted(j.sop_instance_uid for j in jobs) == sorted(acknowledged)  # one job each
    assert {j.state for j in jobs} == {"done"}
    assert sorted(d.sop_instance_uid for d in deliveries) == sorted(acknowledged)
    assert {d.state for d in deliveries} == {"sent"}
    reports = ehr.resources("DiagnosticReport")
    assert len(reports) == len(acknowledged)  # once each, whichever node sent it
    assert orphaned and takeover_s < LEASE_S + 30, takeover_s
