"""A network send ends within its destination's timeout_s as a whole, against real peers
that keep each socket operation within its own timeout but never finish in time: an HTTP
server and an MLLP receiver trickling their answer a byte a second, a DICOM archive slow
with each C-STORE. And the bound that keeps a send within the delivery's lease."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from delivery_support import package
from gateway_process import free_port
from peers import FhirTestServer, Hl7TestPeer
from pynetdicom import AE, evt
from pynetdicom.sop_class import ComprehensiveSRStorage, EncapsulatedPDFStorage

from gateway.delivery import DeliveryError, open_sender, prepare
from gateway.delivery.base import SendInterrupted
from gateway.delivery.dicom import SR_PART
from gateway.routing import DicomDestination, FhirDestination, Hl7Destination
from gateway.routing.router import check_routes

TIMEOUT_S = 2
TRICKLE_S = 6  # how long the trickling peers go on: well past TIMEOUT_S
SLACK_S = 0.8  # closing the connection (a DICOM abort), on a loaded machine


def _timed_failure(pkg, name: str, destination) -> tuple[DeliveryError, float]:
    """The send's error and how long the send took (the formatting before it not counted)."""
    sender = open_sender(name, destination)
    artefacts = prepare(name, destination, pkg)
    try:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            sender.send(pkg, artefacts)
        return caught.value, time.monotonic() - started
    finally:
        sender.close()


def test_a_fhir_server_trickling_its_answer_is_cut_off_at_the_deadline(
    shared_data: Path,
) -> None:
    server = FhirTestServer(trickle_for_s=TRICKLE_S).start()
    try:
        destination = FhirDestination.model_validate(
            {"type": "fhir", "endpoint": server.base_url, "timeout_s": TIMEOUT_S}
        )
        error, took = _timed_failure(package(shared_data), "ehr", destination)
    finally:
        server.stop()
    assert f"POST transaction to {server.base_url}: no complete answer within 2 s" in str(error)
    assert not error.permanent  # retried by the destination's policy
    assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S


def test_a_fhir_sender_closed_by_a_reload_hands_its_delivery_back(shared_data: Path) -> None:
    """A reload closed the sender between the sweep taking it and sending: the send is
    interrupted (the delivery handed back, no try charged), not a crash on a closed loop."""
    server = FhirTestServer().start()
    try:
        destination = FhirDestination.model_validate(
            {"type": "fhir", "endpoint": server.base_url, "timeout_s": TIMEOUT_S}
        )
        pkg = package(shared_data)
        sender = open_sender("ehr", destination)
        artefacts = prepare("ehr", destination, pkg)
        sender.close()
        with pytest.raises(SendInterrupted, match="was closed"):
            sender.send(pkg, artefacts)
    finally:
        server.stop()
    assert server.requests == 0


def test_an_mllp_receiver_trickling_its_ack_is_cut_off_at_the_deadline(
    shared_data: Path,
) -> None:
    peer = Hl7TestPeer(script=["trickle"], delay_s=TRICKLE_S).start()
    try:
        destination = Hl7Destination.model_validate(
            {"type": "hl7", "endpoint": f"mllp://127.0.0.1:{peer.port}", "timeout_s": TIMEOUT_S}
        )
        error, took = _timed_failure(package(shared_data), "ris", destination)
    finally:
        peer.stop()
    assert str(error) == (
        f"reading reply from 127.0.0.1:{peer.port}: timed out (2 s for the whole exchange)"
    )
    assert not error.permanent
    assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S
    assert len(peer.received) == 1


def test_an_archive_slow_with_each_c_store_is_aborted_at_the_deadline(
    shared_data: Path,
) -> None:
    """pynetdicom as the archive, answering each C-STORE after 1.6 s: each answer within a
    C-STORE's own timeout, both together past the send's."""
    archive = AE(ae_title="ARCHIVE")
    for context in (EncapsulatedPDFStorage, ComprehensiveSRStorage):
        archive.add_supported_context(context)
    stored: list[str] = []

    def slowly(event: evt.Event) -> int:
        time.sleep(1.6)
        stored.append(event.dataset.Modality)
        return 0x0000

    port = free_port()
    server = archive.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, slowly)]
    )
    try:
        destination = DicomDestination.model_validate(
            {
                "type": "dicom",
                "endpoint": f"dicom://ARCHIVE@127.0.0.1:{port}",
                "timeout_s": TIMEOUT_S,
            }
        )
        error, took = _timed_failure(package(shared_data), "archive", destination)
    finally:
        server.shutdown()
    assert str(error) == (
        f"C-STORE to ARCHIVE@127.0.0.1:{port}: no answer to the {SR_PART} "
        "within 2 s (timeout_s, for the whole send)"
    )
    assert not error.permanent
    assert TIMEOUT_S <= took < TIMEOUT_S + SLACK_S
    assert stored[0] == "DOC"  # the PDF was stored: a retry stores it again, the same instance


_ROUTES = """\
destinations:
  ehr: {type: fhir, endpoint: 'https://ehr.example/fhir'}
  ris: {type: hl7, endpoint: 'mllp://ris.example:2575'}
  pacs: {type: dicom, endpoint: 'dicom://PACS@pacs.example:104'}
rules: []
default: [ehr, ris, pacs]
"""


@pytest.mark.parametrize("name, line", [("ehr", 2), ("ris", 3), ("pacs", 4)])
@pytest.mark.parametrize(
    "value, says",
    [
        ("121", "less than or equal to 120"),  # with the formatting, within the lease
        ("0.5", "greater than or equal to 1"),
    ],
)
def test_a_network_timeout_out_of_range_is_refused_naming_the_key_and_line(
    tmp_path: Path, name: str, line: int, value: str, says: str
) -> None:
    routes = tmp_path / "routes.yaml"
    written = _ROUTES.replace(f"  {name}: {{", f"  {name}: {{timeout_s: {value}, ")
    routes.write_text(written)
    [issue] = check_routes(routes)
    assert (issue.line, issue.where) == (line, f"destinations.{name}.timeout_s")
    assert says in issue.message


def test_the_bound_itself_is_accepted(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(_ROUTES.replace("  ris: {", "  ris: {timeout_s: 120, "))
    assert check_routes(routes) == []


def test_each_destination_has_a_described_timeout() -> None:
    for kind in (FhirDestination, Hl7Destination, DicomDestination):
        field = kind.model_json_schema()["properties"]["timeout_s"]
        assert (field["minimum"], field["maximum"]) == (1, 120)
        assert "in all" in field["description"]
