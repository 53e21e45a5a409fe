"""Invalid or partial DICOM dates, times and person names: normalised or left out with a
report warning that names no value, and the report still delivered as FHIR and HL7."""

from __future__ import annotations

import json
from pathlib import Path

import hl7
import pydicom
import pytest
from delivery_support import DICOM_ECG, package

import model
from gateway.delivery.fhir import build_bundle, bundle_json
from gateway.delivery.hl7 import build_oru
from gateway.processing.job import process_jobs
from gateway.routing import FhirOptions, Hl7Options
from gateway.store import Job, NewJob, SqliteStore
from model.engine import EngineChoice

INVALID_BIRTH_DATE = "19991399"


def _dicom_with(shared_data: Path, tmp_path: Path, **values: str) -> Path:
    """The real DICOM ECG with some attributes replaced, written and read back as bytes."""
    ds = pydicom.dcmread(shared_data / DICOM_ECG)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    path = tmp_path / "changed.dcm"
    ds.save_as(path)
    return path


def _job(path: Path, tmp_path: Path) -> Job:
    """A leased job for `path`, as the workers get it from the store."""
    store = SqliteStore(tmp_path / "gateway.sqlite3")
    try:
        uid, ecg_class = "1.2.3", "1.2.840.10008.5.1.4.1.1.9.1.1"
        store.add_job(NewJob(uid, ecg_class, "a" * 64, str(path), "ecg-waveform", "CART", "", ""))
        return store.lease_job("test", lease_s=60, max_attempts=3)
    finally:
        store.close()


def _patient(bundle_bytes: bytes) -> dict:
    bundle = json.loads(bundle_bytes)
    return next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )


def test_an_invalid_birth_date_is_left_out_with_a_warning_and_the_report_delivered(
    shared_data: Path, tmp_path: Path
) -> None:
    path = _dicom_with(shared_data, tmp_path, PatientBirthDate=INVALID_BIRTH_DATE)
    [result] = process_jobs([_job(path, tmp_path)], tmp_path / "reports", EngineChoice())
    pkg = result.package
    assert pkg is not None and pkg.metadata.patient_birth_date is None
    warning = "the patient's birth date is not a valid date and was left out"
    assert warning in pkg.report.warnings
    bundle = bundle_json(build_bundle(pkg, FhirOptions()))  # no "building FHIR Patient" error
    assert "birthDate" not in _patient(bundle)
    er7 = build_oru(pkg, Hl7Options(), "1")
    message = hl7.parse(er7)
    assert str(message.segment("PID")[7]) == ""
    assert warning in message.unescape(str(message.segment("NTE")[3]))
    for text in (er7, bundle.decode(), *pkg.report.warnings):
        assert INVALID_BIRTH_DATE not in text


@pytest.mark.parametrize(
    ("dicom", "fhir", "hl7_dt"),
    [
        ("1958", "1958", "1958"),
        ("195803", "1958-03", "195803"),
        ("19580312", "1958-03-12", "19580312"),
        ("1958.03.12", "1958-03-12", "19580312"),  # the old ACR-NEMA form pydicom's DA reads
    ],
)
def test_partial_and_old_form_dates_keep_their_precision(
    shared_data: Path, tmp_path: Path, dicom: str, fhir: str, hl7_dt: str
) -> None:
    meta = model.load(_dicom_with(shared_data, tmp_path, PatientBirthDate=dicom)).metadata
    assert meta.warnings == ()
    pkg = package(shared_data, patient_birth_date=meta.patient_birth_date)
    assert _patient(bundle_json(build_bundle(pkg, FhirOptions())))["birthDate"] == fhir
    assert str(hl7.parse(build_oru(pkg, Hl7Options(), "1")).segment("PID")[7]) == hl7_dt


@pytest.mark.parametrize("saved", [INVALID_BIRTH_DATE, "19990230", "1999-13", "199913", "abcd"])
def test_a_package_saved_with_an_invalid_birth_date_is_still_delivered(
    shared_data: Path, saved: str
) -> None:
    """Packages written before the decoder checked dates are still on disk."""
    pkg = package(shared_data, patient_birth_date=saved)
    assert "birthDate" not in _patient(bundle_json(build_bundle(pkg, FhirOptions())))
    assert str(hl7.parse(build_oru(pkg, Hl7Options(), "1")).segment("PID")[7]) == ""


def test_a_name_with_too_many_parts_and_a_bad_time_are_warned_about(
    shared_data: Path, tmp_path: Path
) -> None:
    path = _dicom_with(
        shared_data,
        tmp_path,
        PatientName="Doe^John^Q^Dr^Jr^Extra^More",
        AcquisitionDateTime="20241399",
    )
    meta = model.load(path).metadata
    assert meta.patient_name == "Doe^John^Q^Dr^Jr"
    assert meta.acquisition_time is None
    assert meta.warnings == (
        "the patient's name has more parts than DICOM allows; the extra parts were left out",
        "the acquisition date/time is not valid and was left out",
    )
    assert not any("Extra" in warning or "2024" in warning for warning in meta.warnings)


def test_an_empty_name_is_no_name(shared_data: Path, tmp_path: Path) -> None:
    meta = model.load(_dicom_with(shared_data, tmp_path, PatientName="^^^^")).metadata
    assert (meta.patient_name, meta.warnings) == (None, ())


def test_a_muse_birth_date_that_does_not_parse_is_warned_about(
    shared_data: Path, tmp_path: Path
) -> None:
    text = (shared_data / "vendor/muse/muse-sinus.xml").read_text(encoding="utf-8")
    assert "<DateofBirth>07-08-1979</DateofBirth>" in text
    path = tmp_path / "muse.xml"
    path.write_text(text.replace("07-08-1979", "13-45-1979"), encoding="utf-8")
    meta = model.load(path).metadata
    assert meta.patient_birth_date is None
    assert meta.warnings == ("the patient's birth date is not a valid date and was left out",)
