"""Reconciling late orders (IHE REWF) and STAT ECGs first, on both store backends, with
the real intake, workers and delivery sweeper and an MLLP listener from the `hl7`
package as the EHR: an ECG reported unordered is sent again, referring to the order that
arrived after it, with a new message identity; the order's status update goes out too;
an order that fits two unordered ECGs reconciles neither."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from pynetdicom.dsutils import split_dataset

from gateway.delivery.sweeper import DeliverySweeper
from gateway.durable import ensure_dir
from gateway.intake.accept import Intake, ReceivedObject
from gateway.metrics import Metrics
from gateway.processing.order_link import Reconciler
from gateway.processing.order_match import OrderMatching, intake_priority
from gateway.processing.package import ReportPackage
from gateway.processing.workers import Workers, WorkerSettings
from gateway.retention import purge
from gateway.routing import Router
from gateway.store import SqliteStore
from gateway.store.order_records import NewOrder, OrderReference
from tests import dicom_samples as samples
from tests.peers import Hl7TestPeer

ACQUIRED = "20260102080000"
DUE = datetime(2026, 1, 2, 8, 30).astimezone().timestamp()
SETTINGS = OrderMatching()


@pytest.fixture
def store(store_each_backend):
    return store_each_backend


@pytest.fixture
def peers():
    results, status = Hl7TestPeer().start(), Hl7TestPeer().start()
    yield results, status
    results.stop()
    status.stop()


class Site:
    """Intake, workers (run in this thread) and a sweeper over `store`, routing every
    report to the `results` peer and order status updates to the `status` peer."""

    def __init__(self, store, tmp_path: Path, results: Hl7TestPeer, status: Hl7TestPeer):
        self.store, self.tmp_path = store, tmp_path
        self.reports = tmp_path / "reports"
        spool = tmp_path / "spool"
        ensure_dir(spool)
        routes = tmp_path / "routes.yaml"
        routes.write_text(
            "destinations:\n"
            f"  ehr: {{type: hl7, endpoint: 'mllp://127.0.0.1:{results.port}'}}\n"
            f"  ehr-orders: {{type: hl7, endpoint: 'mllp://127.0.0.1:{status.port}',"
            " sends: order-status}\n"
            "default: [ehr]\n"
        )
        self.router = Router(routes, tmp_path)
        self.intake = Intake(store, spool, Metrics(), prioritise=intake_priority(store, SETTINGS))
        self.workers = Workers(
            store, self.router, WorkerSettings(reports_dir=self.reports), Metrics()
        )
        self.sweeper = DeliverySweeper(store, self.router)
        self.reconciler = Reconciler(store, SETTINGS, self.reports, self.router.destinations_for)
        self.files = 0

    def receive(self, shared_data: Path, **changes: object) -> int:
        self.files += 1
        path = samples.copy_with_new_uid(
            shared_data / samples.VENDOR_ECG,
            self.tmp_path / f"ecg{self.files}.dcm",
            **{"AcquisitionDateTime": ACQUIRED, **changes},
        )
        meta, offset = split_dataset(path)
        outcome = self.intake.accept(
            ReceivedObject(
                str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID),
                path.read_bytes(), offset, "CART7", "ECGGW", "127.0.0.1:4000",
            )
        )  # fmt: skip
        assert outcome.status == 0, outcome
        return outcome.job_id

    def process_and_deliver(self) -> None:
        while self.workers.run_once("worker-1"):
            pass
        self.sweeper.sweep()

    def late_order(self, placer: str = "LATE1", **changes: object):
        reference = OrderReference(placer_order_number=placer, placer_authority="HIS")
        values = {"patient_id": "000001", "sex": "M", "scheduled_at": DUE, **changes}
        return self.store.add_order(NewOrder(reference=reference, **values))

    def context(self, job_id: int) -> dict:
        directory = self.store.report_files_of(self.store.get_job(job_id))
        return json.loads((directory / "context.json").read_text())


def test_a_late_order_is_attached_and_the_report_sent_again(store, tmp_path, shared_data, peers):
    results, status = peers
    site = Site(store, tmp_path, results, status)
    job_id = site.receive(shared_data)
    site.process_and_deliver()
    assert len(results.received) == 1 and status.received == []  # unordered, as today
    assert site.context(job_id)["order"] is None

    order = site.late_order()
    queued: list[list[str]] = []
    site.reconciler.hook(queued.append)(order, "new")
    assert queued == [["ehr", "ehr-orders"]]
    site.sweeper.sweep()

    assert len(results.received) == 2
    first, again = (str(message.segment("MSH")[10]) for message in results.received)
    assert first != again  # new content to the EHR, not a duplicate it would drop
    [update] = status.received
    assert str(update.segment("ORC")[2]) == "LATE1^HIS"
    context = site.context(job_id)
    assert context["order"]["placer_order_number"] == "LATE1"
    assert context["order"]["reconciled"] is True
    assert store.get_order(order.id).state == "completed"
    assert store.get_order(order.id).job_id == job_id
    # the same order arriving again (a repeated NW) changes nothing more
    assert site.reconciler.late_order(store.get_order(order.id)) == []


def test_an_order_fitting_two_unordered_ecgs_reconciles_neither(
    store, tmp_path, shared_data, peers
):
    site = Site(store, tmp_path, *peers)
    site.receive(shared_data)
    site.receive(shared_data, AcquisitionDateTime="20260102090000")
    site.process_and_deliver()
    order = site.late_order()
    assert site.reconciler.late_order(order) == []
    assert store.get_order(order.id).state == "scheduled"


def test_reconciliation_switched_off_or_outside_the_window(store, tmp_path, shared_data, peers):
    site = Site(store, tmp_path, *peers)
    site.receive(shared_data)
    site.process_and_deliver()
    off = dataclasses.replace(site.reconciler, settings=OrderMatching(reconcile_late_orders=False))
    assert off.late_order(site.late_order("A")) == []
    later = site.late_order("B", scheduled_at=DUE + 2 * 86400)
    assert site.reconciler.late_order(later) == []
    assert len(peers[0].received) == 1


def test_a_stat_orders_ecg_is_processed_first(store, tmp_path, shared_data, peers):
    site = Site(store, tmp_path, *peers)
    study = "1.2.826.0.1.3680043.10.99.1"
    reference = OrderReference(placer_order_number="S1", placer_authority="HIS", priority="stat")
    store.add_order(NewOrder(reference=reference, patient_id="000001", study_instance_uid=study))
    routine = [site.receive(shared_data, PatientID=f"R{n}") for n in range(2)]
    stat = site.receive(shared_data, StudyInstanceUID=study)
    assert store.get_job(stat).priority == "stat"
    leased = [store.lease_job("w", 60, 3).id for _ in range(3)]
    assert leased == [stat, *routine]


def test_an_order_arriving_while_its_ecg_was_processed_is_reconciled_after(
    store, tmp_path, shared_data, peers
):
    """The listener's hook ran while the job was unfinished (it found nothing done); the
    worker, once the job is complete, finds the order and reconciles it."""
    site = Site(store, tmp_path, *peers)
    job_id = site.receive(shared_data)
    site.process_and_deliver()
    order = site.late_order()  # committed; its hook found no finished ECG in time
    job = store.get_job(job_id)
    package = ReportPackage.load(store.report_files_of(job))
    queued = site.reconciler.finished(job, package)
    assert queued == ["ehr", "ehr-orders"]
    assert store.order_for_job(job_id).id == order.id
    # an ECG already reported with its order has nothing to reconcile
    again = ReportPackage.load(store.report_files_of(store.get_job(job_id)))
    assert site.reconciler.finished(job, again) == []


def test_a_late_stat_order_moves_its_report_up_the_worklist(store, tmp_path, shared_data, peers):
    results, status = peers
    site = Site(store, tmp_path, results, status)
    job_id = site.receive(shared_data)
    site.process_and_deliver()
    [entry] = store.worklist()
    assert (entry.job_id, entry.priority) == (job_id, "routine")

    reference = OrderReference(placer_order_number="STAT1", placer_authority="HIS", priority="stat")
    order = store.add_order(NewOrder(reference=reference, patient_id="000001", scheduled_at=DUE))
    site.reconciler.hook(lambda destinations: None)(order, "new")

    [entry] = store.worklist()
    assert (entry.job_id, entry.priority) == (job_id, "stat")
    assert [e.job_id for e in store.worklist(priority="stat")] == [job_id]


def test_retention_removes_the_report_a_late_order_replaced(store, tmp_path, shared_data, peers):
    results, status = peers
    site = Site(store, tmp_path, results, status)
    job_id = site.receive(shared_data)
    other = site.receive(shared_data, PatientID="OTHER")
    site.process_and_deliver()
    site.reconciler.hook(lambda destinations: None)(site.late_order(), "new")
    site.sweeper.sweep()
    replaced = site.reports / str(job_id)
    if isinstance(store, SqliteStore):  # PostgreSQL keeps packages in the database
        assert replaced.is_dir() and store.get_job(job_id).report_dir != str(replaced)
        assert (site.reports / str(other)).is_dir()

    assert purge(store, [], retention_days=1, now=time.time() + 2 * 86400).jobs == 2
    assert not site.reports.exists() or list(site.reports.iterdir()) == []
