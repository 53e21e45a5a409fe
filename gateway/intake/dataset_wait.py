"""A C-STORE or C-FIND whose command announces a dataset that never follows, answered.

pynetdicom hands a DIMSE message to its handler only once it is complete, so a sender
that announces a dataset (Command Data Set Type not 0x0101) and sends none (pynetdicom's
own SCU does so for an empty Dataset) would hold the association until the network
timeout, a minute by default, with no answer. A sender that has the object or query in
hand sends its first data fragment right after the command, so the gateway watches the
PDUs of each association: when a C-STORE or C-FIND request's command ends with a dataset
announced and no P-DATA follows within `dicom.dataset_wait_s`, it answers that request
with a failure ("no dataset received"), logs it and aborts the association, so that a
dataset arriving later can never be handled after a failure was answered. Nothing was
acknowledged, so nothing is lost.

pynetdicom has no hook for "command received, dataset pending"; this is the smallest
addition that gives one (a notification handler for EVT_PDU_RECV).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from io import BytesIO
from weakref import WeakKeyDictionary

from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_FIND, C_STORE
from pynetdicom.pdu import P_DATA_TF

from gateway.metrics import Metrics

log = logging.getLogger(__name__)

NO_DATASET = 0xC000  # C-STORE: error, cannot understand (PS3.4 B.2.3)
NO_IDENTIFIER = 0xA900  # C-FIND: identifier does not match SOP class (PS3.4 C.4.1.1.4)
# The requests that carry a dataset, their response primitives and failure statuses.
_FAILURES = {0x0001: (C_STORE, NO_DATASET), 0x0020: (C_FIND, NO_IDENTIFIER)}
_NO_DATASET_PRESENT = 0x0101
_COMMAND = 0x01  # message control header bits (PS3.8 E.2)
_LAST = 0x02


@dataclass
class _Pending:
    """One association's command fragments so far, and the wait for an announced dataset."""

    command: bytearray = field(default_factory=bytearray)
    timer: threading.Timer | None = None


class DatasetWait:
    """The EVT_PDU_RECV handler: starts a timer after each C-STORE or C-FIND command that
    announces a dataset, stops it when the next P-DATA arrives."""

    def __init__(self, wait_s: float, metrics: Metrics) -> None:
        self.wait_s = wait_s
        self.metrics = metrics
        self._pending: WeakKeyDictionary[Association, _Pending] = WeakKeyDictionary()
        self._lock = threading.Lock()

    def handler(self) -> tuple:
        """The (event, handler) pair for the SCP's handler list."""
        return (evt.EVT_PDU_RECV, self.pdu_received)

    def pdu_received(self, event: evt.Event) -> None:
        if not isinstance(event.pdu, P_DATA_TF):
            return
        pending = self._state(event.assoc)
        self._stop(pending)
        for item in event.pdu.presentation_data_value_items:
            value = item.presentation_data_value
            if not value or not value[0] & _COMMAND:
                pending.command.clear()  # a data fragment: the dataset is coming
                continue
            pending.command.extend(value[1:])
            if value[0] & _LAST:
                self._command_complete(event.assoc, item.presentation_context_id, pending)

    def _state(self, assoc: Association) -> _Pending:
        with self._lock:
            return self._pending.setdefault(assoc, _Pending())

    @staticmethod
    def _stop(pending: _Pending) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None

    def _command_complete(self, assoc: Association, context_id: int, pending: _Pending) -> None:
        command = _decode_command(bytes(pending.command))
        pending.command.clear()
        if command is None or command.get("CommandField") not in _FAILURES:
            return
        if command.get("CommandDataSetType", _NO_DATASET_PRESENT) == _NO_DATASET_PRESENT:
            return
        pending.timer = threading.Timer(
            self.wait_s, self._no_dataset, args=(assoc, context_id, command)
        )
        pending.timer.daemon = True
        pending.timer.start()

    def _no_dataset(self, assoc: Association, context_id: int, command: Dataset) -> None:
        """No data after the command within the wait: answer the failure, then abort."""
        response = _failure(command)
        log.warning(
            "%s from %s at %s announced a dataset and sent none within %.1f s:"
            " answered 0x%04X and aborted the association",
            type(response).__name__.replace("_", "-"),
            assoc.requestor.ae_title,
            assoc.requestor.address,
            self.wait_s,
            response.Status,
        )
        self.metrics.reject("no-dataset")
        try:
            assoc.dimse.send_msg(response, context_id)
        finally:
            # Queued behind the response (a blocking abort could stop the connection
            # before the response is written).
            assoc.abort(block=False)


def _decode_command(encoded: bytes) -> Dataset | None:
    """The command set (always implicit VR little endian, PS3.7 6.3.1), or None if it
    does not decode (pynetdicom itself answers such a message)."""
    try:
        return read_dataset(BytesIO(encoded), is_implicit_VR=True, is_little_endian=True)
    except Exception:  # noqa: BLE001 - any decoding failure: pynetdicom answers the message
        return None


def _failure(command: Dataset) -> C_STORE | C_FIND:
    primitive, status = _FAILURES[int(command.CommandField)]
    response = primitive()
    response.MessageIDBeingRespondedTo = int(command.get("MessageID", 0))
    response.AffectedSOPClassUID = str(command.get("AffectedSOPClassUID", ""))
    if isinstance(response, C_STORE):
        response.AffectedSOPInstanceUID = str(command.get("AffectedSOPInstanceUID", ""))
    response.Status = status
    response.ErrorComment = "no dataset received after the command"
    return response
