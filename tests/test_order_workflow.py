"""Ordered ECGs end to end, with real peers: orders in the store (as the HL7 listener
puts them), dcmtk storescu as the cart sending real ECGs to `ecg-gateway serve`, and
MLLP listeners from the `hl7` package as the EHR. On both store backends.

One run covers the three cases a site meets: an ECG taken from the worklist (its Study
Instance UID names a STAT order: routed by the order, the order completed, its status
update sent), one whose order names another spelling of the patient (flagged, never
merged) and an unordered one (reported as before, no status update). Another has the EHR
send an order late, through the real HL7 listener: the walk-in ECG's report goes again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient

from gateway.store.order_records import NewOrder, OrderReference
from tests import dicom_samples as samples
from tests.gateway_process import GatewayProcess, free_port
from tests.hl7_orders_support import orm, pid
from tests.hl7_strict import validated_strictly
from tests.peers import Hl7TestPeer

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")

STUDY_STAT = "1.2.826.0.1.3680043.10.1234.1"
STUDY_MISMATCH = "1.2.826.0.1.3680043.10.1234.2"
ACQUIRED = datetime(2024, 1, 1).astimezone().timestamp()  # the sample's AcquisitionDateTime

ROUTES = """
destinations:
  outbox: {{type: file, directory: outbox, formats: [hl7]}}
  cardiology: {{type: hl7, endpoint: "mllp://127.0.0.1:{results}"}}
  ehr-orders: {{type: hl7, endpoint: "mllp://127.0.0.1:{status}", sends: order-status}}
rules:
  - name: stat-north
    match: {{priority: stat, ordering_facility: "NORTH*", procedure_code: "93000"}}
    destinations: [cardiology, outbox]
default: [outbox]
"""


def _order(placer: str, study: str, *, name: str = "Anonymized", priority: str = "routine"):
    return NewOrder(
        reference=OrderReference(
            placer_order_number=placer,
            placer_authority="HIS",
            procedure_code="93000",
            priority=priority,
            ordering_facility="NORTH-WING",
        ),
        patient_id="000001",
        patient_name=name,
        sex="M",
        birth_date="19700101",
        scheduled_at=ACQUIRED,
        study_instance_uid=study,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str | None:
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


def test_ordered_mismatched_and_unordered_ecgs_from_storescu(backend, shared_data, tmp_path):
    results, status = Hl7TestPeer().start(), Hl7TestPeer().start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(results=results.port, status=status.port))
    config = tmp_path / "gateway.yaml"
    store_line = f"store: {backend}\n" if backend else ""
    config.write_text(f"routes: {routes}\n{store_line}")
    server = GatewayProcess(tmp_path / "data", config=config, store_url=backend).start()
    try:
        store = server.open_store()
        stat = store.add_order(_order("P-STAT", STUDY_STAT, priority="stat"))
        other = store.add_order(_order("P-MIS", STUDY_MISMATCH, name="Mustermann^Max"))
        files = [
            _ecg(shared_data, tmp_path / "stat.dcm", StudyInstanceUID=STUDY_STAT),
            _ecg(shared_data, tmp_path / "mismatch.dcm", StudyInstanceUID=STUDY_MISMATCH),
            _ecg(shared_data, tmp_path / "walk-in.dcm", PatientID="WALKIN-9"),
        ]
        sent = subprocess.run(
            ["storescu", "-aet", "CART7", "127.0.0.1", str(server.port), *map(str, files)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert server.wait_until_processed(3) == {"done": 3}
        _wait_for(lambda: len(status.received) == 2 and len(results.received) == 1, server)

        jobs = {job.id: job for job in store.list_jobs()}
        stat_job, mismatch_job, walk_in_job = sorted(jobs)
        assert jobs[stat_job].priority == "stat" and jobs[walk_in_job].priority == "routine"
        assert store.get_order(stat.id).state == "completed"
        assert store.get_order(stat.id).job_id == stat_job
        assert store.get_order(other.id).job_id == mismatch_job

        packages = {job_id: _package(store, jobs[job_id]) for job_id in jobs}
        assert packages[stat_job]["order"]["placer_order_number"] == "P-STAT"
        assert packages[walk_in_job]["order"] is None
        warnings = packages[mismatch_job]["warnings"]
        assert any("differ in patient name" in warning for warning in warnings)
        assert not any("Mustermann" in warning for warning in warnings)
        assert not any("differ in" in w for w in packages[stat_job]["warnings"])

        # routed by the order: the STAT one alone reached cardiology
        [oru] = results.received
        assert str(oru.segment("MSH")[9]).startswith("ORU^R01")
        # ... and refers to its order (ORC-2 / OBR-2 placer, OBR-4 the ordered procedure)
        assert str(oru.segment("ORC")[2]) == "P-STAT^HIS"
        assert str(oru.segment("OBR")[2]) == "P-STAT^HIS"
        assert str(oru.segment("OBR")[4]).startswith("93000")
        # the EHR hears each matched order was done, with its numbers; never the walk-in
        placers = sorted(str(message.segment("ORC")[2]) for message in status.received)
        assert placers == ["P-MIS^HIS", "P-STAT^HIS"]
        for message in status.received:
            assert str(message.segment("ORC")[1]) == "SC"
            assert str(message.segment("ORC")[5]) == "CM"
            validated_strictly(str(message))
        log = server.logs()
        assert f"job {mismatch_job} matched order {other.id} by study-uid, but they differ" in log
        assert "Mustermann" not in log and "WALKIN-9" not in log
        store.close()
    finally:
        server.stop_if_running()
        results.stop()
        status.stop()


def _ecg(shared_data: Path, dst: Path, **changes: object) -> Path:
    return samples.copy_with_new_uid(shared_data / samples.VENDOR_ECG, dst, **changes)


def _package(store, job) -> dict:
    directory = store.report_files_of(job)
    context = json.loads((directory / "context.json").read_text())
    report = json.loads((directory / "report.json").read_text())
    return {"order": context["order"], "warnings": report["warnings"]}


def _wait_for(condition, server: GatewayProcess, timeout_s: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, server.logs()[-3000:]
        time.sleep(0.2)


def test_a_late_order_from_the_ehr_reconciles_a_walk_in_ecg(shared_data, tmp_path):
    """REWF reconciliation through the real listener: the EHR (python-hl7's MLLP client)
    sends the order after the ECG was reported unordered; the report goes again,
    referring to it, and the order's status update follows."""
    results, status = Hl7TestPeer().start(), Hl7TestPeer().start()
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(results=results.port, status=status.port))
    routes.write_text(routes.read_text().replace("default: [outbox]", "default: [cardiology]"))
    orders_port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(f"routes: {routes}\norders: {{enabled: true, port: {orders_port}}}\n")
    server = GatewayProcess(tmp_path / "data", config=config).start()
    try:
        walk_in = _ecg(shared_data, tmp_path / "walk-in.dcm", AcquisitionDateTime="20260102080000")
        sent = subprocess.run(
            ["storescu", "-aet", "CART7", "127.0.0.1", str(server.port), str(walk_in)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        _wait_for(lambda: len(results.received) == 1, server)
        assert status.received == []

        message = orm(placer="LATE7", patient=pid("000001", ""), start="20260102083000")
        with MLLPClient("127.0.0.1", orders_port) as ehr:
            ack = hl7.parse(ehr.send_message(message).decode())
        assert str(ack.segment("MSA")[1]) == "AA"
        _wait_for(lambda: len(results.received) == 2 and len(status.received) == 1, server)

        first, again = (str(m.segment("MSH")[10]) for m in results.received)
        assert first != again
        assert str(results.received[1].segment("ORC")[2]) == "LATE7^HIS"  # now with its order
        assert str(status.received[0].segment("ORC")[2]) == "LATE7^HIS"
        store = server.open_store()
        [job] = store.list_jobs()
        assert store.order_for_job(job.id).reference.placer_order_number == "LATE7"
        store.close()
        assert f"reconciled with job {job.id}" in server.logs()
    finally:
        server.stop_if_running()
        results.stop()
        status.stop()
