"""EcgMetadata from a DICOM dataset's patient, study, series, equipment modules."""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DA, DT, TM

from model.decode.acquisition import describe_filters
from model.decode.demographics import BIRTH_DATE_LEFT_OUT, dicom_date, person_name
from model.decode.waveform_annotations import read_annotations
from model.ecg import EcgMetadata

# The EcgMetadata fields read as text, each with the DICOM attribute it comes from.
_TEXT_FIELDS = {
    "patient_id": "PatientID",
    "patient_id_issuer": "IssuerOfPatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "patient_age": "PatientAge",
    "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
    "sop_instance_uid": "SOPInstanceUID",
    "sop_class_uid": "SOPClassUID",
    "accession_number": "AccessionNumber",
    "device_manufacturer": "Manufacturer",
    "device_model": "ManufacturerModelName",
    "device_serial": "DeviceSerialNumber",
    "institution_name": "InstitutionName",
    "station_name": "StationName",
    "modality": "Modality",
}

# Report warnings: they reach the physician with the report, so they name what was wrong,
# never the value itself.
NAME_TRIMMED = "the patient's name has more parts than DICOM allows; the extra parts were left out"
ACQUISITION_TIME_LEFT_OUT = "the acquisition date/time is not valid and was left out"


def metadata_from_dataset(ds: Dataset, filters: str | None = None) -> EcgMetadata:
    """Everything the object says about patient, acquisition and device; absent stays None.

    Values that would reach an EHR invalid (a birth date 19991399, a name of seven parts,
    several values in a single-valued attribute) are normalised or left out, each with a
    report warning, so the report is still delivered."""
    warnings: list[str] = []
    values = {field: dicom_text(ds, keyword, warnings) for field, keyword in _TEXT_FIELDS.items()}
    birth_date = dicom_date(values["patient_birth_date"])
    if values["patient_birth_date"] and birth_date is None:
        warnings.append(BIRTH_DATE_LEFT_OUT)
    name, trimmed = person_name(values["patient_name"])
    if trimmed:
        warnings.append(NAME_TRIMMED)
    acquired = acquisition_time(ds)
    if acquired is None and _has_acquisition_time(ds):
        warnings.append(ACQUISITION_TIME_LEFT_OUT)
    measurements, statements = read_annotations(ds)
    return EcgMetadata(
        **{**values, "patient_birth_date": birth_date, "patient_name": name},
        acquisition_time=acquired,
        filters=filters,
        source_format="dicom",
        warnings=tuple(warnings),
        device_measurements=measurements,
        device_statements=statements,
    )


def acquisition_time(ds: Dataset) -> datetime | None:
    """AcquisitionDateTime, else ContentDate + ContentTime; a malformed value gives None
    rather than failing the whole ECG, since the signal is still good."""
    try:
        if ds.get("AcquisitionDateTime"):
            stamp = DT(str(ds.AcquisitionDateTime))
            # A plain datetime, not pydicom's DT subclass, so it pickles and compares simply.
            return datetime.combine(stamp.date(), stamp.timetz())
        if ds.get("ContentDate") and ds.get("ContentTime"):
            return datetime.combine(DA(str(ds.ContentDate)), TM(str(ds.ContentTime)))
    except (ValueError, TypeError):
        return None
    return None


def _has_acquisition_time(ds: Dataset) -> bool:
    return bool(ds.get("AcquisitionDateTime") or (ds.get("ContentDate") and ds.get("ContentTime")))


def filter_description(channel: Dataset) -> str | None:
    """The pass band and notch of one channel definition.

    FilterLowFrequency is the low edge of the pass band, i.e. the high-pass cutoff,
    and FilterHighFrequency the low-pass one (PS3.3 C.10.9, Waveform Module).
    """
    return describe_filters(
        _number(channel, "FilterLowFrequency"),
        _number(channel, "FilterHighFrequency"),
        _number(channel, "NotchFilterFrequency"),
    )


def _number(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def dicom_text(ds: Dataset, keyword: str, warnings: list[str] | None = None) -> str | None:
    """The attribute as one text value. Every attribute read here has VM 1, so of several
    values (`MRN1\\MRN2`) the first non-empty one is taken, never the list's repr, and the
    report says that the others were left out."""
    value = ds.get(keyword)
    if isinstance(value, MultiValue):
        texts = [str(item).strip() for item in value if str(item).strip()]
        if len(texts) > 1 and warnings is not None:
            warnings.append(f"the DICOM {keyword} holds {len(texts)} values; the first was used")
        return texts[0] if texts else None
    text = str(value).strip() if value is not None else ""
    return text or None
