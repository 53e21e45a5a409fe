"""A FHIR POST, an HL7 (MLLP) or a DICOM send in progress when its sender is closed (a
routes reload that removed the destination, or the gateway's stop) is cut at once and
its delivery handed back untried, counted in delivery_handbacks_total, instead of holding
the reload or the stop for up to the destination's timeout_s. Real parts: the sweeper
with its formatting process, the SQLite store, an HTTP FHIR server and an MLLP receiver
that answer late, a pynetdicom archive that takes the C-STORE request and does not answer
it; and for the dialing, a listener whose queue is full."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import delivery_support as support
import pytest
from peers import FhirTestServer, Hl7TestPeer
from pynetdicom import AE, evt
from pynetdicom.sop_class import ComprehensiveSRStorage, EncapsulatedPDFStorage
from pynetdicom.transport import AssociationSocket

from gateway import metrics as m
from gateway.delivery import Artefacts, Sender, dicom, open_sender, prepare
from gateway.delivery.base import DeliveryError, SendInterrupted
from gateway.metrics import Metrics
from gateway.processing.package import ReportPackage
from gateway.routing import DicomDestination, Hl7Destination

_ANSWER_AFTER_S = 60.0  # the peers'; well within the destination's 120 s timeout_s
_PROMPT_S = 3.0  # a reload or stop that waited for the send would take _ANSWER_AFTER_S


class SilentArchive:
    """A pynetdicom storage SCP, AE title ARCHIVE, that accepts the association and takes
    the C-STORE request, then answers it only when stopped (or after _ANSWER_AFTER_S)."""

    def __init__(self) -> None:
        self._requested = threading.Event()  # a C-STORE request has arrived
        self._answer = threading.Event()
        ae = AE(ae_title="ARCHIVE")
        for context in (EncapsulatedPDFStorage, ComprehensiveSRStorage):
            ae.add_supported_context(context)
        self._server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )
        self.port = self._server.server_address[1]

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def _store(self, event: evt.Event) -> int:
        self._requested.set()
        self._answer.wait(_ANSWER_AFTER_S)
        return 0x0000

    def stop(self) -> None:
        self._answer.set()
        self._server.shutdown()


class SilentHl7:
    """An MLLP receiver (tests/peers.py) that takes the message and answers it late."""

    def __init__(self) -> None:
        self._peer = Hl7TestPeer(script=["delay"], delay_s=_ANSWER_AFTER_S).start()
        self.port = self._peer.port

    @property
    def requested(self) -> bool:
        return bool(self._peer.received)

    def stop(self) -> None:
        self._peer.stop()


class SilentFhir:
    """A FHIR server (tests/peers.py) that takes the transaction and answers it late."""

    def __init__(self) -> None:
        self._server = FhirTestServer(delay_s=_ANSWER_AFTER_S).start()
        self.base_url = self._server.base_url

    @property
    def requested(self) -> bool:
        return self._server.requests > 0

    def stop(self) -> None:
        self._server.stop()


def _fhir_site(server: SilentFhir) -> tuple[str, str]:
    return f"{{type: fhir, endpoint: '{server.base_url}', timeout_s: 120}}", server.base_url


def _hl7_site(peer: SilentHl7) -> tuple[str, str]:
    endpoint = f"127.0.0.1:{peer.port}"
    return f"{{type: hl7, endpoint: 'mllp://{endpoint}', timeout_s: 120}}", endpoint


def _dicom_site(archive: SilentArchive) -> tuple[str, str]:
    endpoint = f"ARCHIVE@127.0.0.1:{archive.port}"
    return f"{{type: dicom, endpoint: 'dicom://{endpoint}', timeout_s: 120}}", endpoint


_KINDS: dict[str, tuple[Callable, Callable]] = {
    "fhir": (SilentFhir, _fhir_site),
    "hl7": (SilentHl7, _hl7_site),
    "dicom": (SilentArchive, _dicom_site),
}


def _wait_for_the_request(
    peer: SilentFhir | SilentHl7 | SilentArchive, wait_s: float = 60.0
) -> None:
    """Until the transaction, the message or the C-STORE request has reached the peer, so
    that the close comes while the send waits for its answer."""
    deadline = time.monotonic() + wait_s
    while not peer.requested:
        assert time.monotonic() < deadline, f"nothing reached the peer within {wait_s:g} s"
        time.sleep(0.05)


@pytest.mark.parametrize("closed_by", ["reload", "stop"])
@pytest.mark.parametrize("kind", ["fhir", "hl7", "dicom"])
def test_a_send_waiting_for_its_answer_is_handed_back_when_its_sender_is_closed(
    shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, closed_by: str
) -> None:
    start_peer, site = _KINDS[kind]
    peer = start_peer()
    entry, endpoint = site(peer)
    routes = f"destinations:\n  far: {entry}\nrules: []\ndefault: [far]\n"
    data_dir, router, store = support.delivery_site(tmp_path, routes)
    metrics = Metrics()
    sweeper, _now, _alerted = support.clocked_sweeper(store, router, tmp_path, metrics=metrics)
    caplog.set_level(logging.WARNING, logger="gateway.delivery.sweeper")
    try:
        job = support.enqueue(store, router, data_dir, support.package(shared_data))
        sweep = support.sweep_in_thread(sweeper, "far")
        _wait_for_the_request(peer)
        support.close_during_send(sweeper, router, closed_by, sweep, _PROMPT_S)
        support.assert_handed_back_untried(store, job)
        assert metrics.get(m.DELIVERIES_HANDED_BACK) == 1
        assert metrics.get(m.DELIVERIES_FAILED) == 0
        expected = f"handed back untried: the sender of {endpoint} was closed during the send"
        assert any(expected in r.getMessage() for r in caplog.records), caplog.text
    finally:
        sweeper.close()
        store.close()
        peer.stop()


def test_an_hl7_send_still_dialing_is_cut_by_its_close(shared_data: Path) -> None:
    """A receiver that does not take the connection (its listen queue is full, as a
    host that drops the SYN): the dialing waits, and a close ends it at once."""
    with support.unanswered_port() as port:
        destination = Hl7Destination.model_validate(
            {"type": "hl7", "endpoint": f"mllp://127.0.0.1:{port}", "timeout_s": 120}
        )
        sender = open_sender("ris", destination)
        pkg = support.package(shared_data)
        sending, outcome = support.send_in_thread(sender, pkg, prepare("ris", destination, pkg))
        try:
            sending.join(timeout=1.0)
            assert sending.is_alive(), f"the dialing did not wait: {outcome}"
            support.assert_the_close_ends_the_send(sender, sending, outcome, _PROMPT_S)
        finally:
            sender.close()


class PromptArchive:
    """A pynetdicom storage SCP, AE title ARCHIVE, answering each C-STORE with success at
    once; `dropped` is set when a connection to it closes."""

    def __init__(self) -> None:
        self.stored = 0
        self.dropped = threading.Event()
        ae = AE(ae_title="ARCHIVE")
        for context in (EncapsulatedPDFStorage, ComprehensiveSRStorage):
            ae.add_supported_context(context)
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_CONN_CLOSE, self._closed)]
        self._server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        self.port = self._server.server_address[1]

    def _store(self, event: evt.Event) -> int:
        self.stored += 1
        return 0x0000

    def _closed(self, event: evt.Event) -> None:
        self.dropped.set()

    def sender(self, shared_data: Path) -> tuple[Sender, ReportPackage, Artefacts]:
        """A DICOM sender to this archive, and a real ECG's report package to send."""
        destination = DicomDestination.model_validate(
            {"type": "dicom", "endpoint": f"dicom://ARCHIVE@127.0.0.1:{self.port}", "timeout_s": 30}
        )
        pkg = support.package(shared_data)
        return open_sender("pacs", destination), pkg, prepare("pacs", destination, pkg)

    def abort(self) -> None:
        """End every association from the archive's side (A-ABORT), as an archive that
        restarts does."""
        for assoc in self._server.active_associations:
            assoc.abort()

    def stop(self) -> None:
        self._server.shutdown()


@pytest.mark.parametrize("stored_before", [0, 1])
def test_a_dicom_send_cut_between_its_c_stores_is_handed_back(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, stored_before: int
) -> None:
    """A close that lands once the association is established but before a C-STORE
    begins (before the PDF's, or between the PDF's and the SR's): pynetdicom refuses
    the C-STORE on the ended association with a RuntimeError, which the sweeper took for
    a failure (an attempt charged, on the last one the delivery dead). It is handed back
    untried as every other cut send is. The close is put at that point by reading each
    object to store (dicom.py's dcmread, before its C-STORE) through a hook."""
    archive = PromptArchive()
    sender, pkg, artefacts = archive.sender(shared_data)
    assert len(artefacts) == 2
    read = dicom.dcmread
    reads = 0

    def read_then_close(data):
        nonlocal reads
        reads += 1
        if reads == stored_before + 1:  # the close, from another thread, as a reload's
            closing = threading.Thread(target=sender.close)
            closing.start()
            closing.join()
            assert archive.dropped.wait(5), "the close did not cut the association"
            time.sleep(0.2)  # and pynetdicom, on the gateway's side, has ended it
        return read(data)

    monkeypatch.setattr(dicom, "dcmread", read_then_close)
    try:
        with pytest.raises(SendInterrupted, match="was closed during the send"):
            sender.send(pkg, artefacts)
        assert archive.stored == stored_before
    finally:
        sender.close()
        archive.stop()


def test_an_association_the_archive_ends_between_c_stores_is_a_clear_retried_failure(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive ending the association after the PDF is stored, the gateway not
    closing anything: a failed try naming the object not stored, retried by the policy,
    not pynetdicom's RuntimeError (an "unexpected" error in the log) nor a handback."""
    archive = PromptArchive()
    sender, pkg, artefacts = archive.sender(shared_data)
    read = dicom.dcmread
    reads = 0

    def read_after_the_archive_aborted(data):
        nonlocal reads
        reads += 1
        if reads == 2:  # the PDF is stored; the SR is next
            archive.abort()
            assert archive.dropped.wait(5), "the archive did not end the association"
            time.sleep(0.2)  # and pynetdicom, on the gateway's side, has seen it end
        return read(data)

    monkeypatch.setattr(dicom, "dcmread", read_after_the_archive_aborted)
    try:
        with pytest.raises(
            DeliveryError, match=f"the association ended before the {dicom.SR_PART}"
        ):
            sender.send(pkg, artefacts)
        assert archive.stored == 1
    finally:
        sender.close()
        archive.stop()


def test_a_dicom_send_closed_just_before_its_dialing_is_cut_once_it_dials(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A close between the association's request (where the sender first holds it) and
    pynetdicom's connect finds a socket not yet connecting: its shutdown fails (ENOTCONN)
    but Linux marks the socket shut down all the same, so the connect that follows ends
    at once (a host that drops the attempt, a listener whose queue is full, does not hold
    it) and the sender cuts the association as it opens. This pins that behaviour, which
    operations.md relies on. The close is put in that window by pynetdicom's connect,
    through a hook, starting it and going on after 0.1 s."""
    with support.unanswered_port() as port:
        destination = DicomDestination.model_validate(
            {"type": "dicom", "endpoint": f"dicom://ARCHIVE@127.0.0.1:{port}", "timeout_s": 20}
        )
        sender = open_sender("pacs", destination)
        pkg = support.package(shared_data)
        artefacts = prepare("pacs", destination, pkg)
        connect = AssociationSocket.connect

        def close_then_connect(self, primitive) -> None:
            threading.Thread(target=sender.close, daemon=True).start()
            time.sleep(0.1)
            connect(self, primitive)

        monkeypatch.setattr(AssociationSocket, "connect", close_then_connect)
        started = time.monotonic()
        try:
            with pytest.raises(SendInterrupted, match="was closed during the send"):
                sender.send(pkg, artefacts)
            assert time.monotonic() - started < _PROMPT_S
        finally:
            sender.close()
