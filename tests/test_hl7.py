"""HL7 v2.5.1 ORU^R01: the message as another implementation (the `hl7` package)
reads it, and delivery over MLLP to that implementation's MLLP server."""

from __future__ import annotations

import base64
from pathlib import Path

import hl7
import pytest
from delivery_support import package, send_now
from example_reports import afib_report
from hl7_strict import validated_strictly
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message
from peers import Hl7TestPeer
from pydantic import ValidationError

import model
from gateway.delivery import DeliveryError
from gateway.delivery.base import object_uids
from gateway.delivery.hl7 import (
    ED_DATA_MAX_CHARS,
    Hl7Sender,
    build_oru,
    control_id,
    encode,
    parse_ack,
)
from gateway.routing import Hl7Destination, Hl7Options

OPTIONS = Hl7Options(
    sending_application="ECGGW",
    sending_facility="CARDIO",
    receiving_application="RIS",
    receiving_facility="HOSP",
    accept_ack_type="AL",
    application_ack_type="NE",
)


def _parsed(pkg, destination: str = "ris") -> hl7.Message:
    er7 = encode(build_oru(pkg, OPTIONS, control_id(pkg, destination))).decode("utf-8")
    return hl7.parse(er7)


def _obx(message: hl7.Message) -> list[hl7.Segment]:
    return list(message.segments("OBX"))


def _destination(port: int, **extra) -> Hl7Destination:
    return Hl7Destination.model_validate(
        {
            "type": "hl7",
            "endpoint": f"mllp://127.0.0.1:{port}",
            "timeout_s": 2,
            "hl7": OPTIONS.model_dump(),
            **extra,
        }
    )


@pytest.fixture
def peer_factory():
    peers: list[Hl7TestPeer] = []

    def start(script: list[str] | None = None) -> Hl7TestPeer:
        peers.append(Hl7TestPeer(script).start())
        return peers[-1]

    yield start
    for peer in peers:
        peer.stop()


def test_msh_pid_and_order_segments(shared_data: Path) -> None:
    pkg = package(
        shared_data,
        accession_number="ACC-2024-17",
        patient_id_issuer="HOSP_MRN",
        patient_name="O'Brien^Mary^Ann^Dr^Jr",
        patient_birth_date="19580312",
    )
    message = _parsed(pkg)
    msh = message.segment("MSH")
    assert [str(msh[i]) for i in (3, 4, 5, 6)] == ["ECGGW", "CARDIO", "RIS", "HOSP"]
    assert str(msh[9]) == "ORU^R01^ORU_R01"
    assert str(msh[10]) == control_id(pkg, "ris")
    assert (str(msh[11]), str(msh[12]), str(msh[15]), str(msh[16])) == ("P", "2.5.1", "AL", "NE")
    assert str(message.segment("PID")[3]) == "000001^^^HOSP_MRN^MR"
    assert str(message.segment("PID")[5]) == "O'Brien^Mary^Ann^Jr^Dr"
    assert (str(message.segment("PID")[7]), str(message.segment("PID")[8])) == ("19580312", "M")
    obr = message.segment("OBR")
    assert str(obr[2]) == "ACC-2024-17"
    assert str(obr[3]) == pkg.metadata.sop_instance_uid
    assert str(obr[4]) == "11524-6^EKG study^LN"
    assert str(obr[7]) == "20240101000000"
    assert str(obr[25]) == "P"
    assert str(message.segment("ORC")[1]) == "RE"


def test_one_obx_per_measurement_with_loinc_and_ucum(shared_data: Path) -> None:
    message = _parsed(package(shared_data, report=afib_report()))
    numeric = {
        str(s[3][0][0]): (str(s[5]), str(s[6][0][0]))
        for s in _obx(message)
        if str(s[2]) == "NM" and str(s[11]) == "P"
    }
    assert numeric == {
        "8867-4": ("112.4", "/min"),
        "8633-0": ("96", "ms"),
        "8634-8": ("402", "ms"),
        "8636-3": ("550.2", "ms"),
        "8632-2": ("-12", "deg"),
        "8638-9": ("48", "deg"),
    }
    assert all(str(s[6][0][2]) == "UCUM" for s in _obx(message) if str(s[2]) == "NM")
    assert [str(s[1]) for s in _obx(message)] == [str(i) for i in range(1, len(_obx(message)) + 1)]


def test_impression_statements_and_pdf(shared_data: Path) -> None:
    pkg = package(shared_data, report=afib_report())
    segments = _obx(_parsed(pkg))
    texts = [str(s[5]) for s in segments if str(s[2]) == "TX"]
    assert texts == [
        "Atrial fibrillation with rapid ventricular response. Long QT.",
        "AFIB: Atrial fibrillation",
        "LNGQT: Long QT interval",
        "ISC_: Non-specific ischemic changes",
    ]
    documents = [s for s in segments if str(s[2]) == "ED"]
    for document in documents:
        assert [str(document[5][0][i]) for i in (1, 2, 3)] == ["AP", "PDF", "Base64"]
    assert _joined_pdf(documents) == pkg.pdf


def _joined_pdf(documents: list[hl7.Segment]) -> bytes:
    """The PDF from its ED OBX segments, joined in order as a receiver does."""
    return base64.b64decode("".join(str(document[5][0][4]) for document in documents))


def test_delimiters_in_text_are_escaped_and_read_back(shared_data: Path) -> None:
    report = afib_report().model_copy(
        update={"impression": r"AF | rate 112 ^ QTc 550 & long ~ \ check"}
    )
    message = _parsed(package(shared_data, report=report, patient_name="Smith|Jones^Anna"))
    impression = next(s for s in _obx(message) if str(s[2]) == "TX")
    assert message.unescape(str(impression[5])) == r"AF | rate 112 ^ QTc 550 & long ~ \ check"
    assert message.unescape(str(message.segment("PID")[5][0][0])) == "Smith|Jones"
    assert len(message.segment("PID")[5][0]) == 2


def test_control_id_is_stable_per_report_and_destination(shared_data: Path) -> None:
    pkg = package(shared_data)
    assert control_id(pkg, "ris") == control_id(package(shared_data), "ris")
    assert control_id(pkg, "ris") != control_id(pkg, "alerts")
    corrected = package(shared_data, report=afib_report())
    assert control_id(corrected, "ris") != control_id(pkg, "ris")
    assert len(control_id(pkg, "ris")) <= 20


def test_a_correction_says_c_and_each_correction_has_its_own_control_id(
    shared_data: Path,
) -> None:
    """Two corrections reading alike are two messages: a receiver that drops a repeated
    MSH-10 must not drop the second; a resend of one of them keeps its MSH-10."""
    corrected = afib_report().model_copy(update={"is_correction": True})
    first = package(shared_data, job_id=2, report=corrected)
    second = package(shared_data, job_id=3, report=corrected)
    message = _parsed(first)
    assert str(message.segment("OBR")[25]) == "C"
    statuses = {str(s[11]) for s in _obx(message)}
    assert statuses == {"C", "X"}  # X: the measurements that could not be made
    assert control_id(first, "ris") != control_id(second, "ris")
    assert control_id(first, "ris") == control_id(
        package(shared_data, job_id=2, report=corrected), "ris"
    )


def test_no_patient_id_means_no_pid_but_still_a_valid_message(shared_data: Path) -> None:
    message = _parsed(package(shared_data, patient_id=None))
    assert [str(s[0]) for s in message][:3] == ["MSH", "ORC", "OBR"]


def test_ack_parsing() -> None:
    ack = parse_ack(
        b"MSH|^~\\&|RIS|HOSP|ECGGW|CARDIO|20240101||ACK^R01^ACK|9|P|2.5.1\rMSA|AE|abc|bad\r"
    )
    assert (ack.code, ack.control_id, ack.text) == ("AE", "abc", "bad")
    with pytest.raises(DeliveryError, match="not a readable HL7 ACK"):
        parse_ack(b"HTTP/1.1 400 Bad Request\r\n")


def test_delivery_to_an_mllp_server_of_another_implementation(
    shared_data: Path, peer_factory
) -> None:
    peer = peer_factory()
    pkg = package(shared_data, report=afib_report())
    sender = Hl7Sender(_destination(peer.port), "ris")
    try:
        assert send_now(sender, pkg).startswith("AA from 127.0.0.1")
        send_now(sender, package(shared_data, uid_suffix="2"))
    finally:
        sender.close()
    assert len(peer.received) == 2 and peer.connections == 1
    received = peer.received[0]
    assert str(received.segment("MSH")[10]) == control_id(pkg, "ris")
    assert str(received.segment("OBR")[3]) == pkg.metadata.sop_instance_uid


@pytest.mark.parametrize(("answer", "permanent"), [("AE", False), ("AR", True), ("CR", True)])
def test_negative_acks_are_failures_without_patient_data(
    shared_data: Path, peer_factory, answer: str, permanent: bool
) -> None:
    """AE is an error a later try may not meet; AR and CR reject the message as it is."""
    peer = peer_factory([answer])
    pkg = package(shared_data, patient_id="PAT-4455")
    sender = Hl7Sender(_destination(peer.port), "ris")
    try:
        with pytest.raises(DeliveryError) as error:
            send_now(sender, pkg)
        assert f"rejected {answer}" in str(error.value)
        assert "PAT-4455" not in str(error.value) and "patient ***" in str(error.value)
        assert error.value.permanent is permanent
        assert send_now(sender, pkg).startswith("AA")  # the peer's script now answers AA
    finally:
        sender.close()


def test_ack_for_another_message_is_a_failure(shared_data: Path, peer_factory) -> None:
    peer = peer_factory(["wrong-id"])
    with pytest.raises(DeliveryError, match="acknowledges MSH-10 'SOMETHING-ELSE'"):
        send_now(Hl7Sender(_destination(peer.port), "ris"), package(shared_data))


def test_dropped_connection_fails_then_the_next_try_reconnects(
    shared_data: Path, peer_factory
) -> None:
    peer = peer_factory(["drop"])
    sender = Hl7Sender(_destination(peer.port), "ris")
    try:
        with pytest.raises(DeliveryError, match="connection closed before a reply"):
            send_now(sender, package(shared_data))
        assert send_now(sender, package(shared_data)).startswith("AA")
    finally:
        sender.close()
    assert peer.connections == 2


def test_idle_connection_closed_by_the_peer_is_redialed(shared_data: Path, peer_factory) -> None:
    peer = peer_factory()
    sender = Hl7Sender(_destination(peer.port), "ris")
    try:
        send_now(sender, package(shared_data, uid_suffix="1"))
        peer.close_connections()
        assert send_now(sender, package(shared_data, uid_suffix="2")).startswith("AA")
    finally:
        sender.close()
    assert len(peer.received) == 2 and peer.connections == 2


def test_nobody_listening_is_a_clear_failure(shared_data: Path, peer_factory) -> None:
    peer = peer_factory()
    port = peer.port
    peer.stop()
    with pytest.raises(DeliveryError, match=f"dialing 127.0.0.1:{port}"):
        send_now(Hl7Sender(_destination(port), "ris"), package(shared_data))


def test_no_patient_name_is_sent_as_unspecified_not_as_a_made_up_name(shared_data: Path) -> None:
    message = _parsed(package(shared_data, patient_name=None))
    assert str(message.segment("PID")[5]) == "^^^^^^U"


def _validated_by_hl7apy(er7_text: str):
    return validated_strictly(er7_text)


def test_messages_pass_hl7apys_strict_2_5_1_validation(shared_data: Path) -> None:
    variants = [
        package(shared_data),
        package(shared_data, report=afib_report()),
        package(shared_data, patient_id=None),
        package(shared_data, patient_name=None, accession_number="ACC-1"),
        package(shared_data, patient_name="Smith|Jones^Anna", patient_id_issuer="HOSP&MRN"),
    ]
    for pkg in variants:
        er7_text = encode(build_oru(pkg, OPTIONS, control_id(pkg, "ris"))).decode()
        message = _validated_by_hl7apy(er7_text)
        order = message.oru_r01_patient_result.oru_r01_order_observation
        assert order.obr.obr_3.value == pkg.metadata.sop_instance_uid
        assert len(order.oru_r01_observation) == len(_obx(hl7.parse(er7_text)))


def test_the_validation_check_rejects_a_message_without_its_obr(shared_data: Path) -> None:
    pkg = package(shared_data)
    segments = encode(build_oru(pkg, OPTIONS, control_id(pkg, "ris"))).decode().split("\r")
    broken = "\r".join(s for s in segments if not s.startswith("OBR|"))
    with pytest.raises(HL7apyException):
        _validated_by_hl7apy(broken)


def test_a_measurement_that_could_not_be_made_says_why_and_warnings_reach_the_order(
    shared_data: Path,
) -> None:
    report = afib_report().model_copy(
        update={
            "warnings": [
                "lead V3 not used: flat line",
                (
                    "the configured vlm engine could not be loaded (no model); "
                    "this report is from the measurement engine"
                ),
            ]
        }
    )
    message = _parsed(package(shared_data, report=report))
    segments = [s for s in message]
    names = [str(s[0]) for s in segments]
    order_note = segments[names.index("OBR") + 1]
    assert str(order_note[0]) == "NTE" and str(order_note[2]) == "L"
    assert message.unescape(str(order_note[3])) == (
        "Technical notes: lead V3 not used: flat line; the configured vlm engine could not be "
        "loaded (no model); this report is from the measurement engine."
    )
    absent = {str(s[3][0][0]): s for s in _obx(message) if str(s[11]) == "X"}
    assert sorted(absent) == ["8625-6", "8626-4"]  # PR and P axis; P duration has no OBX code
    pr = segments.index(absent["8625-6"])
    assert str(segments[pr][5]) == "" and str(segments[pr + 1][0]) == "NTE"
    assert str(segments[pr + 1][3]) == "no consistent P waves (atrial fibrillation)"
    _validated_by_hl7apy(
        encode(build_oru(package(shared_data, report=report), OPTIONS, "x")).decode()
    )


def test_an_image_report_has_no_absent_measurements(shared_data: Path) -> None:
    pkg = package(shared_data, report=afib_report())
    pkg.kind = "secondary-capture"
    assert [s for s in _obx(_parsed(pkg)) if str(s[11]) == "X"] == []


# ------------------------------------------------------------------ the report PDF in OBX


@pytest.fixture(scope="module")
def report_pdf(shared_data: Path) -> bytes:
    """The gateway's own printout of a real 10 s 12-lead ECG."""
    ecg = model.load(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")
    return model.render_pdf(ecg, report=afib_report())


def _pdf_segments(pkg, options: Hl7Options) -> list[hl7.Segment]:
    message = hl7.parse(encode(build_oru(pkg, options, "x")).decode())
    return [s for s in _obx(message) if str(s[2]) in ("ED", "RP")]


def test_the_report_pdf_travels_in_one_obx_and_the_message_passes_strict_validation(
    shared_data: Path, report_pdf: bytes
) -> None:
    pkg = package(shared_data, report=afib_report())
    pkg.pdf = report_pdf
    er7_text = encode(build_oru(pkg, OPTIONS, "x")).decode()
    validated_strictly(er7_text)
    [document] = _pdf_segments(pkg, OPTIONS)
    assert _joined_pdf([document]) == report_pdf
    assert (str(document[3]), str(document[4])) == ("11524-6^EKG study^LN", "1")


def test_a_pdf_over_one_field_is_split_over_consecutive_obx_that_pass_strict_validation(
    shared_data: Path,
) -> None:
    pkg = package(shared_data)  # its PDF is a photographed page, ~100 KB
    pieces = _pdf_segments(pkg, OPTIONS)
    assert len(pieces) == -(-len(base64.b64encode(pkg.pdf)) // ED_DATA_MAX_CHARS) >= 2
    assert {(str(s[3]), str(s[4])) for s in pieces} == {("11524-6^EKG study^LN", "1")}
    assert all(len(str(s[5][0][4])) == ED_DATA_MAX_CHARS for s in pieces[:-1])
    assert _joined_pdf(pieces) == pkg.pdf
    validated_strictly(encode(build_oru(pkg, OPTIONS, "x")).decode())


def test_the_strict_check_refuses_an_ed_over_its_length(shared_data: Path) -> None:
    """The check itself can fail: one ED of the whole ~100 KB PDF is over ED.5's 65,536."""
    pkg = package(shared_data)
    data = base64.b64encode(pkg.pdf).decode()
    er7_text = encode(build_oru(pkg, OPTIONS.model_copy(update={"pdf": "omit"}), "x")).decode()
    oversized = er7_text + f"\rOBX|99|ED|11524-6^EKG study^LN|1|^AP^PDF^Base64^{data}||||||P"
    with pytest.raises(HL7apyException, match="max length: 65536"):
        validated_strictly(oversized)


def test_embed_only_refuses_a_pdf_over_one_field_for_good(shared_data: Path) -> None:
    with pytest.raises(DeliveryError, match="over the 65536 one OBX-5 holds") as caught:
        build_oru(package(shared_data), OPTIONS.model_copy(update={"pdf": "embed"}), "x")
    assert caught.value.permanent


@pytest.mark.parametrize(
    "settings, pointer, application",
    [
        ({"pdf_reference_application": "PACS"}, "{instance}", "PACS"),
        (
            {"pdf_reference_pointer": "https://pacs.example.org/wado-rs/instances/{instance_uid}"},
            "https://pacs.example.org/wado-rs/instances/{instance}",
            "&pacs.example.org&DNS",
        ),
    ],
)
def test_reference_points_at_the_encapsulated_pdf_of_the_dicom_route(
    shared_data: Path, settings: dict, pointer: str, application: str
) -> None:
    options = Hl7Options.model_validate({**OPTIONS.model_dump(), "pdf": "reference", **settings})
    pkg = package(shared_data, report=afib_report())
    er7_text = encode(build_oru(pkg, options, "x")).decode()
    validated_strictly(er7_text)
    [reference] = _pdf_segments(pkg, options)
    uids = object_uids(pkg, "pdf")
    assert str(reference[2]) == "RP"
    assert str(reference[5][0][0]) == pointer.format(instance=uids.instance)
    assert str(reference[5][0][1]) == application
    assert [str(reference[5][0][i]) for i in (2, 3)] == ["AP", "PDF"]
    assert uids.study == pkg.metadata.study_instance_uid  # in the ECG's own study
    assert "JVBER" not in er7_text  # no base64 PDF in the message


def test_a_reference_over_rp1s_length_is_refused_for_good(shared_data: Path) -> None:
    options = OPTIONS.model_copy(
        update={"pdf": "reference", "pdf_reference_pointer": "https://pacs/{study_uid}/" * 3}
    )
    with pytest.raises(DeliveryError, match="over the 199 RP.1 holds") as caught:
        build_oru(package(shared_data), options, "x")
    assert caught.value.permanent


def test_pointer_placeholders_are_checked_and_omit_sends_no_pdf(shared_data: Path) -> None:
    with pytest.raises(ValidationError, match="instance_uid"):
        Hl7Options(pdf="reference", pdf_reference_pointer="https://pacs/{sop}")
    assert _pdf_segments(package(shared_data), OPTIONS.model_copy(update={"pdf": "omit"})) == []


def test_why_obx5_is_typed_by_obx2_for_the_strict_check() -> None:
    """hl7apy's strict parser types every OBX-5 component as ST (199 characters), whatever
    OBX-2 says: a 250-character TX, valid 2.5.1, fails it; typed as TX (as 2.5.1 7.4.2.2
    says OBX-2 does) it passes. If hl7apy learns this, the plain strict parse will pass
    and tests/hl7_strict.py can go."""
    text = "A" * 250
    message = (
        "MSH|^~\\&|ECGGW||||20240101||ORU^R01^ORU_R01|x|P|2.5.1\r"
        "PID|1||1^^^^MR||X^Y\rOBR|1||u|11524-6^EKG study^LN\r"
        f"OBX|1|TX|8601-7^EKG impression^LN|1|{text}||||||P"
    )
    with pytest.raises(HL7apyException, match="max length: 199"):
        parse_message(message, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    validated_strictly(message)
