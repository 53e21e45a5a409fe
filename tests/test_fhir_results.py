"""FHIR R4 for ordered, confirmed, corrected, critical and compared reports: basedOn the
order's ServiceRequest (PLAC/FILL identifiers), the report's status on the report and its
Observations, the confirmed version as an update of the same resources, the interpreter,
the critical interpretation and the comparison; validated with fhir.resources and taken
by the FHIR test server (tests/peers.py), which judges transactions as a server does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from delivery_support import ORDER, package
from example_reports import afib_report, confirmed, critical_afib_report
from peers import FhirTestServer

import model
from gateway.delivery import deliver_once
from gateway.delivery.fhir import build_bundle, bundle_json
from gateway.routing import FhirDestination, FhirOptions

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
WAVEFORM_CODE = "131328"  # MDC_ECG_ELEC_POTL: the recorded signal, always final


def _bundle(pkg, options: FhirOptions | None = None) -> dict:
    return json.loads(bundle_json(build_bundle(pkg, options or FhirOptions())))


def _entries(bundle: dict, kind: str) -> list[dict]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _one(bundle: dict, kind: str) -> dict:
    [entry] = _entries(bundle, kind)
    return entry


def _code(resource: dict) -> str:
    return resource["code"]["coding"][0]["code"]


def _flagged(observation: dict) -> bool:
    codes = {
        (c["system"], c["code"]) for i in observation.get("interpretation", []) for c in i["coding"]
    }
    return codes == {(INTERPRETATION, "AA")}


def test_an_ordered_report_is_based_on_the_orders_service_request(shared_data: Path) -> None:
    options = FhirOptions(issuer_systems={"EPIC": "https://epic.example/orders"})
    bundle = _bundle(package(shared_data, order=ORDER), options)
    order = _one(bundle, "ServiceRequest")
    identifiers = {i["type"]["coding"][0]["code"]: i for i in order["resource"]["identifier"]}
    assert {i["type"]["coding"][0]["system"] for i in identifiers.values()} == {V2_0203}
    assert (identifiers["PLAC"]["system"], identifiers["PLAC"]["value"]) == (
        "https://epic.example/orders",
        "PO-1001",
    )
    assert identifiers["FILL"]["value"] == "FO-77" and identifiers["ACSN"]["value"] == "ACC-77"
    assert identifiers["FILL"]["system"] == "urn:ecg-gateway:issuer:ECGGW"
    assert order["request"] == {
        "method": "POST",
        "url": "ServiceRequest",
        "ifNoneExist": "identifier=https://epic.example/orders|PO-1001",
    }
    resource = order["resource"]
    assert (resource["status"], resource["intent"], resource["priority"]) == (
        "unknown",
        "order",
        "routine",
    )
    assert resource["code"]["coding"] == [
        {
            "system": "http://www.ama-assn.org/go/cpt",
            "code": "93000",
            "display": "Electrocardiogram, 12 lead",
        }
    ]
    assert resource["subject"]["reference"] == _one(bundle, "Patient")["fullUrl"]
    [based_on] = _one(bundle, "DiagnosticReport")["resource"]["basedOn"]
    assert based_on["reference"] == order["fullUrl"]
    assert based_on["type"] == "ServiceRequest"
    assert based_on["identifier"] == identifiers["PLAC"]


def test_without_a_patient_the_order_is_a_logical_reference(shared_data: Path) -> None:
    bundle = _bundle(package(shared_data, order=ORDER, patient_id=None))
    assert _entries(bundle, "ServiceRequest") == []
    [based_on] = _one(bundle, "DiagnosticReport")["resource"]["basedOn"]
    assert "reference" not in based_on
    assert based_on["identifier"]["type"]["coding"][0]["code"] == "PLAC"
    assert based_on["identifier"]["system"] == "urn:ecg-gateway:issuer:EPIC"


def test_an_unordered_report_has_no_based_on(shared_data: Path) -> None:
    bundle = _bundle(package(shared_data))
    assert _entries(bundle, "ServiceRequest") == []
    assert "basedOn" not in _one(bundle, "DiagnosticReport")["resource"]


def test_an_order_naming_no_procedure_asks_for_the_ekg_study(shared_data: Path) -> None:
    order = replace(ORDER, procedure_code="", procedure_text="", priority="stat")
    resource = _one(_bundle(package(shared_data, order=order)), "ServiceRequest")["resource"]
    assert resource["code"]["coding"][0]["code"] == "11524-6"
    assert resource["priority"] == "stat"


def test_a_preliminary_report_is_created_once_and_names_no_interpreter(shared_data: Path) -> None:
    bundle = _bundle(package(shared_data, report=afib_report()))
    report = _one(bundle, "DiagnosticReport")
    assert report["resource"]["status"] == "preliminary"
    assert "resultsInterpreter" not in report["resource"] and not _entries(bundle, "Practitioner")
    assert {e["request"]["method"] for e in bundle["entry"]} == {"POST"}


@pytest.mark.parametrize("status", ["final", "corrected", "amended"])
def test_a_confirmed_report_updates_the_same_resources_with_its_status(
    shared_data: Path, status: str
) -> None:
    preliminary = _bundle(package(shared_data, report=afib_report(), order=ORDER))
    later = _bundle(package(shared_data, report=confirmed(afib_report(), status), order=ORDER))
    for kind in ("DiagnosticReport", "Observation", "Media"):
        created = sorted(e["request"]["ifNoneExist"] for e in _entries(preliminary, kind))
        updated = sorted(e["request"]["url"].partition("?")[2] for e in _entries(later, kind))
        assert {e["request"]["method"] for e in _entries(later, kind)} == {"PUT"}
        assert updated == created  # the same identifiers: the EHR replaces, never duplicates
    report = _one(later, "DiagnosticReport")["resource"]
    assert report["status"] == status
    assert report["issued"] == "2026-12-06T21:30:05Z"  # the confirmation
    assert report["presentedForm"][0]["title"] == f"ECG report ({status})"
    statuses = {o["resource"]["status"] for o in _entries(later, "Observation")}
    assert statuses == {status}
    assert {o["resource"]["issued"] for o in _entries(later, "Observation")} == {report["issued"]}
    # the order and the patient are still created only if absent
    assert _one(later, "ServiceRequest")["request"]["method"] == "POST"


def test_the_confirming_physician_is_the_results_interpreter(shared_data: Path) -> None:
    bundle = _bundle(package(shared_data, report=confirmed(afib_report())))
    practitioner = _one(bundle, "Practitioner")
    assert practitioner["resource"]["identifier"] == [
        {"system": "urn:ecg-gateway:user", "value": "dr.jones"}
    ]
    assert practitioner["resource"]["name"] == [
        {"text": "Dr Alice M Jones", "family": "Jones", "given": ["Alice", "M"], "prefix": ["Dr"]}
    ]
    assert practitioner["request"]["ifNoneExist"] == "identifier=urn:ecg-gateway:user|dr.jones"
    report = _one(bundle, "DiagnosticReport")["resource"]
    assert report["resultsInterpreter"] == [{"reference": practitioner["fullUrl"]}]


def test_critical_findings_are_interpreted_aa_on_what_they_are_about(shared_data: Path) -> None:
    bundle = _bundle(package(shared_data, report=critical_afib_report()))
    observations = [e["resource"] for e in _entries(bundle, "Observation")]
    flagged = [o for o in observations if _flagged(o)]
    by_code = sorted(_code(o) for o in flagged)
    # heart rate, QTc, the impression (it sums up AFIB) and one row per finding
    assert by_code == ["8601-7", "8601-7", "8601-7", "8636-3", "8867-4"]
    texts = sorted(o["valueString"] for o in flagged if "valueString" in o)
    assert texts[:2] == [
        "Atrial fibrillation with rapid ventricular response. Long QT.",
        "CRITICAL: Atrial fibrillation with ventricular rate over 110/min",
    ]
    conclusion = _one(bundle, "DiagnosticReport")["resource"]["conclusion"]
    assert conclusion.startswith("CRITICAL: Atrial fibrillation with ventricular rate over")
    unflagged = _bundle(package(shared_data, report=afib_report()))
    assert not any("interpretation" in e["resource"] for e in _entries(unflagged, "Observation"))


def test_comparison_statements_are_coded_observations_and_in_the_conclusion(
    shared_data: Path,
) -> None:
    bundle = _bundle(package(shared_data, report=critical_afib_report()))
    report = _one(bundle, "DiagnosticReport")["resource"]
    comparisons = [
        e
        for e in _entries(bundle, "Observation")
        if e["resource"]["code"]["coding"][0]["system"] == "urn:ecg-gateway:comparison"
    ]
    assert [(_code(e["resource"]), e["resource"]["valueString"]) for e in comparisons] == [
        ("NEW_RHYTHM", "Atrial fibrillation is new (now AFIB, prior SR)"),
        ("QTC_CHANGE", "QTc longer by 119 ms (now 550.2, prior 431)"),
    ]
    assert comparisons[0]["resource"]["note"] == [
        {"text": "Prior ECG acquired 2025-03-01T09:00:00+00:00"}
    ]
    results = {r["reference"] for r in report["result"]}
    assert {e["fullUrl"] for e in comparisons} <= results
    assert (
        "Compared with the prior ECG: Atrial fibrillation is new (now AFIB, prior SR); "
        in (report["conclusion"])
    )


@pytest.fixture
def ehr() -> Iterator[FhirTestServer]:
    """The FHIR test server, standing for the EHR."""
    server = FhirTestServer().start()
    try:
        yield server
    finally:
        server.stop()


def _destination(url: str) -> FhirDestination:
    return FhirDestination.model_validate(
        {"type": "fhir", "endpoint": url, "timeout_s": 5, "fhir": {"waveform": "observation"}}
    )


def test_preliminary_then_final_then_corrected_at_a_ehr(
    shared_data: Path, ehr: FhirTestServer
) -> None:
    """End to end: the EHR holds one report, one order, one interpreter and one set of
    Observations, all corrected at the end; a resend of the final changes nothing."""
    destination = _destination(ehr.base_url)
    report = critical_afib_report()
    pkg = package(shared_data, report=report, order=ORDER)
    pkg.waveform = model.load(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")
    deliver_once(pkg, "ehr", destination)
    counts = {kind: len(ehr.resources(kind)) for kind in ehr.created}
    for version in (confirmed(report), confirmed(report, "corrected", 3)):
        later = replace(pkg, report=version)
        deliver_once(later, "ehr", destination)
        deliver_once(later, "ehr", destination)  # a resend after a timeout
    assert ehr.rejections == []
    after = {kind: len(ehr.resources(kind)) for kind in ehr.created}
    assert after == {**counts, "Practitioner": 1}
    assert counts["DiagnosticReport"] == counts["ServiceRequest"] == 1
    [stored] = ehr.resources("DiagnosticReport")
    assert stored["status"] == "corrected"
    assert stored["basedOn"][0]["reference"].startswith("ServiceRequest/")
    assert stored["resultsInterpreter"][0]["reference"].startswith("Practitioner/")
    statuses = {o["status"] for o in ehr.resources("Observation") if _code(o) != WAVEFORM_CODE}
    assert statuses == {"corrected"}


def test_an_order_the_ehr_already_holds_is_referenced_not_created_again(
    shared_data: Path, ehr: FhirTestServer
) -> None:
    ehr.created["ServiceRequest"] = {
        "order-1": {
            "resourceType": "ServiceRequest",
            "identifier": [{"system": "urn:ecg-gateway:issuer:EPIC", "value": "PO-1001"}],
        }
    }
    deliver_once(package(shared_data, order=ORDER), "ehr", _destination(ehr.base_url))
    assert ehr.rejections == []
    assert list(ehr.created["ServiceRequest"]) == ["order-1"]
    [stored] = ehr.resources("DiagnosticReport")
    assert stored["basedOn"][0]["reference"] == "ServiceRequest/order-1"
