"""Storage Commitment Push Model as SCP (PS3.4 Annex J): a cart asks whether the gateway
keeps the objects it sent, and deletes its own copies only once the gateway says so.

Committed means safekeeping, not processing: the store holds a job for the SOP Instance
UID, of the same SOP Class, whose spool file is on disk (intake commits a job only after
its spool file is fsync'd). The N-ACTION is answered at once; the N-EVENT-REPORT follows
from a thread, on the requesting association while it is open and takes it, otherwise on
a new association to the cart's address in gateway.yaml's `storage_commitment.peers`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import StorageCommitmentPushModel, StorageCommitmentPushModelInstance

from gateway.config import GatewayConfig
from gateway.intake.spool import is_valid_uid
from gateway.logs import fault
from gateway.store import Store, StoreError

log = logging.getLogger(__name__)

REQUEST_COMMITMENT = 1  # N-ACTION Action Type ID (PS3.4 J.3.2)
ALL_COMMITTED = 1  # N-EVENT-REPORT Event Type IDs (PS3.4 J.3.3)
SOME_FAILED = 2

# Statuses (PS3.7 C) and Failure Reasons (PS3.4 J.3.3.1.1).
SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
INVALID_ARGUMENT_VALUE = 0x0115
INVALID_OBJECT_INSTANCE = 0x0117
CLASS_INSTANCE_CONFLICT = 0x0119
NO_SUCH_ACTION = 0x0123


@dataclass(frozen=True)
class Reference:
    """One item of a Referenced SOP Sequence."""

    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class Request:
    transaction_uid: str
    references: tuple[Reference, ...]


@dataclass(frozen=True)
class Result:
    """What the gateway keeps of one request: committed objects, and failed ones with
    their Failure Reason."""

    transaction_uid: str
    committed: tuple[Reference, ...]
    failed: tuple[tuple[Reference, int], ...]

    @property
    def event_type(self) -> int:
        return SOME_FAILED if self.failed else ALL_COMMITTED

    def event_information(self) -> Dataset:
        """The N-EVENT-REPORT's Event Information (PS3.4 Table J.3-2)."""
        info = Dataset()
        info.TransactionUID = self.transaction_uid
        if self.committed:
            info.ReferencedSOPSequence = Sequence([_item(ref) for ref in self.committed])
        if self.failed:
            info.FailedSOPSequence = Sequence(
                [_item(ref, FailureReason=reason) for ref, reason in self.failed]
            )
        return info


def _item(ref: Reference, **extra: int) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ref.sop_class_uid
    item.ReferencedSOPInstanceUID = ref.sop_instance_uid
    for keyword, value in extra.items():
        setattr(item, keyword, value)
    return item


# --- the request --------------------------------------------------------------------------


def parse_request(event: evt.Event) -> Request | Dataset:
    """The request, or the failure status (with an ErrorComment) that refuses it."""
    if event.action_type != REQUEST_COMMITMENT:
        return failure(NO_SUCH_ACTION, f"action type {event.action_type} is not 1")
    if event.request.RequestedSOPInstanceUID != StorageCommitmentPushModelInstance:
        return failure(
            INVALID_OBJECT_INSTANCE, "not the well-known instance 1.2.840.10008.1.20.1.1"
        )
    try:
        info = event.action_information
        transaction_uid = str(info.get("TransactionUID", ""))
        items = list(info.get("ReferencedSOPSequence", []))
        references = tuple(_reference(item) for item in items)
    except Exception:  # noqa: BLE001 - pydicom raises many types on a damaged dataset
        return failure(INVALID_ARGUMENT_VALUE, "action information cannot be decoded")
    if not is_valid_uid(transaction_uid):
        return failure(INVALID_ARGUMENT_VALUE, "Transaction UID missing or not a UID")
    if not references:
        return failure(INVALID_ARGUMENT_VALUE, "Referenced SOP Sequence missing or empty")
    if not all(
        is_valid_uid(r.sop_class_uid) and is_valid_uid(r.sop_instance_uid) for r in references
    ):
        return failure(INVALID_ARGUMENT_VALUE, "a referenced SOP Class or Instance UID is invalid")
    return Request(transaction_uid, references)


def _reference(item: Dataset) -> Reference:
    return Reference(
        str(item.get("ReferencedSOPClassUID", "")), str(item.get("ReferencedSOPInstanceUID", ""))
    )


def failure(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]  # LO: at most 64 characters
    return ds


# --- the answer -----------------------------------------------------------------------------


def check_commitment(store: Store, request: Request) -> Result:
    """Which of the referenced objects the gateway keeps, each looked up in the store."""
    committed: list[Reference] = []
    failed: list[tuple[Reference, int]] = []
    for ref in request.references:
        reason = _failure_reason(store, ref)
        if reason is None:
            committed.append(ref)
        else:
            failed.append((ref, reason))
    return Result(request.transaction_uid, tuple(committed), tuple(failed))


def _failure_reason(store: Store, ref: Reference) -> int | None:
    try:
        jobs = store.jobs_for_uid(ref.sop_instance_uid)
        # A job whose object retention removed (spool_path '') is no longer kept.
        kept = [job for job in jobs if store.holds_object(job)]
    except StoreError as exc:
        log.error("storage commitment: the store cannot be read: %s", exc)
        return PROCESSING_FAILURE
    except Exception as exc:  # noqa: BLE001 - in the report's thread: the cart must hear
        log.error("storage commitment: checking an object failed: %s", fault(exc, stack=True))
        return PROCESSING_FAILURE
    if not kept:
        return NO_SUCH_OBJECT_INSTANCE
    if all(job.sop_class_uid != ref.sop_class_uid for job in kept):
        return CLASS_INSTANCE_CONFLICT
    return None


# --- the handler and the report --------------------------------------------------------------


class StorageCommitment:
    """Answers N-ACTION requests and delivers their N-EVENT-REPORTs."""

    def __init__(self, config: GatewayConfig, store: Store) -> None:
        self.config = config
        self.store = store

    def report(self, assoc: Association, calling_ae: str, request: Request) -> None:
        """Check the objects and tell the cart: same association first, else a new one."""
        result = check_commitment(self.store, request)
        try:
            delivered = _report_on(assoc, result) or self._report_on_new_association(
                calling_ae, result
            )
        except Exception as exc:  # noqa: BLE001 - this thread's last word: a log line
            log.error(
                "storage commitment %s: sending the report failed: %s",
                result.transaction_uid,
                fault(exc, stack=True),
            )
            delivered = False
        log.log(
            logging.INFO if delivered else logging.WARNING,
            "storage commitment %s from %s: %d committed, %d failed; report %s",
            result.transaction_uid,
            calling_ae,
            len(result.committed),
            len(result.failed),
            "delivered" if delivered else "NOT delivered, the cart must ask again",
        )

    def _report_on_new_association(self, calling_ae: str, result: Result) -> bool:
        address = self.config.storage_commitment.peers.get(calling_ae)
        if address is None:
            log.warning(
                "storage commitment %s: %s is not in storage_commitment.peers, so the report "
                "cannot be sent on a new association",
                result.transaction_uid,
                calling_ae,
            )
            return False
        host, _, port = address.rpartition(":")
        assoc = self._requesting_ae().associate(
            host,
            int(port),
            ae_title=calling_ae,
            # The gateway opens this association but is the Storage Commitment SCP (J.3.1).
            ext_neg=[build_role(StorageCommitmentPushModel, scp_role=True)],
        )
        if not assoc.is_established:
            log.warning("storage commitment: cannot associate with %s at %s", calling_ae, address)
            return False
        try:
            return _send_report(assoc, result)
        finally:
            assoc.release()

    def _requesting_ae(self) -> AE:
        ae = AE(ae_title=self.config.ae_title)
        ae.add_requested_context(StorageCommitmentPushModel)
        ae.acse_timeout = self.config.dicom.acse_timeout_s
        ae.dimse_timeout = self.config.dicom.dimse_timeout_s
        ae.network_timeout = self.config.dicom.network_timeout_s
        return ae


def _report_on(assoc: Association, result: Result) -> bool:
    """The report on the requesting association, if it is still open and the cart takes it."""
    if not assoc.is_established or assoc.acse.is_release_requested():
        return False
    try:
        return _send_report(assoc, result)
    except RuntimeError:  # released between the check and the send
        return False


def _send_report(assoc: Association, result: Result) -> bool:
    status, _ = assoc.send_n_event_report(
        result.event_information(),
        result.event_type,
        StorageCommitmentPushModel,
        StorageCommitmentPushModelInstance,
    )
    return status.get("Status") == SUCCESS


def handle_n_action(event: evt.Event, commitment: StorageCommitment) -> tuple[Dataset, None]:
    """Answer at once; the report follows from a thread, because pynetdicom sends this
    handler's response only once it returns and the report must come after it."""
    request = parse_request(event)
    calling_ae = event.assoc.requestor.ae_title
    if isinstance(request, Dataset):
        log.warning(
            "refused a storage commitment request from %s: 0x%04X %s",
            calling_ae,
            request.Status,
            request.ErrorComment,
        )
        return request, None
    threading.Thread(
        target=commitment.report,
        args=(event.assoc, calling_ae, request),
        name="storage-commitment-report",
        daemon=True,
    ).start()
    status = Dataset()
    status.Status = SUCCESS
    return status, None
