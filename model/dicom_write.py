"""Ecg -> a DICOM ECG Waveform object (pydicom Dataset), the form hospitals store.

Used to send WFDB and vendor-XML ECGs to the gateway over DICOM (demo, intake tests,
benchmarks) and to check the decoder by round trip. The IOD is the 12-lead ECG one
whenever the recording fits its constraints (PS3.3 A.34); otherwise General ECG, or
Ambulatory ECG for rates under 200 Hz (e.g. PTB-XL's 100 Hz records), the only ECG
IOD that admits them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

from model.decode.acquisition import parse_filters
from model.decode.leads import CODE_BY_NAME
from model.decode.waveform_annotations import annotation_sequence
from model.ecg import Ecg, EcgMetadata

TWELVE_LEAD_ECG_STORAGE = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG_STORAGE = "1.2.840.10008.5.1.4.1.1.9.1.2"
AMBULATORY_ECG_STORAGE = "1.2.840.10008.5.1.4.1.1.9.1.3"

RHYTHM_LABEL = "RHYTHM"
MEDIAN_LABEL = "MEDIAN BEAT"
# Sensitivity per bit in microvolts, finest first: 1 uV keeps PTB-XL (stored at 1 uV)
# lossless and is below any cart's noise floor; coarser steps only for large signals.
SENSITIVITY_STEPS_UV = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)
_MAX_CODE = 32767
_PADDING_CODE = -32768  # marks samples the source did not have (NaN)
# Leads outside CID 3001 (e.g. MIT-BIH's MLII) get a local code; PS3.3 8.2 reserves
# coding scheme designators starting with '99' for local schemes.
_LOCAL_SCHEME = "99ECGGW"
_FILTER_KEYWORDS = {
    "high_pass": "FilterLowFrequency",
    "low_pass": "FilterHighFrequency",
    "notch": "NotchFilterFrequency",
}


@dataclass(frozen=True)
class _Iod:
    sop_class_uid: str
    min_hz: float
    max_hz: float
    max_channels: int
    max_samples: int | None
    max_groups: int


# PS3.3 A.34 waveform content constraints of each ECG IOD, most specific first.
_IODS = (
    _Iod(TWELVE_LEAD_ECG_STORAGE, 200, 1000, 13, 16384, 5),
    _Iod(GENERAL_ECG_STORAGE, 200, 1000, 24, None, 4),
    _Iod(AMBULATORY_ECG_STORAGE, 50, 1000, 12, None, 1),
)


def ecg_to_dicom(
    ecg: Ecg,
    *,
    include_median: bool = True,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    created: datetime | None = None,
) -> Dataset:
    """A complete ECG waveform object with file meta, ready for `save_as` or C-STORE.
    `created`: the instance's creation time (now unless given: an object sent again
    under the same SOP Instance UID must be the same object).

    Samples are int16 (SS) at the finest sensitivity in SENSITIVITY_STEPS_UV that holds
    each lead's peak. The study UID and patient/device data come from `ecg.metadata`;
    the series and instance are new (this is a new object) unless given. When the
    source has no acquisition time, AcquisitionDateTime (Type 1) is the conversion time.
    """
    iod = _choose_iod(ecg)
    # Ambulatory ECG allows one multiplex group, so there the median beats are left out.
    medians = ecg.median_beats is not None and include_median and iod.max_groups >= 2
    created = created or datetime.now()
    filters = _filter_values(ecg.metadata.filters)
    groups = [
        _multiplex_group(
            ecg.signal, ecg.sampling_rate, ecg.lead_names, RHYTHM_LABEL, "ORIGINAL", filters
        )
    ]
    if medians:
        groups.append(
            _multiplex_group(
                ecg.median_beats,
                ecg.median_sampling_rate,
                ecg.lead_names,
                MEDIAN_LABEL,
                "DERIVED",
                filters,
            )
        )
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = iod.sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.InstanceCreationDate = created.strftime("%Y%m%d")
    ds.InstanceCreationTime = created.strftime("%H%M%S")
    _add_patient(ds, ecg.metadata)
    _add_study_series_equipment(ds, ecg.metadata, series_instance_uid)
    _add_waveform_identification(ds, ecg.metadata.acquisition_time or created, created)
    ds.AcquisitionContextSequence = Sequence()
    ds.WaveformSequence = Sequence(groups)
    meta = ecg.metadata
    if meta.device_measurements or meta.device_statements:
        ds.WaveformAnnotationSequence = annotation_sequence(
            meta.device_measurements, meta.device_statements
        )
    ds.file_meta = _file_meta(ds)
    ds.preamble = b"\x00" * 128
    return ds


def _choose_iod(ecg: Ecg) -> _Iod:
    for iod in _IODS:
        if (
            iod.min_hz <= ecg.sampling_rate <= iod.max_hz
            and len(ecg.lead_names) <= iod.max_channels
            and (iod.max_samples is None or ecg.n_samples <= iod.max_samples)
        ):
            return iod
    raise ValueError(
        f"no DICOM ECG IOD holds {len(ecg.lead_names)} leads at {ecg.sampling_rate:g} Hz "
        f"(ECG waveform objects allow 50-1000 Hz and at most 24 channels)"
    )


def _multiplex_group(
    signal: np.ndarray,
    rate: float,
    names: tuple[str, ...],
    label: str,
    originality: str,
    filters: dict[str, str],
) -> Dataset:
    steps = [sensitivity_uv(lead) for lead in signal]
    codes = np.stack([_quantise(lead, step) for lead, step in zip(signal, steps, strict=True)])
    group = Dataset()
    group.WaveformOriginality = originality
    group.NumberOfWaveformChannels = len(names)
    group.NumberOfWaveformSamples = codes.shape[1]
    group.SamplingFrequency = DSfloat(rate, auto_format=True)  # full precision in 16 chars
    group.MultiplexGroupLabel = label
    group.ChannelDefinitionSequence = Sequence(
        [_channel_definition(name, step, filters) for name, step in zip(names, steps, strict=True)]
    )
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    if np.isnan(signal).any():
        group.add_new("WaveformPaddingValue", "OW", np.int16(_PADDING_CODE).astype("<i2").tobytes())
    # Interleaved: sample 1 of every channel, then sample 2 of every channel...
    group.add_new("WaveformData", "OW", codes.T.astype("<i2").tobytes())
    return group


def sensitivity_uv(samples_mv: np.ndarray) -> float:
    """The finest step of SENSITIVITY_STEPS_UV that holds the lead's peak in int16."""
    finite = samples_mv[np.isfinite(samples_mv)]
    peak_uv = float(np.abs(finite).max()) * 1000 if finite.size else 0.0
    for step in SENSITIVITY_STEPS_UV:
        if peak_uv / step <= _MAX_CODE:
            return step
    raise ValueError(f"a lead peaks at {peak_uv / 1000:.0f} mV, beyond 16-bit ECG storage")


def _quantise(samples_mv: np.ndarray, step_uv: float) -> np.ndarray:
    codes = np.rint(np.nan_to_num(samples_mv, nan=0.0) * 1000 / step_uv)
    codes[np.isnan(samples_mv)] = _PADDING_CODE
    return codes.astype(np.int16)


def _channel_definition(name: str, step_uv: float, filters: dict[str, str]) -> Dataset:
    channel = Dataset()
    channel.ChannelLabel = name
    channel.ChannelSourceSequence = Sequence([_lead_source(name)])
    channel.ChannelSensitivity = f"{step_uv:g}"
    channel.ChannelSensitivityUnitsSequence = Sequence(
        [_code("uV", "UCUM", "microvolt", version="1.4")]
    )
    channel.ChannelSensitivityCorrectionFactor = "1"
    channel.ChannelBaseline = "0"
    channel.ChannelSampleSkew = "0"
    channel.WaveformBitsStored = 16
    for keyword, value in filters.items():
        setattr(channel, keyword, value)
    return channel


def _lead_source(name: str) -> Dataset:
    code = CODE_BY_NAME.get(name)
    if code is None:
        return _code(name, _LOCAL_SCHEME, name)
    return _code(code.scpecg, "SCPECG", code.meaning, version="1.3")


def _code(value: str, scheme: str, meaning: str, version: str | None = None) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    if version:
        item.CodingSchemeVersion = version
    item.CodeMeaning = meaning
    return item


def _filter_values(description: str | None) -> dict[str, str]:
    """The decoders' '0.56-150 Hz, notch 50 Hz' back as channel filter attributes."""
    return {_FILTER_KEYWORDS[key]: value for key, value in parse_filters(description).items()}


def _add_patient(ds: Dataset, meta: EcgMetadata) -> None:
    ds.PatientName = meta.patient_name or ""
    ds.PatientID = meta.patient_id or ""
    if meta.patient_id_issuer:
        ds.IssuerOfPatientID = meta.patient_id_issuer
    ds.PatientBirthDate = meta.patient_birth_date or ""
    ds.PatientSex = meta.patient_sex or ""
    if meta.patient_age:
        ds.PatientAge = meta.patient_age


def _add_study_series_equipment(ds: Dataset, meta: EcgMetadata, series_uid: str | None) -> None:
    acquired = meta.acquisition_time
    ds.StudyInstanceUID = meta.study_instance_uid or generate_uid()
    ds.StudyDate = acquired.strftime("%Y%m%d") if acquired else ""
    ds.StudyTime = acquired.strftime("%H%M%S") if acquired else ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = meta.accession_number or ""
    ds.Modality = "ECG"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber = "1"
    ds.Manufacturer = meta.device_manufacturer or ""
    optional = {
        "ManufacturerModelName": meta.device_model,
        "DeviceSerialNumber": meta.device_serial,
        "InstitutionName": meta.institution_name,
        "StationName": meta.station_name,
    }
    for keyword, value in optional.items():
        if value:
            setattr(ds, keyword, value)


def _add_waveform_identification(ds: Dataset, acquired: datetime, created: datetime) -> None:
    ds.InstanceNumber = "1"
    ds.ContentDate = created.strftime("%Y%m%d")
    ds.ContentTime = created.strftime("%H%M%S")
    ds.AcquisitionDateTime = acquired.strftime("%Y%m%d%H%M%S")


def _file_meta(ds: Dataset) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


def new_dataset(sop_class: str, modality: str) -> Dataset:
    """An object of `sop_class` with its file meta and new SOP Instance, Study and Series
    UIDs; no patient module, no content."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.file_meta = _file_meta(ds)
    return ds


def page_to_secondary_capture(
    pixels: np.ndarray, modality: str = "ECG", conversion_type: str = "DF"
) -> Dataset:
    """An RGB page (rows x columns x 3, uint8) as an uncompressed Secondary Capture, as a
    scanner sends a paper ECG; new UIDs, no patient module."""
    ds = new_dataset(SECONDARY_CAPTURE_STORAGE, modality)
    ds.ConversionType = conversion_type
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    return ds
