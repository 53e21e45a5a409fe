"""FHIR R4 delivery: the transaction Bundle's content, and sending it to a real HTTP(S)
endpoint that judges it like a FHIR server (tests/peers.py)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from delivery_support import package, send_now
from example_reports import afib_report
from fhir.resources.R4B.bundle import Bundle
from peers import FhirTestServer, make_pki

from gateway.delivery import DeliveryError, deliver_once
from gateway.delivery.fhir import build_bundle, bundle_json
from gateway.delivery.fhir_client import FhirSender, check_response, retry_after_s
from gateway.routing import FhirDestination, FhirOptions

LOINC = "http://loinc.org"


def _bundle(pkg, options: FhirOptions | None = None) -> dict:
    return json.loads(bundle_json(build_bundle(pkg, options or FhirOptions())))


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _destination(url: str, **extra) -> FhirDestination:
    return FhirDestination.model_validate(
        {"type": "fhir", "endpoint": url, "timeout_s": 2, **extra}
    )


@pytest.fixture
def fhir_server():
    server = FhirTestServer().start()
    yield server
    server.stop()


def test_bundle_is_a_valid_r4_transaction_with_the_required_report(shared_data: Path) -> None:
    pkg = package(shared_data, report=afib_report())
    bundle = _bundle(pkg)
    Bundle.model_validate(bundle)  # the serialized form re-validates, not only the objects
    assert bundle["type"] == "transaction"
    [report] = _resources(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary"
    categories = {(c["coding"][0]["system"], c["coding"][0]["code"]) for c in report["category"]}
    assert categories == {
        (LOINC, "LP29708-2"),
        ("http://terminology.hl7.org/CodeSystem/v2-0074", "EC"),
    }
    assert report["code"]["coding"][0] == {
        "system": LOINC,
        "code": "11524-6",
        "display": "EKG study",
    }
    assert report["identifier"] == [
        {"system": "urn:dicom:uid", "value": f"urn:oid:{pkg.metadata.sop_instance_uid}"}
    ]
    assert report["effectiveDateTime"].startswith("2024-01-01T00:00:00")
    assert report["conclusion"] == pkg.report.impression
    snomed = [c["coding"][0]["code"] for c in report["conclusionCode"] if "coding" in c]
    assert snomed == ["164889003", "111975006"]
    assert report["conclusionCode"][2] == {"text": "Non-specific ischemic changes"}
    assert base64.b64decode(report["presentedForm"][0]["data"]) == pkg.pdf
    assert report["presentedForm"][0]["contentType"] == "application/pdf"
    [media] = _resources(bundle, "Media")
    assert base64.b64decode(media["content"]["data"]) == pkg.png
    assert report["media"][0]["link"]["reference"] == _full_url(bundle, "Media")


def _full_url(bundle: dict, kind: str) -> str:
    return next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def test_observations_are_loinc_coded_with_ucum_units_and_no_zero_for_missing(
    shared_data: Path,
) -> None:
    bundle = _bundle(package(shared_data, report=afib_report()))
    observations = {o["code"]["coding"][0]["code"]: o for o in _resources(bundle, "Observation")}
    quantities = {
        code: (o["valueQuantity"]["value"], o["valueQuantity"]["code"])
        for code, o in observations.items()
        if "valueQuantity" in o
    }
    assert quantities == {
        "8867-4": (112.4, "/min"),
        "8633-0": (96, "ms"),
        "8634-8": (402, "ms"),
        "8636-3": (550.2, "ms"),
        "8632-2": (-12, "deg"),
        "8638-9": (48, "deg"),
    }
    assert all(
        o["valueQuantity"]["system"] == "http://unitsofmeasure.org"
        for o in observations.values()
        if "valueQuantity" in o
    )
    # PR and P axis could not be measured: said so, never a zero value
    for code in ("8625-6", "8626-4"):
        assert "valueQuantity" not in observations[code]
        assert observations[code]["dataAbsentReason"]["text"].startswith("no consistent P waves")
    assert observations["8601-7"]["valueString"] == afib_report().impression
    # US Core: the report's results are the 12-lead panel, which holds the intervals as
    # members, and the impression
    [report] = _resources(bundle, "DiagnosticReport")
    urls = {
        e["resource"]["code"]["coding"][0]["code"]: e["fullUrl"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
    }
    assert [r["reference"] for r in report["result"]] == [urls["34534-8"], urls["8601-7"]]
    members = [m["reference"] for m in observations["34534-8"]["hasMember"]]
    assert sorted(members) == sorted(
        url for code, url in urls.items() if code not in ("34534-8", "8601-7")
    )
    assert observations["34534-8"]["code"]["coding"][0]["display"] == "12 lead EKG panel"
    for observation in observations.values():
        [category] = observation["category"]
        assert category["coding"][0]["code"] == "procedure"


def test_every_entry_is_a_conditional_create_on_a_stable_identifier(shared_data: Path) -> None:
    pkg = package(shared_data, patient_id_issuer="1.2.840.99.1")
    first, again = _bundle(pkg), _bundle(pkg)
    assert [e["request"] for e in first["entry"]] == [e["request"] for e in again["entry"]]
    for entry in first["entry"]:
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["ifNoneExist"].startswith("identifier=")
    [patient] = _resources(first, "Patient")
    assert patient["identifier"] == [{"system": "urn:oid:1.2.840.99.1", "value": "000001"}]
    requests = {e["resource"]["resourceType"]: e["request"] for e in first["entry"]}
    uid = pkg.metadata.sop_instance_uid
    assert requests["DiagnosticReport"]["ifNoneExist"] == f"identifier=urn:dicom:uid|urn:oid:{uid}"
    assert requests["Patient"]["ifNoneExist"] == "identifier=urn:oid:1.2.840.99.1|000001"


def test_issuer_mapping_and_correction_by_conditional_update(shared_data: Path) -> None:
    options = FhirOptions(issuer_systems={"HOSP": "https://hospital.example/mrn"})
    corrected = package(shared_data, patient_id_issuer="HOSP")
    corrected.report = corrected.report.model_copy(update={"is_correction": True})
    bundle = _bundle(corrected, options)
    [patient] = _resources(bundle, "Patient")
    assert patient["identifier"][0]["system"] == "https://hospital.example/mrn"
    request = next(
        e["request"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    assert request["method"] == "PUT"
    assert request["url"].startswith("DiagnosticReport?identifier=urn:dicom:uid|urn:oid:")


def test_device_is_referenced_where_r4_allows_it(shared_data: Path) -> None:
    bundle = _bundle(package(shared_data))
    [device] = _resources(bundle, "Device")
    assert device["manufacturer"] == "GE Healthcare"
    assert device["deviceName"][0] == {"name": "MAC P", "type": "model-name"}
    device_url = _full_url(bundle, "Device")
    for observation in _resources(bundle, "Observation"):
        assert observation["device"]["reference"] == device_url
    [report] = _resources(bundle, "DiagnosticReport")
    assert report["performer"] == [{"type": "Organization", "display": "Anonymized"}]


def test_server_accepts_the_transaction_and_a_resend_creates_nothing_new(
    shared_data: Path, fhir_server: FhirTestServer
) -> None:
    pkg = package(shared_data, report=afib_report())
    destination = _destination(fhir_server.base_url)
    receipt = deliver_once(pkg, "ehr", destination)
    assert "HTTP 200" in receipt and "DiagnosticReport/" in receipt
    assert fhir_server.rejections == []
    counts = {kind: len(fhir_server.resources(kind)) for kind in fhir_server.created}
    deliver_once(pkg, "ehr", destination)
    assert {kind: len(fhir_server.resources(kind)) for kind in fhir_server.created} == counts
    assert counts["DiagnosticReport"] == 1 and counts["Patient"] == 1
    assert fhir_server.report_arrivals == [f"urn:oid:{pkg.metadata.sop_instance_uid}"]
    stored = fhir_server.resources("DiagnosticReport")[0]
    assert stored["subject"]["reference"].startswith("Patient/")


def test_server_errors_are_transient_and_content_errors_permanent(
    shared_data: Path, fhir_server: FhirTestServer
) -> None:
    pkg = package(shared_data)
    fhir_server.fail_status = 503
    with pytest.raises(DeliveryError) as unavailable:
        deliver_once(pkg, "ehr", _destination(fhir_server.base_url))
    assert not unavailable.value.permanent and "HTTP 503" in str(unavailable.value)
    fhir_server.fail_status = 422
    with pytest.raises(DeliveryError) as invalid:
        deliver_once(pkg, "ehr", _destination(fhir_server.base_url))
    assert invalid.value.permanent


def test_a_server_that_does_not_answer_in_time_is_a_transient_failure(
    shared_data: Path, fhir_server: FhirTestServer
) -> None:
    fhir_server.delay_s = 2.5
    destination = _destination(fhir_server.base_url, timeout_s=1)
    with pytest.raises(DeliveryError) as timeout:
        deliver_once(package(shared_data), "ehr", destination)
    assert "no complete answer within 1 s (timeout_s)" in str(timeout.value)
    assert not timeout.value.permanent


def test_bearer_token_from_environment_and_basic_auth_from_file(
    shared_data: Path, fhir_server: FhirTestServer, tmp_path: Path, monkeypatch
) -> None:
    pkg = package(shared_data)
    monkeypatch.setenv("TEST_FHIR_TOKEN", "s3cret-token")
    fhir_server.required_authorization = "Bearer s3cret-token"
    bearer = _destination(
        fhir_server.base_url, auth={"type": "bearer", "token": {"env": "TEST_FHIR_TOKEN"}}
    )
    deliver_once(pkg, "ehr", bearer)
    monkeypatch.setenv("TEST_FHIR_TOKEN", "wrong")
    with pytest.raises(DeliveryError, match="HTTP 401"):
        deliver_once(pkg, "ehr", bearer)
    secret = tmp_path / "fhir-password"
    secret.write_text("pa55word\n")
    fhir_server.required_authorization = "Basic " + base64.b64encode(b"gateway:pa55word").decode()
    basic = _destination(
        fhir_server.base_url,
        auth={"type": "basic", "username": "gateway", "password": {"file": str(secret)}},
    )
    deliver_once(pkg, "ehr", basic)
    assert len(fhir_server.rejections) == 1


def test_tls_with_the_hospital_ca_and_a_client_certificate(
    shared_data: Path, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path)
    server = FhirTestServer(tls=pki.server_context(require_client_cert=True)).start()
    try:
        pkg = package(shared_data)
        client = {"client_cert": str(pki.client_cert), "client_key": str(pki.client_key)}
        mutual = _destination(server.base_url, tls={"ca_file": str(pki.ca), **client})
        assert "HTTP 200" in deliver_once(pkg, "ehr", mutual)
        without_cert = _destination(server.base_url, tls={"ca_file": str(pki.ca)})
        with pytest.raises(DeliveryError):
            deliver_once(pkg, "ehr", without_cert)
        wrong_ca = _destination(server.base_url, tls={"ca_file": str(pki.other_ca), **client})
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            deliver_once(pkg, "ehr", wrong_ca)
        assert len(server.resources("DiagnosticReport")) == 1
    finally:
        server.stop()


def test_sender_reuses_its_connection_pool(shared_data: Path, fhir_server: FhirTestServer) -> None:
    sender = FhirSender(_destination(fhir_server.base_url), "ehr")
    try:
        for index in range(3):
            send_now(sender, package(shared_data, uid_suffix=str(index)))
    finally:
        sender.close()
    assert fhir_server.report_arrivals == [
        f"urn:oid:{package(shared_data).metadata.sop_instance_uid}.{i}" for i in range(3)
    ]


def test_errors_quoting_the_patient_are_redacted(
    shared_data: Path, fhir_server: FhirTestServer
) -> None:
    pkg = package(shared_data, patient_id="PAT-778899")
    fhir_server.fail_status = 500
    fhir_server.fail_message = "database error storing Patient PAT-778899"
    with pytest.raises(DeliveryError) as error:
        deliver_once(pkg, "ehr", _destination(fhir_server.base_url))
    assert "PAT-778899" not in str(error.value)
    assert "Patient ***" in str(error.value)


def test_the_endpoint_rejects_what_a_real_server_would(shared_data: Path, fhir_server) -> None:
    """The peer is only worth something if it can say no."""
    import httpx

    good = _bundle(package(shared_data))
    report_entry = next(
        e for e in good["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    device_url = _full_url(good, "Device")
    broken = {
        "performer Device": lambda b, e: e["resource"].update(
            performer=[{"reference": device_url}]
        ),
        "unresolved": lambda b, e: e["resource"].update(
            subject={"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}
        ),
        "no ifNoneExist": lambda b, e: e["request"].pop("ifNoneExist"),
        "bad status": lambda b, e: e["resource"].update(status="done"),
        "batch": lambda b, e: b.update(type="batch"),
    }
    for name, damage in broken.items():
        bundle = json.loads(json.dumps(good))
        entry = next(e for e in bundle["entry"] if e["fullUrl"] == report_entry["fullUrl"])
        damage(bundle, entry)
        response = httpx.post(
            fhir_server.base_url,
            content=json.dumps(bundle),
            headers={"Content-Type": "application/fhir+json"},
        )
        assert response.status_code >= 400, name
    assert fhir_server.resources("DiagnosticReport") == []


def test_the_reports_warnings_follow_the_impression_in_the_conclusion(shared_data: Path) -> None:
    report = afib_report().model_copy(update={"warnings": ["lead V3 not used: flat line."]})
    [diagnostic] = _resources(_bundle(package(shared_data, report=report)), "DiagnosticReport")
    assert diagnostic["conclusion"] == (
        "Atrial fibrillation with rapid ventricular response. Long QT. "
        "Technical notes: lead V3 not used: flat line."
    )


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert retry_after_s("120", now) == 120
    assert retry_after_s("Sat, 01 Mar 2025 12:30:00 GMT", now) == 1800
    assert retry_after_s("Sat, 01 Mar 2025 11:00:00 GMT", now) == 0  # already past
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None


def test_failed_entries_of_a_transaction_response_are_named_without_the_patient(shared_data):
    """An entry's status is the server's text: it may quote the patient, as an
    OperationOutcome may (test_delivery.py), so it is redacted the same way."""
    pkg = package(shared_data, patient_id="MRN-4471")
    request = httpx.Request("POST", "https://fhir.example.org/r4")
    body = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": "201 Created"}},
            {"response": {"status": "409 Patient MRN-4471 exists"}},
        ],
    }
    with pytest.raises(DeliveryError) as refused:
        check_response(httpx.Response(200, json=body, request=request), pkg)
    assert "failed entries: 409 Patient *** exists" in str(refused.value)
    assert "4471" not in str(refused.value)
