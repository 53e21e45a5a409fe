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
import time

from pydicom import dcmread
from pynetdicom import AE, evt
from pynetdicom.sop_class import ComprehensiveSRStorage, EncapsulatedPDFStorage

from gateway.delivery.base import Artefacts, DeliveryError, redact
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
    """C-STORE of the prepared objects to one archive, on an association per delivery."""

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

    def send(self, package: ReportPackage, artefacts: Artefacts) -> str:
        called, host, port = self.destination.address
        where = f"C-STORE to {called}@{host}:{port}"
        deadline = time.monotonic() + self.destination.timeout_s

        def connected(event: evt.Event) -> None:
            """The association's answer gets what the connecting left."""
            event.assoc.acse_timeout = max(deadline - time.monotonic(), _LEAST_S)

        try:
            address = first_ipv4(lookup(host, port, deadline - time.monotonic()))
        except TimeoutError:
            raise DeliveryError(
                f"{where}: no answer from DNS for {host}{self._late(deadline)}"
            ) from None
        except OSError as exc:
            raise DeliveryError(f"{where}: looking up {host}: {exc}") from None
        self._ae.connection_timeout = max(deadline - time.monotonic(), _LEAST_S)
        assoc = self._ae.associate(
            address, port, ae_title=called, evt_handlers=[(evt.EVT_CONN_OPEN, connected)]
        )
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

    def close(self) -> None:
        """Nothing held open between sends."""

    def _late(self, deadline: float) -> str:
        """What to add to an error once the deadline has passed (near enough)."""
        if deadline - time.monotonic() > _LEAST_S:
            return ""
        return f" within {self.destination.timeout_s:g} s (timeout_s, for the whole send)"
