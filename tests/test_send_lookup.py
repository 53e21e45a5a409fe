"""A destination's host name lookup is part of its send's deadline (timeout_s), and a DNS
server that does not answer cannot pile up lookup threads or hold the gateway's stop.

A hanging DNS server cannot be set up for one process here, so socket.getaddrinfo is
replaced by one that, for names under `.slow-dns.test`, waits (as a resolver waiting on a
silent server does) and then answers as the real call does for 127.0.0.1: same signature,
same result (dns_support.SlowDns, the `slow_dns` fixture). Everything after it is real: an MLLP receiver, dcmtk's storescp, an HTTP
FHIR server, reached at the address the lookup gave.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from delivery_support import assert_the_close_ends_the_send, package, send_in_thread
from dns_support import SlowDns
from gateway_process import free_port
from peers import DcmtkArchive, FhirTestServer, Hl7TestPeer

from gateway.delivery import DeliveryError, open_sender, prepare
from gateway.delivery.resolve import MAX_PENDING, first_ipv4, lookup
from gateway.routing import DicomDestination, FhirDestination, Hl7Destination

TIMEOUT_S = 1  # the least a destination allows
SLACK_S = 1.5  # a busy two-core CI machine; the base waited the resolver out (60 s)


def _send(name: str, destination, pkg) -> tuple[str | DeliveryError, float]:
    sender = open_sender(name, destination)
    artefacts = prepare(name, destination, pkg)
    started = time.monotonic()
    try:
        return sender.send(pkg, artefacts), time.monotonic() - started
    except DeliveryError as exc:
        return exc, time.monotonic() - started
    finally:
        sender.close()


def test_an_mllp_lookup_past_the_deadline_fails_the_send_naming_the_host(
    shared_data: Path, slow_dns: SlowDns
) -> None:
    peer = Hl7TestPeer().start()
    try:
        endpoint = f"mllp://ris.slow-dns.test:{peer.port}"
        destination = Hl7Destination.model_validate(
            {"type": "hl7", "endpoint": endpoint, "timeout_s": TIMEOUT_S}
        )
        error, took = _send("ris", destination, package(shared_data))
        assert isinstance(error, DeliveryError)
        assert str(error) == (
            f"looking up ris.slow-dns.test for ris.slow-dns.test:{peer.port}: "
            "timed out (1 s for the whole exchange)"
        )
        assert not error.permanent
        assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S
        assert peer.received == []

        slow_dns.answer(0.3)  # slow, but in time: the send goes to the address found
        receipt, _ = _send("ris", destination, package(shared_data))
        assert receipt == f"AA from ris.slow-dns.test:{peer.port}"
        assert len(peer.received) == 1
    finally:
        peer.stop()


def test_a_dicom_lookup_past_the_deadline_fails_the_send_naming_the_host(
    shared_data: Path, tmp_path: Path, slow_dns: SlowDns
) -> None:
    archive = DcmtkArchive(tmp_path / "received", free_port())
    try:
        endpoint = f"dicom://ARCHIVE@pacs.slow-dns.test:{archive.port}"
        destination = DicomDestination.model_validate(
            {"type": "dicom", "endpoint": endpoint, "timeout_s": TIMEOUT_S, "objects": ["sr"]}
        )
        error, took = _send("pacs", destination, package(shared_data))
        assert isinstance(error, DeliveryError)
        assert str(error) == (
            f"C-STORE to ARCHIVE@pacs.slow-dns.test:{archive.port}: no answer from DNS for "
            "pacs.slow-dns.test within 1 s (timeout_s, for the whole send)"
        )
        assert not error.permanent
        assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S

        slow_dns.answer(0.3)
        receipt, _ = _send("pacs", destination, package(shared_data))
        assert receipt == (
            f"C-STORE to ARCHIVE@pacs.slow-dns.test:{archive.port}: stored report-sr.dcm"
        )
        assert len(list((tmp_path / "received").iterdir())) == 1
    finally:
        archive.stop()


def test_fhir_lookups_past_the_deadline_share_one_thread_that_holds_no_stop(
    shared_data: Path, slow_dns: SlowDns
) -> None:
    """Two senders (a routes reload opened the second), two sends each, all while DNS is
    silent: each fails at its deadline naming the host, all four wait on one lookup, a
    daemon thread, and closing a sender does not wait for it."""
    server = FhirTestServer().start()
    try:
        port = server.base_url.rsplit(":", 1)[1].split("/")[0]
        endpoint = f"http://ehr.slow-dns.test:{port}/fhir"
        destination = FhirDestination.model_validate(
            {"type": "fhir", "endpoint": endpoint, "timeout_s": TIMEOUT_S}
        )
        pkg = package(shared_data)
        artefacts = prepare("ehr", destination, pkg)
        for _reload in range(2):
            sender = open_sender("ehr", destination)
            for _send_again in range(2):
                started = time.monotonic()
                with pytest.raises(DeliveryError) as caught:
                    sender.send(pkg, artefacts)
                assert TIMEOUT_S <= time.monotonic() - started < TIMEOUT_S + SLACK_S
                assert str(caught.value) == (
                    f"POST transaction to {endpoint}: no answer from DNS for "
                    "ehr.slow-dns.test within 1 s (timeout_s)"
                )
                assert not caught.value.permanent
            closing = time.monotonic()
            sender.close()
            assert time.monotonic() - closing < 0.5
        with slow_dns.lock:
            waiting = list(slow_dns.waiting)
        assert len(waiting) == 1, "a thread per send while DNS is silent"
        assert waiting[0].daemon, "a lookup waiting on DNS would hold the gateway's exit"

        slow_dns.answer(0)  # DNS answers again: the POST goes to the address found
        receipt, _ = _send("ehr", destination, pkg)
        assert isinstance(receipt, str) and receipt.startswith("HTTP 200")
        assert server.requests == 1
    finally:
        server.stop()


def test_lookups_of_silent_hosts_are_bounded(slow_dns: SlowDns) -> None:
    """Past MAX_PENDING unanswered lookups the next fails at once, saying why, rather
    than starting one more thread."""
    for index in range(MAX_PENDING):
        with pytest.raises(TimeoutError):
            lookup(f"host{index}.slow-dns.test", 2575, 0.05)
    started = time.monotonic()
    with pytest.raises(OSError, match=f"{MAX_PENDING} host name lookups are still unanswered"):
        lookup("one-more.slow-dns.test", 2575, 5)
    assert time.monotonic() - started < 0.5
    assert len(slow_dns.waiting) == MAX_PENDING


def test_a_destination_given_by_address_is_not_held_by_other_hosts_dns(
    shared_data: Path, slow_dns: SlowDns
) -> None:
    """With every lookup slot taken by silent hosts (a WAN link down), a destination
    configured by its IP address (the on-site RIS) is still sent to: it needs no DNS."""
    for index in range(MAX_PENDING):
        with pytest.raises(TimeoutError):
            lookup(f"remote{index}.slow-dns.test", 2575, 0.05)
    peer = Hl7TestPeer().start()
    try:
        destination = Hl7Destination.model_validate(
            {"type": "hl7", "endpoint": f"mllp://127.0.0.1:{peer.port}", "timeout_s": TIMEOUT_S}
        )
        receipt, _ = _send("ris", destination, package(shared_data))
        assert receipt == f"AA from 127.0.0.1:{peer.port}"
        assert lookup("::1", 104, 0.05)[0][4][0] == "::1"
    finally:
        peer.stop()


def test_a_lookup_no_thread_could_be_started_for_does_not_block_its_host(
    slow_dns: SlowDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of threads (`can't start new thread`), the lookup fails at once saying why,
    and the host is looked up afresh next time rather than waited on for good."""

    def no_thread(self) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", no_thread)
        with pytest.raises(OSError, match="no thread for the host name lookup"):
            lookup("ris.slow-dns.test", 2575, 5)
    slow_dns.answer(0)
    assert lookup("ris.slow-dns.test", 2575, 5)[0][4][0] == "127.0.0.1"


def test_dicom_dials_the_first_ipv4_address_as_pynetdicom_chose() -> None:
    """A dual-stack archive is often firewalled on IPv6: the IPv4 address is dialled."""
    v6 = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::4", 104, 0, 0))
    v4 = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.4", 104))
    assert first_ipv4([v6, v4]) == "192.0.2.4"
    assert first_ipv4([v6]) == "2001:db8::4"


@pytest.mark.parametrize("kind", ["hl7", "dicom"])
def test_a_send_waiting_on_dns_is_handed_back_at_its_senders_close(
    shared_data: Path, slow_dns: SlowDns, kind: str
) -> None:
    """A reload that removed the destination, or the gateway's stop, while its send waits
    on a silent DNS server: the send ends at once (SendInterrupted: handed back untried),
    not at its timeout_s; the lookup itself goes on in its daemon thread."""
    endpoint = {
        "hl7": "mllp://ris.slow-dns.test:2575",
        "dicom": "dicom://ARCHIVE@pacs.slow-dns.test:104",
    }[kind]
    destination = (Hl7Destination if kind == "hl7" else DicomDestination).model_validate(
        {"type": kind, "endpoint": endpoint, "timeout_s": 120}
    )
    sender = open_sender("far", destination)
    pkg = package(shared_data)
    sending, outcome = send_in_thread(sender, pkg, prepare("far", destination, pkg))
    deadline = time.monotonic() + 10
    while not slow_dns.waiting:
        assert time.monotonic() < deadline, "the send did not look its host up"
        time.sleep(0.01)
    assert_the_close_ends_the_send(sender, sending, outcome, SLACK_S)
    assert len(slow_dns.waiting) == 1
