"""EcgMetadata from a DICOM dataset's patient, study, series, equipment modules."""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset
from pydicom.valuerep import DA, DT, TM

from model.decode.acquisition import describe_filters
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


def metadata_from_dataset(ds: Dataset, filters: str | None = None) -> EcgMetadata:
    """Everything the object says about patient, acquisition and device; absent stays None."""
    return EcgMetadata(
        **{field: _text(ds, keyword) for field, keyword in _TEXT_FIELDS.items()},
        acquisition_time=acquisition_time(ds),
        filters=filters,
        source_format="dicom",
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


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None
