"""The waveform itself in FHIR, per route: an Observation (MDC 131328, one SampledData
component per lead, as the FHIR R4 ECG example) that reads back to the recorded
microvolts, or, asked for or over the size guard, a DICOM 12-lead ECG in a Binary that
pydicom reads back; both sent to the test FHIR server, which judges the transaction."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from delivery_support import package
from example_reports import afib_report
from fhir.resources.R4B.observation import Observation
from peers import FhirTestServer

import model
from gateway.delivery import deliver_once, prepare
from gateway.delivery.fhir import build_bundle, bundle_json
from gateway.processing.package import ReportPackage
from gateway.routing import FhirDestination, FhirOptions
from model.ecg import Ecg

MDC = "urn:oid:2.16.840.1.113883.6.24"


@pytest.fixture(scope="module")
def waveform(shared_data: Path) -> Ecg:
    ecg = model.load(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")
    return Ecg(ecg.signal, ecg.sampling_rate, ecg.lead_names)


@pytest.fixture
def pkg(shared_data: Path, waveform: Ecg) -> ReportPackage:
    return replace(package(shared_data, report=afib_report()), waveform=waveform)


def bundle(pkg: ReportPackage, **options) -> dict:
    return json.loads(bundle_json(build_bundle(pkg, FhirOptions(**options))))


def entries(bundle: dict, kind: str) -> list[dict]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def waveform_observation(bundle: dict) -> dict:
    [observation] = [
        e["resource"]
        for e in entries(bundle, "Observation")
        if e["resource"]["code"]["coding"][0]["system"] == MDC
    ]
    return observation


def test_the_waveform_observation_reads_back_to_the_recorded_microvolts(
    pkg: ReportPackage, waveform: Ecg
) -> None:
    sent = bundle(pkg, waveform="observation")
    observation = waveform_observation(sent)
    Observation.model_validate(observation)
    assert observation["code"]["coding"][0] == {
        "system": MDC,
        "code": "131328",
        "display": "MDC_ECG_ELEC_POTL",
    }
    assert observation["status"] == "final"
    assert observation["category"][0]["coding"][0]["code"] == "procedure"
    components = observation["component"]
    assert [c["code"]["coding"][0]["code"] for c in components] == [
        "131329", "131330", "131389", "131390", "131391", "131392",
        "131331", "131332", "131333", "131334", "131335", "131336",
    ]  # fmt: skip
    assert components[1]["code"]["coding"][0]["display"] == "MDC_ECG_ELEC_POTL_II"
    for lead, component in zip(waveform.lead_names, components, strict=True):
        data = component["valueSampledData"]
        assert data["origin"] == {
            "value": 0,
            "unit": "uV",
            "system": "http://unitsofmeasure.org",
            "code": "uV",
        }
        assert (data["period"], data["factor"], data["dimensions"]) == (2.0, 1, 1)
        values = (
            np.array(data["data"].split(), dtype=float) * data["factor"] + data["origin"]["value"]
        )
        recorded = waveform.lead(lead).astype(np.float64) * 1000
        assert len(values) == waveform.n_samples
        assert np.abs(values - recorded).max() <= 0.5  # whole microvolts
        assert (data["lowerLimit"], data["upperLimit"]) == (values.min(), values.max())
    [report] = entries(sent, "DiagnosticReport")
    url = next(e["fullUrl"] for e in entries(sent, "Observation") if e["resource"] == observation)
    assert {"reference": url} in report["resource"]["result"]


def test_a_gap_in_the_recording_is_an_error_sample_not_a_zero(pkg: ReportPackage) -> None:
    signal = pkg.waveform.signal.copy()
    signal[0, 100:103] = np.nan
    pkg.waveform = Ecg(signal, pkg.waveform.sampling_rate, pkg.waveform.lead_names)
    words = waveform_observation(bundle(pkg, waveform="observation"))["component"][0]
    assert words["valueSampledData"]["data"].split()[99:104][1:4] == ["E", "E", "E"]


def test_over_the_size_guard_or_when_asked_the_waveform_is_a_dicom_binary(
    pkg: ReportPackage, waveform: Ecg
) -> None:
    for options in ({"waveform": "observation", "waveform_max_kb": 100}, {"waveform": "binary"}):
        sent = bundle(pkg, **options)
        assert not [
            e
            for e in entries(sent, "Observation")
            if e["resource"]["code"]["coding"][0]["system"] == MDC
        ]
        [binary] = entries(sent, "Binary")
        assert binary["request"] == {"method": "PUT", "url": f"Binary/{binary['resource']['id']}"}
        dataset = pydicom.dcmread(io.BytesIO(base64.b64decode(binary["resource"]["data"])))
        assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.9.1.1"  # 12-lead ECG
        assert dataset.PatientID == pkg.metadata.patient_id
        leads = dataset.waveform_array(0)
        assert leads.shape == (waveform.n_samples, 12)
        [report] = entries(sent, "DiagnosticReport")
        forms = report["resource"]["presentedForm"]
        assert [f["contentType"] for f in forms] == ["application/pdf", "application/dicom"]
        assert forms[1]["url"] == binary["fullUrl"]
    assert bundle(pkg, waveform="binary") == bundle(
        pkg, waveform="binary"
    )  # resend: same Binary id


def test_no_waveform_unless_the_route_asks(pkg: ReportPackage) -> None:
    sent = bundle(pkg)
    assert not entries(sent, "Binary")
    assert all(
        e["resource"]["code"]["coding"][0]["system"] != MDC for e in entries(sent, "Observation")
    )


@pytest.mark.parametrize("mode", ["observation", "binary"])
def test_a_fhir_server_takes_the_transaction_and_links_the_waveform(
    pkg: ReportPackage, mode: str
) -> None:
    server = FhirTestServer().start()
    try:
        destination = FhirDestination.model_validate(
            {"type": "fhir", "endpoint": server.base_url, "fhir": {"waveform": mode}}
        )
        deliver_once(pkg, "ehr", destination)
        deliver_once(pkg, "ehr", destination)  # a resend creates nothing new
        [report] = server.resources("DiagnosticReport")
        if mode == "observation":
            waveforms = [
                o
                for o in server.resources("Observation")
                if o["code"]["coding"][0]["system"] == MDC
            ]
            assert len(waveforms) == 1
            assert any(r["reference"].startswith("Observation/") for r in report["result"])
        else:
            [binary] = server.resources("Binary")
            assert report["presentedForm"][1]["url"] == f"Binary/{binary['id']}"
        assert len(prepare("ehr", destination, pkg)["bundle"]) < 2_000_000
    finally:
        server.stop()


def test_the_package_keeps_the_waveform_on_disk_without_the_patient(
    pkg: ReportPackage, waveform: Ecg, tmp_path: Path
) -> None:
    pkg.save(tmp_path)
    loaded = ReportPackage.load(tmp_path).waveform
    assert loaded.lead_names == waveform.lead_names and loaded.sampling_rate == 500.0
    assert np.array_equal(loaded.signal, waveform.signal)
    assert b"000001" not in (tmp_path / "waveform.npz").read_bytes()


def test_the_binary_carries_the_samples_not_the_carts_own_statements(pkg: ReportPackage) -> None:
    """The cart's measurements and statements are kept for audit, never passed on as an
    interpretation: the DICOM in the Binary has the waveform and no annotation of them."""
    pkg.metadata = pkg.metadata.with_updates(
        device_statements=("Cart says: acute MI",), device_measurements=(("qrs_ms", 180.0),)
    )
    [binary] = entries(bundle(pkg, waveform="binary"), "Binary")
    dataset = pydicom.dcmread(io.BytesIO(base64.b64decode(binary["resource"]["data"])))
    assert "acute MI" not in str(dataset)
    assert "WaveformAnnotationSequence" not in dataset
