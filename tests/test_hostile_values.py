"""Hostile patient and order values (delimiters, segment injection, control characters,
unicode, very long, empty components, multi-valued), and the same in an order, the
confirming physician and a report's findings, reach HL7 escaped and FHIR verbatim:
the ORU read back by hl7apy and python-hl7 has exactly the intended segments and values."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import hl7
import pydicom
import pytest
from delivery_support import DICOM_ECG, ORDER, package
from example_reports import CONFIRMATION, confirmed, critical_afib_report
from fhir.resources.R4B.bundle import Bundle
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

import model
from gateway.delivery.fhir import build_bundle, bundle_json
from gateway.delivery.hl7 import build_oru
from gateway.routing import FhirOptions, Hl7Options
from model.report import ComparisonStatement

HOSTILE = [
    "MRN|X",
    "A^B",
    "A~B",
    "A&B",
    "A\\B",
    "|^~\\&",
    "\\E\\",
    "\\F\\S\\T\\R\\",
    "\\X0D\\",
    "\\.br\\",
    "\\H\\bold\\N\\",
    "ID|X\rMSH|^~\\&|FAKE",
    "X\nMSH|^~\\&|FAKE|||||ORU^R01|1|P|2.5.1",
    "X\r\nPID|1||EVIL^^^^MR",
    "X\rOBX|1|TX|11524-6^EKG study^LN||injected",
    "\rMSH|^~\\&|",
    "MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5.1",
    "\x0bMLLP\x1c\r",
    "nul\x00byte",
    "tab\there",
    "NEL\x85line",
    "line\u2028separator",
    "DEL\x7fchar",
    "Ünïcødé 患者 😀",
    "عربي עברית",
    "x" * 300,
    "y|" * 2500,
    "^^^^",
    "~~~",
    "&&&",
    "||||",
    "\\\\\\",
    "A^^^^^^B",
    "['MRN1', 'MRN2']",
    '{"json": [1, 2]}',
    "urn:x\rMSH|",
    "' OR 1=1 --",
]
OPTIONS = Hl7Options(sending_application="ECGGW", receiving_application="RIS")


def _hostile_package(shared_data: Path, value: str):
    family = value.replace("^", " ").replace("=", " ")  # ^ and = are PN's own delimiters
    return package(
        shared_data,
        patient_id=value,
        patient_id_issuer=value,
        patient_name=f"{family}^Given",
        accession_number=value,
        institution_name=value,
        device_manufacturer=value,
    )


def _segment_names(er7: str) -> list[str]:
    return [str(segment[0]) for segment in hl7.parse(er7)]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_are_escaped_in_hl7_and_cannot_add_segments(
    shared_data: Path, value: str
) -> None:
    benign = build_oru(package(shared_data, accession_number="ACC1"), OPTIONS, "1")
    er7 = build_oru(_hostile_package(shared_data, value), OPTIONS, "1")
    assert _segment_names(er7) == _segment_names(benign)
    validated = parse_message(er7, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True)
    validated.validate()
    message = hl7.parse(er7)
    pid = message.segment("PID")
    assert len(pid) == 9 and len(pid[3]) == 1  # PID-8 last; one identifier, no repetition
    assert [message.unescape(str(part)) for part in pid[3][0]] == [value, "", "", value, "MR"]
    family = value.replace("^", " ").replace("=", " ")
    assert [message.unescape(str(part)) for part in pid[5][0]] == [family, "Given"]
    for name, field in (("ORC", 2), ("OBR", 2)):
        assert message.unescape(str(message.segment(name)[field])) == value


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_reach_fhir_verbatim_in_a_valid_bundle(
    shared_data: Path, value: str
) -> None:
    data = json.loads(
        bundle_json(build_bundle(_hostile_package(shared_data, value), FhirOptions()))
    )
    Bundle.model_validate(data)
    resources = {entry["resource"]["resourceType"]: entry["resource"] for entry in data["entry"]}
    patient = resources["Patient"]
    [identifier] = patient["identifier"]
    assert identifier["value"] == value
    assert all(char.isprintable() and not char.isspace() for char in identifier["system"])
    family = value.replace("^", " ").replace("=", " ").strip()
    assert patient["name"][0].get("family", "") == family
    assert patient["name"][0]["given"] == ["Given"]
    assert resources["DiagnosticReport"]["performer"][0]["display"] == value
    assert resources["Device"]["manufacturer"] == value


# keyword: (the value as written, with `\\` between values; the first value; how many)
MULTI_VALUED = {
    "PatientID": ("ID|X\rMSH|^~\\&\\&|FAKE", "ID|X\rMSH|^~", 3),
    "IssuerOfPatientID": ("HOSP\\OTHER", "HOSP", 2),
    "PatientName": ("EVIL|NAME\\Second^Person", "EVIL|NAME", 2),
    "AccessionNumber": ("\\ACC2\\ACC3", "ACC2", 2),
    "InstitutionName": ("Heart Center\\Annex", "Heart Center", 2),
}


def test_multi_valued_dicom_values_map_to_their_first_value_never_a_python_repr(
    shared_data: Path, tmp_path: Path
) -> None:
    """Each attribute here has VM 1: the first (non-empty) value is used, the report says
    how many there were, and nothing downstream ever sees a list."""
    ds = pydicom.dcmread(shared_data / DICOM_ECG)
    for keyword, (raw, _, _) in MULTI_VALUED.items():
        setattr(ds, keyword, raw)
    ds.save_as(tmp_path / "multi.dcm")
    meta = model.load(tmp_path / "multi.dcm").metadata
    fields = ("patient_id", "patient_id_issuer", "patient_name", "accession_number")
    got = [getattr(meta, name) for name in (*fields, "institution_name")]
    assert got == [first for _, first, _ in MULTI_VALUED.values()]
    assert meta.warnings == tuple(
        f"the DICOM {keyword} holds {count} values; the first was used"
        for keyword, (_, _, count) in MULTI_VALUED.items()
    )
    pkg = package(shared_data, **{name: getattr(meta, name) for name in fields})
    er7 = build_oru(pkg, OPTIONS, "1")
    bundle = bundle_json(build_bundle(pkg, FhirOptions())).decode()
    for text in (er7, bundle):
        assert "['" not in text and "Second" not in text and "ACC3" not in text
    message = hl7.parse(er7)  # extract_field unescapes
    assert message.extract_field("PID", 1, 3, 1, 1, 1) == "ID|X\rMSH|^~"
    assert message.extract_field("PID", 1, 5, 1, 1, 1) == "EVIL|NAME"
    assert _segment_names(er7)[:4] == ["MSH", "PID", "ORC", "OBR"]


def _hostile_result(shared_data: Path, value: str):
    """An ordered, confirmed, critical, compared report with `value` in every new field."""
    order = replace(
        ORDER,
        placer_order_number=value,
        placer_authority=value,
        filler_order_number=value,
        procedure_text=value,
    )
    confirmation = CONFIRMATION.model_copy(
        update={"physician_id": value, "physician_name": f"{_pn(value)}^Given"}
    )
    report = confirmed(critical_afib_report()).model_copy(update={"confirmation": confirmation})
    report.critical[0].text = value
    report.comparison.statements[0] = ComparisonStatement(
        code=value, text=value, current=value, prior=None
    )
    return package(shared_data, report=report, order=order)


def _pn(value: str) -> str:
    return value.replace("^", " ").replace("=", " ")  # ^ and = are PN's own delimiters


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_order_physician_and_finding_values_stay_in_their_fields(
    shared_data: Path, value: str
) -> None:
    benign = build_oru(_hostile_result(shared_data, "benign"), OPTIONS, "1")
    er7 = build_oru(_hostile_result(shared_data, value), OPTIONS, "1")
    names = _segment_names(er7)
    assert [n for n in names if n != "NTE"] == [n for n in _segment_names(benign) if n != "NTE"]
    parse_message(er7, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True).validate()
    message = hl7.parse(er7)
    for name in ("ORC", "OBR"):
        placer = message.segment(name)[2][0]
        assert [message.unescape(str(part)) for part in placer] == [value, value]
    interpreter = message.segment("OBR")[32][0][0]
    assert message.unescape(str(interpreter[0])) == value
    assert message.unescape(str(interpreter[1])) == _pn(value)
    texts = [
        message.unescape(str(obx[5])) for obx in message.segments("OBX") if str(obx[2]) == "TX"
    ]
    assert f"CRITICAL: {value}" in texts
    data = json.loads(bundle_json(build_bundle(_hostile_result(shared_data, value), FhirOptions())))
    Bundle.model_validate(data)
    resources = {entry["resource"]["resourceType"]: entry["resource"] for entry in data["entry"]}
    placer = resources["ServiceRequest"]["identifier"][0]
    assert placer["value"] == value
    assert all(char.isprintable() and not char.isspace() for char in placer["system"])
    assert resources["Practitioner"]["identifier"][0]["value"] == value
