"""HL7 ORU^R01 for ordered, confirmed, corrected, critical and compared reports: the order
numbers and procedure, the result status (P/F/C), the physician who confirmed it, the
abnormal flags and priority of a critical result, the comparison rows, MSH-10 per version;
read by another implementation (the `hl7` package), validated strictly by hl7apy, and
delivered to an MLLP peer of that other implementation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import hl7
import pytest
from delivery_support import ORDER, package, send_now
from example_reports import CONFIRMATION, afib_report, confirmed, critical_afib_report
from hl7_strict import validated_strictly
from peers import Hl7TestPeer

from gateway.delivery.hl7 import Hl7Sender, build_oru, control_id, encode
from gateway.routing import Hl7Destination, Hl7Options

OPTIONS = Hl7Options(sending_application="ECGGW", receiving_application="RIS")


def _er7(pkg, destination: str = "ris") -> str:
    return encode(build_oru(pkg, OPTIONS, control_id(pkg, destination))).decode("utf-8")


def _parsed(pkg) -> hl7.Message:
    return hl7.parse(_er7(pkg))


def _results(message: hl7.Message) -> list[hl7.Segment]:
    """The OBX rows that carry a result (not the 'X' of a measurement not made)."""
    return [s for s in message.segments("OBX") if str(s[11]) != "X"]


def _by_code(message: hl7.Message) -> dict[str, hl7.Segment]:
    """OBX by OBX-3.1, sub-ID appended where there is one (8601-7/2 ...)."""
    rows = {}
    for obx in message.segments("OBX"):
        key = str(obx[3][0][0]) + (f"/{obx[4]}" if str(obx[4]) else "")
        rows.setdefault(key, obx)
    return rows


@pytest.mark.parametrize(
    ("status", "is_correction", "letter"),
    [
        ("preliminary", False, "P"),
        ("preliminary", True, "C"),  # a re-sent object with new content (issue 26 item 4)
        ("final", False, "F"),
        ("final", True, "C"),
        ("corrected", False, "C"),
        ("amended", False, "C"),
    ],
)
def test_result_status_in_obr25_and_every_obx11(
    shared_data: Path, status: str, is_correction: bool, letter: str
) -> None:
    report = afib_report().model_copy(update={"is_correction": is_correction})
    if status != "preliminary":
        report = confirmed(report, status)
    message = _parsed(package(shared_data, report=report))
    assert str(message.segment("OBR")[25]) == letter
    assert {str(s[11]) for s in _results(message)} == {letter}
    not_made = [s for s in message.segments("OBX") if str(s[11]) == "X"]
    assert len(not_made) == 2  # PR and P axis stay "cannot be obtained" in every state


def test_a_confirmed_report_names_its_interpreter_and_the_confirmation_time(
    shared_data: Path,
) -> None:
    pkg = package(shared_data, report=confirmed(afib_report()))
    obr = _parsed(pkg).segment("OBR")
    interpreter = obr[32][0][0]  # NDL.1, a CNN of subcomponents
    assert [str(interpreter[i]) for i in range(6)] == ["dr.jones", "Jones", "Alice", "M", "", "Dr"]
    assert str(obr[22]) == "20261206213005+0000"  # OBR-22: when the status changed
    assert str(obr[7]) == "20240101000000"  # OBR-7 stays the acquisition


def test_a_preliminary_report_has_no_interpreter_and_its_own_report_time(
    shared_data: Path,
) -> None:
    report = afib_report()
    obr = _parsed(package(shared_data, report=report)).segment("OBR")
    assert len(obr) == 26  # OBR-25 is the last field: no OBR-32
    assert str(obr[22]) == report.created_at.strftime("%Y%m%d%H%M%S%z")


def test_an_ordered_ecg_carries_the_order_numbers_procedure_and_priority(
    shared_data: Path,
) -> None:
    message = _parsed(package(shared_data, order=ORDER, accession_number="ACC-FROM-CART"))
    orc, obr = message.segment("ORC"), message.segment("OBR")
    assert str(orc[1]) == "RE"
    assert str(orc[2]) == str(obr[2]) == "PO-1001^EPIC"
    assert str(orc[3]) == str(obr[3]) == "FO-77^ECGGW"
    assert str(obr[4]) == "93000^Electrocardiogram, 12 lead^C4"
    assert str(obr[18]) == "ACC-77"  # the order's accession number
    assert str(message.segment("TQ1")[9]) == "R^Routine^HL70485"


def test_an_unordered_ecg_keeps_accession_uid_and_the_ekg_study(shared_data: Path) -> None:
    pkg = package(shared_data, accession_number="ACC-9")
    message = _parsed(pkg)
    assert str(message.segment("ORC")[2]) == "ACC-9"
    assert str(message.segment("OBR")[3]) == pkg.metadata.sop_instance_uid
    assert str(message.segment("OBR")[4]) == "11524-6^EKG study^LN"
    assert str(message.segment("OBR")[18]) == ""
    assert "TQ1" not in [str(s[0]) for s in message]


def test_an_order_without_filler_number_or_procedure_falls_back(shared_data: Path) -> None:
    order = replace(
        ORDER, filler_order_number="", filler_authority="ECGGW", procedure_code="", priority="stat"
    )
    pkg = package(shared_data, order=order)
    message = _parsed(pkg)
    assert str(message.segment("OBR")[3]) == pkg.metadata.sop_instance_uid
    assert str(message.segment("OBR")[4]) == "^Electrocardiogram, 12 lead^C4"
    assert str(message.segment("TQ1")[9]) == "S^Stat^HL70485"


def test_critical_findings_flag_their_rows_and_make_the_result_stat(shared_data: Path) -> None:
    pkg = package(shared_data, report=critical_afib_report(), order=ORDER)  # a routine order
    message = _parsed(pkg)
    flagged = {key for key, obx in _by_code(message).items() if str(obx[8]) == "AA"}
    # heart rate and QTc (measurement keys), the AFIB statement (8601-7/2), both findings
    assert flagged == {"8867-4", "8636-3", "8601-7/2", "8601-7/5", "8601-7/6"}
    rows = _by_code(message)
    assert message.unescape(str(rows["8601-7/5"][5])) == (
        "CRITICAL: Atrial fibrillation with ventricular rate over 110/min"
    )
    assert str(rows["8601-7/6"][5]) == "CRITICAL: QTc 550 ms (500 ms or more)"
    assert str(message.segment("TQ1")[9]) == "S^Stat^HL70485"


def test_a_report_without_critical_findings_flags_nothing(shared_data: Path) -> None:
    message = _parsed(package(shared_data, report=afib_report()))
    assert {str(obx[8]) for obx in message.segments("OBX")} == {""}


def test_comparison_statements_are_coded_rows_with_both_values(shared_data: Path) -> None:
    message = _parsed(package(shared_data, report=critical_afib_report()))
    rows = [obx for obx in message.segments("OBX") if str(obx[2]) == "CWE"]
    assert [str(obx[3][0][0]) for obx in rows] == ["8601-7", "8601-7"]
    assert [str(obx[4]) for obx in rows] == ["7", "8"]  # after statements and findings
    values = [[str(obx[5][0][i]) for i in range(3)] for obx in rows]
    assert values == [
        ["NEW_RHYTHM", "Atrial fibrillation is new (now AFIB, prior SR)", "99ECGCMP"],
        ["QTC_CHANGE", "QTc longer by 119 ms (now 550.2, prior 431)", "99ECGCMP"],
    ]


def test_msh10_is_new_per_version_and_status_and_stable_per_message(shared_data: Path) -> None:
    """A receiver that drops a repeated MSH-10 must get the final and each correction; a
    resend of one message keeps its MSH-10 (issue 26 item 4)."""
    preliminary = package(shared_data, report=afib_report())
    final = package(shared_data, report=confirmed(afib_report()))
    corrected = package(shared_data, report=confirmed(afib_report(), "corrected", 3))
    corrected_again = package(shared_data, report=confirmed(afib_report(), "corrected", 4))
    reconciled = package(shared_data, report=afib_report(), order=ORDER)
    ids = [control_id(p, "ris") for p in (preliminary, final, corrected, corrected_again)]
    ids.append(control_id(reconciled, "ris"))
    assert len(set(ids)) == 5
    resent = package(shared_data, report=confirmed(afib_report(), "corrected", 3))
    assert control_id(resent, "ris") == ids[2]
    assert control_id(package(shared_data, report=afib_report(), order=ORDER), "ris") == ids[4]


HOSTILE = "X|Y^Z~W\\V&U\rMSH|"


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("status", ["preliminary", "final", "corrected"])
@pytest.mark.parametrize("critical", [False, True])
def test_every_variant_passes_strict_2_5_1_validation(
    shared_data: Path, ordered: bool, status: str, critical: bool
) -> None:
    report = critical_afib_report() if critical else afib_report()
    if status != "preliminary":
        report = confirmed(report, status)
    pkg = package(shared_data, report=report, order=ORDER if ordered else None)
    message = validated_strictly(_er7(pkg))
    order = message.oru_r01_patient_result.oru_r01_order_observation
    assert order.obr.obr_25.value == {"preliminary": "P", "final": "F", "corrected": "C"}[status]
    assert len(order.oru_r01_observation) == len(list(hl7.parse(_er7(pkg)).segments("OBX")))
    if ordered or critical:
        assert order.oru_r01_timing_qty.tq1.tq1_9.tq1_9_1.value in ("R", "S")


def test_hostile_order_numbers_and_names_stay_in_their_fields(shared_data: Path) -> None:
    order = replace(ORDER, placer_order_number=HOSTILE, procedure_text=HOSTILE)
    confirmation = CONFIRMATION.model_copy(
        update={"physician_id": HOSTILE, "physician_name": "Jo&nes^Al|ice"}
    )
    report = confirmed(critical_afib_report()).model_copy(update={"confirmation": confirmation})
    er7_text = _er7(package(shared_data, report=report, order=order))
    validated_strictly(er7_text)
    message = hl7.parse(er7_text)
    assert [str(s[0]) for s in message].count("MSH") == 1
    assert message.unescape(str(message.segment("ORC")[2][0][0])) == HOSTILE
    assert str(message.segment("ORC")[2][0][1]) == "EPIC"
    interpreter = message.segment("OBR")[32][0][0]
    assert [message.unescape(str(interpreter[i])) for i in range(3)] == [
        HOSTILE,
        "Jo&nes",
        "Al|ice",
    ]


def test_a_final_critical_ordered_report_reaches_an_mllp_peer(shared_data: Path) -> None:
    """End to end: the other implementation's MLLP server receives and acknowledges it, and
    reads the order, status, interpreter, flags and comparison from what arrived."""
    peer = Hl7TestPeer().start()
    pkg = package(shared_data, report=confirmed(critical_afib_report()), order=ORDER)
    destination = Hl7Destination.model_validate(
        {
            "type": "hl7",
            "endpoint": f"mllp://127.0.0.1:{peer.port}",
            "timeout_s": 5,
            "hl7": OPTIONS.model_dump(),
        }
    )
    sender = Hl7Sender(destination, "ris")
    try:
        assert send_now(sender, pkg).startswith("AA from 127.0.0.1")
    finally:
        sender.close()
        peer.stop()
    [received] = peer.received
    assert str(received.segment("MSH")[10]) == control_id(pkg, "ris")
    obr = received.segment("OBR")
    assert (str(obr[2]), str(obr[3]), str(obr[25])) == ("PO-1001^EPIC", "FO-77^ECGGW", "F")
    assert str(obr[32][0][0][0]) == "dr.jones"
    assert "AA" in {str(obx[8]) for obx in received.segments("OBX")}
    assert "CWE" in {str(obx[2]) for obx in received.segments("OBX")}
    assert str(received.segment("TQ1")[9][0][0]) == "S"
