"""The `dicom` route: the report stored to a DICOM archive by C-STORE (pynetdicom as SCU),
as an Encapsulated PDF and as a TID 3700 ECG Report SR (dicom_objects.py, dicom_sr.py).

One association per delivery, both objects on it; retried like every destination by
the sweeper. A refusal the archive will repeat for the same object (its status says the
data set is wrong or not understood) is permanent; a busy or out-of-resources archive,
a rejected or aborted association, or silence is retried.

The send has `timeout_s` as a whole, not per step: the archive's host name is looked up
within it (resolve.py; the association then dials the address found), and pynetdicom's
timeouts are each one step's (connecting, the association's answer, each C-STORE's answer, the release's), so
each is set to what is left of the deadline when its step begins. Past the deadline the
association is aborted (by pynetdicom when a C-STORE goes unanswered); objects stored by
then stay stored, and a send whose objects were all stored has succeeded.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from concurrent.futures import Future

from pydicom import dcmread
from pynetdicom import AE, Association, evt
from pynetdicom.sop_class import ComprehensiveSRStorage, EncapsulatedPDFStorage

from gateway.delivery.base import Artefacts, DeliveryError, SendInterrupted, redact
from gateway.delivery.dicom_objects import encapsulated_pdf
from gateway.delivery.dicom_sr import ecg_report_sr
from gateway.delivery.resolve import first_ipv4, lookup
from gateway.processing.package import ReportPackage
from gateway.routing import DicomDestination

PDF_PART = "report-pdf.dcm"
SR_PART = "report-sr.dcm"
_SUCCESS = 0x0000
_WARNINGS = {0x0001, 0xB000, 0xB006, 0xB007}
# PS3.4 B.2.3 / PS3.7 C: the archive cannot take this data set as it is
_PERMANENT = {0x0122, 0x0124, 0x0211, 0xA900}
_CANNOT_UNDERSTAND = range(0xC000, 0xD000)
_LEAST_S = 0.05  # less left than this is no time for another step

log = logging.getLogger(__name__)


def prepare(package: ReportPackage, destination: DicomDestination, name: str) -> Artefacts:
    """Part 10 files by part; the PDF only where the package has one (a received picture
    has none), the SR for every report."""
    artefacts: Artefacts = {}
    if "pdf" in destination.objects and package.pdf is not None:
        artefacts[PDF_PART] = encapsulated_pdf(package)
    if "sr" in destination.objects:
        artefacts[SR_PART] = ecg_report_sr(package)
    return artefacts


class DicomSender:
    """C-STORE of the prepared objects to one archive, on an association per delivery.

    A reload or stop may close the sender while a sweep sends: close cuts the association
    in progress (`_assoc`, held from its request on, under `_state`), and one requested
    after the close is cut as it begins; the delivery is then handed back untried, however
    the cut send failed."""

    def __init__(self, destination: DicomDestination, name: str):
        self.destination = destination
        self.name = name
        # pynetdicom logs every PDU at INFO; the sweeper logs each delivery once
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        self._ae = AE(ae_title=destination.calling_ae)
        for context in (EncapsulatedPDFStorage, ComprehensiveSRStorage):
            self._ae.add_requested_context(context)
        # each step's timeout is set from what is left of the deadline when it begins (send)
        self._ae.network_timeout = destination.timeout_s
        self._state = threading.Lock()
        self._assoc: Association | None = None
        self._closed: Future[None] = Future()  # done once closed; ends a wait for DNS too

    def send(self, package: ReportPackage, artefacts: Artefacts) -> str:
        called, host, port = self.destination.address
        try:
            return self._send(package, artefacts)
        except Exception as exc:  # a cut association fails in pynetdicom's ways (RuntimeError)
            if not self._closed.done():
                raise
            log.debug(
                "send to %s@%s:%s cut by the close: %s", called, host, port, type(exc).__name__
            )
            raise SendInterrupted(
                f"the sender of {called}@{host}:{port} was closed during the send"
            ) from None
        finally:
            with self._state:
                self._assoc = None

    def close(self) -> None:
        """For good; from another thread it cuts the association in progress."""
        with self._state:
            if not self._closed.done():
                self._closed.set_result(None)
            if self._assoc is not None:
                _cut(self._assoc)

    def _send(self, package: ReportPackage, artefacts: Artefacts) -> str:
        called, host, port = self.destination.address
        where = f"C-STORE to {called}@{host}:{port}"
        deadline = time.monotonic() + self.destination.timeout_s

        def connected(event: evt.Event) -> None:
            """The association's answer gets what the connecting left."""
            event.assoc.acse_timeout = max(deadline - time.monotonic(), _LEAST_S)
            self._hold(event)

        try:
            address = first_ipv4(lookup(host, port, deadline - time.monotonic(), self._closed))
        except TimeoutError:
            raise DeliveryError(
                f"{where}: no answer from DNS for {host}{self._late(deadline)}"
            ) from None
        except OSError as exc:
            raise DeliveryError(f"{where}: looking up {host}: {exc}") from None
        if self._closed.done():
            raise DeliveryError(f"{where}: the sender was closed")
        self._ae.connection_timeout = max(deadline - time.monotonic(), _LEAST_S)
        handlers = [(evt.EVT_REQUESTED, self._hold), (evt.EVT_CONN_OPEN, connected)]
        assoc = self._ae.associate(address, port, ae_title=called, evt_handlers=handlers)
        if not assoc.is_established:
            state = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "failed"
            raise DeliveryError(f"{where}: association {state}{self._late(deadline)}")
        try:
            stored = [
                self._store(assoc, part, data, where, package, deadline)
                for part, data in artefacts.items()
            ]
        finally:
            left = deadline - time.monotonic()
            if assoc.is_established and left > _LEAST_S:
                assoc.acse_timeout = left  # the wait for the release's answer
                assoc.release()
            elif assoc.is_established:
                assoc.abort()
        return f"{where}: stored {', '.join(stored)}"

    def _store(
        self, assoc, part: str, data: bytes, where: str, package: ReportPackage, deadline: float
    ) -> str:
        dataset = dcmread(io.BytesIO(data))
        if not assoc.is_established:  # send_c_store would raise RuntimeError
            raise DeliveryError(f"{where}: the association ended before the {part}")
        assoc.dimse_timeout = max(deadline - time.monotonic(), _LEAST_S)
        status = assoc.send_c_store(dataset)
        code = getattr(status, "Status", None)
        if code is None:
            why = self._late(deadline) or " (the association was aborted)"
            raise DeliveryError(f"{where}: no answer to the {part}{why}")
        if code == _SUCCESS or code in _WARNINGS:
            return part if code == _SUCCESS else f"{part} (warning 0x{code:04X})"
        comment = str(status.get("ErrorComment", "")).strip()
        detail = f": {redact(comment, package, 120)}" if comment else ""
        raise DeliveryError(
            f"{where}: the {part} was refused with status 0x{code:04X}{detail}",
            permanent=code in _PERMANENT or code in _CANNOT_UNDERSTAND,
        )

    def _hold(self, event: evt.Event) -> None:
        """The association in progress, where close can cut it: from its request (the
        requesting thread, before the connecting) and again once connected (pynetdicom's
        own thread), where a close that came in between cuts it."""
        with self._state:
            self._assoc = event.assoc
            if self._closed.done():
                _cut(event.assoc)

    def _late(self, deadline: float) -> str:
        """What to add to an error once the deadline has passed (near enough)."""
        if deadline - time.monotonic() > _LEAST_S:
            return ""
        return f" within {self.destination.timeout_s:g} s (timeout_s, for the whole send)"


def _cut(assoc: Association) -> None:
    """Shut the association's connection down, as an archive dropping it would: pynetdicom
    then ends the association (A-P-ABORT) and wakes the step waiting on it, the
    connecting, the association's answer or a C-STORE's answer. Its abort() would not wake
    a C-STORE waiting for its answer (that waits out dimse_timeout), and it waits for the
    archive to close the connection (pynetdicom#194)."""
    transport = assoc.dul.socket
    sock = transport.socket if transport is not None else None
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connecting yet (then cut again once connected), or closed already
        pass
