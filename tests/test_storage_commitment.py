"""Storage Commitment Push Model (PS3.4 Annex J) against a real gateway: dcmtk storescu
sends the ECGs, then a cart asks which of them the gateway keeps, plus one it never sent.

dcmtk has no storage commitment SCU, so pynetdicom plays the cart in the test: it sends
the N-ACTION and takes the N-EVENT-REPORT on its own association, or on a new association
to its own SCP when it refuses the report on the first one. Every report is checked
strictly (affected SOP class and instance, event type, both sequences, failure reasons).
"""

from __future__ import annotations

import logging
import queue
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import N_EVENT_REPORT_RSP
from pynetdicom.sop_class import StorageCommitmentPushModel, StorageCommitmentPushModelInstance

from gateway.config import GatewayConfig
from gateway.intake.storage_commitment import (
    ALL_COMMITTED,
    CLASS_INSTANCE_CONFLICT,
    NO_SUCH_ACTION,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    SOME_FAILED,
)
from tests import dicom_samples as samples
from tests.gateway_process import free_port
from tests.test_scp import RunningGateway, storescu

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")

TWELVE_LEAD = "1.2.840.10008.5.1.4.1.1.9.1.1"
REPORT_WAIT_S = 10


@dataclass(frozen=True)
class Report:
    """One N-EVENT-REPORT as the cart received it."""

    path: str  # "same" or "new" association
    calling_ae: str
    proposed_scp_role: bool | None
    class_uid: str
    instance_uid: str
    event_type: int
    info: Dataset


class Cart:
    """An ECG cart's storage commitment SCU: an AE title, and an SCP for reports that come
    on a new association."""

    def __init__(self, ae_title: str = "CART1") -> None:
        self.ae_title = ae_title
        self.reports: queue.Queue[Report] = queue.Queue()
        self._answering: dict[int, Report] = {}  # by association, until the response is sent
        self.scp_port = free_port()
        scp = AE(ae_title=ae_title)
        # The gateway requests this association as the Storage Commitment SCP (J.3.1).
        scp.add_supported_context(StorageCommitmentPushModel, scu_role=False, scp_role=True)
        self.scp_ae = scp
        self.server = scp.start_server(
            ("127.0.0.1", self.scp_port),
            block=False,
            evt_handlers=self._handlers("new"),
        )

    def _handlers(self, path: str) -> list[tuple]:
        return [
            (evt.EVT_N_EVENT_REPORT, self._on_report, [path]),
            (evt.EVT_DIMSE_SENT, self._on_sent),
        ]

    def _on_report(self, event: evt.Event, path: str) -> tuple[int, None]:
        request = event.request
        role = event.assoc.requestor.role_selection.get(StorageCommitmentPushModel)
        self._answering[id(event.assoc)] = Report(
            path=path,
            calling_ae=event.assoc.requestor.ae_title,
            proposed_scp_role=None if role is None else role.scp_role,
            class_uid=str(request.AffectedSOPClassUID),
            instance_uid=str(request.AffectedSOPInstanceUID),
            event_type=int(request.EventTypeID),
            info=event.event_information,
        )
        return 0x0000, None

    def _on_sent(self, event: evt.Event) -> None:
        """A report counts once its response is on its way, so that what the test does
        next (another request, a release) reaches the gateway after it."""
        if isinstance(event.message, N_EVENT_REPORT_RSP):
            self.reports.put(self._answering.pop(id(event.assoc)))

    def associate(self, port: int, takes_reports: bool = True) -> Association:
        """An association to the gateway; `takes_reports` False: the cart refuses reports on
        it (pynetdicom's answer without a handler, 0x0110), so they must come on a new one."""
        ae = AE(ae_title=self.ae_title)
        ae.add_requested_context(StorageCommitmentPushModel)
        handlers = self._handlers("same") if takes_reports else []
        assoc = ae.associate("127.0.0.1", port, ae_title="ECGGW", evt_handlers=handlers)
        assert assoc.is_established
        return assoc

    def next_report(self, wait_s: float = REPORT_WAIT_S) -> Report:
        return self.reports.get(timeout=wait_s)

    def stop(self) -> None:
        self.server.shutdown()


def request_commitment(assoc: Association, info: Dataset, action_type: int = 1) -> tuple[int, str]:
    """Send the N-ACTION; its status and ErrorComment."""
    status, _ = assoc.send_n_action(
        info, action_type, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
    )
    return int(status.Status), str(status.get("ErrorComment", ""))


def action_information(transaction_uid: str | None, refs: list[tuple[str, str]]) -> Dataset:
    info = Dataset()
    if transaction_uid is not None:
        info.TransactionUID = transaction_uid
    items = []
    for class_uid, instance_uid in refs:
        item = Dataset()
        item.ReferencedSOPClassUID = class_uid
        item.ReferencedSOPInstanceUID = instance_uid
        items.append(item)
    info.ReferencedSOPSequence = Sequence(items)
    return info


def pairs(sequence: Sequence, *extra: str) -> set[tuple]:
    """A sequence's items as (class UID, instance UID, *extra) tuples."""
    return {
        (item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID, *(item[k].value for k in extra))
        for item in sequence
    }


@pytest.fixture
def cart():
    running = Cart()
    yield running
    running.stop()


@pytest.fixture
def sent_ecgs(shared_data, tmp_path) -> list[str]:
    """Two ECGs, each under a new SOP Instance UID (sent by the test to its gateway)."""
    vendor = shared_data / samples.VENDOR_ECG
    return [
        str(samples.copy_with_new_uid(vendor, tmp_path / f"ecg{i}.dcm").resolve()) for i in range(2)
    ]


def send(gateway: RunningGateway, files: list[str]) -> list[tuple[str, str]]:
    """storescu the files to the gateway; their (SOP Class, SOP Instance) UIDs."""
    result = storescu(gateway.port, *map(Path, files))
    assert result.returncode == 0, result.stderr
    return [(job.sop_class_uid, job.sop_instance_uid) for job in gateway.jobs()]


def assert_report(report: Report, transaction_uid: str, committed: list, missing: list) -> None:
    assert (report.class_uid, report.instance_uid) == (
        StorageCommitmentPushModel,
        StorageCommitmentPushModelInstance,
    )
    assert report.info.TransactionUID == transaction_uid
    assert pairs(report.info.ReferencedSOPSequence) == set(committed)
    if missing:
        assert report.event_type == SOME_FAILED
        expected = {(c, i, NO_SUCH_OBJECT_INSTANCE) for c, i in missing}
        assert pairs(report.info.FailedSOPSequence, "FailureReason") == expected
    else:
        assert report.event_type == ALL_COMMITTED
        assert "FailedSOPSequence" not in report.info


# --- the report, on the same association and on a new one -------------------------------


def _ask_for_sent_and_one_never_sent(gateway, cart, sent_ecgs, takes_reports: bool = True):
    """Send the ECGs, ask commitment for them and one UID never sent; what the cart heard."""
    try:
        committed = send(gateway, sent_ecgs)
        never_sent = (TWELVE_LEAD, generate_uid())
        transaction = generate_uid()
        assoc = cart.associate(gateway.port, takes_reports=takes_reports)
        info = action_information(transaction, [*committed, never_sent])
        assert request_commitment(assoc, info) == (0x0000, "")
        report = cart.next_report()
        assoc.release()
    finally:
        gateway.stop()
    return report, transaction, committed, never_sent


def test_report_on_the_same_association_names_committed_and_missing(tmp_path, cart, sent_ecgs):
    gateway = RunningGateway(tmp_path)
    report, transaction, committed, never_sent = _ask_for_sent_and_one_never_sent(
        gateway, cart, sent_ecgs
    )
    assert (report.path, report.calling_ae) == ("same", "CART1")
    assert_report(report, transaction, committed, [never_sent])
    assert cart.reports.empty()


def test_report_on_a_new_association_when_the_cart_refuses_it_on_its_own(tmp_path, cart, sent_ecgs):
    peers = {"CART1": f"127.0.0.1:{cart.scp_port}"}
    gateway = RunningGateway(tmp_path, storage_commitment={"peers": peers})
    report, transaction, committed, never_sent = _ask_for_sent_and_one_never_sent(
        gateway, cart, sent_ecgs, takes_reports=False
    )
    # The gateway opened the association as itself, proposing the SCP role (PS3.4 J.3.1).
    assert (report.path, report.calling_ae, report.proposed_scp_role) == ("new", "ECGGW", True)
    assert_report(report, transaction, committed, [never_sent])
    assert cart.reports.empty()


def test_all_committed_is_event_type_1_and_a_wrong_sop_class_is_a_conflict(
    tmp_path, cart, sent_ecgs
):
    gateway = RunningGateway(tmp_path)
    try:
        committed = send(gateway, sent_ecgs)
        assoc = cart.associate(gateway.port)
        all_kept = generate_uid()
        assert request_commitment(assoc, action_information(all_kept, committed))[0] == 0
        first = cart.next_report()
        wrong_class = ("1.2.840.10008.5.1.4.1.1.7", committed[0][1])
        conflict = generate_uid()
        assert request_commitment(assoc, action_information(conflict, [wrong_class]))[0] == 0
        second = cart.next_report()
        assoc.release()
    finally:
        gateway.stop()
    assert_report(first, all_kept, committed, [])
    assert second.event_type == SOME_FAILED and "ReferencedSOPSequence" not in second.info
    assert pairs(second.info.FailedSOPSequence, "FailureReason") == {
        (*wrong_class, CLASS_INSTANCE_CONFLICT)
    }


def test_a_fault_while_checking_is_reported_as_a_processing_failure(
    tmp_path, cart, sent_ecgs, monkeypatch, caplog
):
    """A bug while checking (here a lookup raising what no store raises) still sends the
    cart its report, each object failed (it keeps its copies), and logs no value."""
    gateway = RunningGateway(tmp_path)
    try:
        committed = send(gateway, sent_ecgs)

        patient = "DOE^JOHN"  # (a source line the stack does not show)

        def broken(uid):
            raise KeyError(f"{patient} {uid}")

        monkeypatch.setattr(gateway.store, "jobs_for_uid", broken)
        assoc = cart.associate(gateway.port)
        transaction = generate_uid()
        assert request_commitment(assoc, action_information(transaction, committed))[0] == 0
        report = cart.next_report()
        assoc.release()
    finally:
        gateway.stop()
    assert report.event_type == SOME_FAILED and "ReferencedSOPSequence" not in report.info
    assert pairs(report.info.FailedSOPSequence, "FailureReason") == {
        (*ref, PROCESSING_FAILURE) for ref in committed
    }
    assert "KeyError at test_storage_commitment.py:" in caplog.text
    assert "DOE" not in caplog.text


def test_a_fault_while_sending_the_report_is_logged_not_lost_with_the_thread(
    tmp_path, caplog, monkeypatch
):
    """The report goes out from a thread of its own: a fault there is a log line saying
    the cart must ask again, not a traceback on stderr and silence."""
    from gateway.intake import storage_commitment as sc
    from gateway.store import SqliteStore

    def broken(assoc, result):
        raise RuntimeError("a bug")

    monkeypatch.setattr(sc, "_report_on", broken)
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    commitment = sc.StorageCommitment(GatewayConfig(data_dir=tmp_path), store)
    transaction = generate_uid()
    request = sc.Request(transaction, (sc.Reference(TWELVE_LEAD, generate_uid()),))
    with caplog.at_level(logging.INFO, logger="gateway.intake.storage_commitment"):
        commitment.report(None, "CART1", request)
    store.close()
    assert "RuntimeError at test_storage_commitment.py:" in caplog.text
    assert f"storage commitment {transaction} from CART1: 0 committed, 1 failed" in caplog.text
    assert "NOT delivered, the cart must ask again" in caplog.text


def test_undeliverable_report_is_logged_with_the_transaction(tmp_path, cart, sent_ecgs, caplog):
    """No address for the cart and no report taken on its association: the gateway says
    so; the cart keeps its copies and asks again."""
    gateway = RunningGateway(tmp_path)
    try:
        committed = send(gateway, sent_ecgs)
        transaction = generate_uid()
        assoc = cart.associate(gateway.port, takes_reports=False)
        with caplog.at_level(logging.INFO, logger="gateway.intake.storage_commitment"):
            assert request_commitment(assoc, action_information(transaction, committed))[0] == 0
            with pytest.raises(queue.Empty):
                cart.next_report(wait_s=2)
        assoc.release()
    finally:
        gateway.stop()
    text = caplog.text
    assert f"{transaction}: CART1 is not in storage_commitment.peers" in text
    assert f"storage commitment {transaction} from CART1: 2 committed, 0 failed" in text
    assert "NOT delivered" in text


# --- bad requests: a clear failure status, and no report -------------------------------------


@pytest.mark.parametrize(
    "transaction, refs, action_type, expected",
    [
        (None, "sent", 1, (0x0115, "Transaction UID missing or not a UID")),
        ("not a uid", "sent", 1, (0x0115, "Transaction UID missing or not a UID")),
        ("generate", [], 1, (0x0115, "Referenced SOP Sequence missing or empty")),
        ("generate", "sent", 2, (NO_SUCH_ACTION, "action type 2 is not 1")),
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_bad_request_gets_a_clear_failure_and_no_report(
    tmp_path, cart, sent_ecgs, transaction, refs, action_type, expected
):
    gateway = RunningGateway(tmp_path)
    try:
        committed = send(gateway, sent_ecgs[:1])
        assoc = cart.associate(gateway.port)
        uid = generate_uid() if transaction == "generate" else transaction
        info = action_information(uid, committed if refs == "sent" else refs)
        assert request_commitment(assoc, info, action_type) == expected
        with pytest.raises(queue.Empty):
            cart.next_report(wait_s=1)
        assoc.release()
    finally:
        gateway.stop()
