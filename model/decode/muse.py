"""GE MUSE RestingECG XML -> Ecg, and GE's own measurements from the same file.

The PyPI tools that read MUSE XML (ecg2dcm, muse2wfdb) convert it to other files rather
than return calibrated arrays, and the format is simple (base64 little-endian int16
leads), so it is read here, with the file's own byte counts and CRC32s checked. Parsing
goes through defusedxml because these files arrive from the network (entity-expansion
and external-entity attacks are refused).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from model.decode.acquisition import checked_sampling_rate, describe_filters
from model.decode.demographics import BIRTH_DATE_LEFT_OUT, age_string, sex_code
from model.decode.leads import add_channel, lead_from_text, stack_leads
from model.decode.units import millivolts_per_unit
from model.decode.xml_document import MUSE as MUSE_ROOT
from model.decode.xml_document import parse_xml, xml_number
from model.ecg import Ecg, EcgMetadata, derive_limb_leads
from model.errors import EcgDecodeError

_SAMPLE_BYTES = 2  # MUSE stores every lead as int16
# HighPassFilter is given in hundredths of a hertz (56 = 0.56 Hz); the others in hertz.
_HIGH_PASS_SCALE = 0.01


def decode_muse(path: Path) -> Ecg:
    """The 'Rhythm' waveform as the signal, the 'Median' waveform as median beats."""
    return decode_muse_root(path, parse_muse(path))


def decode_muse_root(path: Path, root: Element) -> Ecg:
    """decode_muse for a document already parsed (model.decode.xml_document)."""
    rhythm = _waveform(root, "Rhythm")
    if rhythm is None:
        raise EcgDecodeError(path, "MUSE XML has no Rhythm waveform")
    rate, leads = _decode_waveform(path, rhythm, "Rhythm waveform")
    names, signal = stack_leads(leads)
    median_rate, medians = _median_beats(path, root, names)
    return Ecg(
        signal=signal,
        sampling_rate=rate,
        lead_names=names,
        metadata=_metadata(root, rhythm),
        median_beats=medians,
        median_sampling_rate=median_rate,
    )


def read_muse_measurements(path: str | Path) -> dict[str, float]:
    """GE's global measurements (RestingECGMeasurements: VentricularRate, PRInterval,
    QRSDuration, QTInterval, QTCorrected, PAxis, RAxis, TAxis, ...) as numbers.

    The benchmark compares the gateway's measurements against these. Elements that are
    not numbers are left out; an empty dict means the file has no measurement block.
    """
    block = parse_muse(Path(path)).find("RestingECGMeasurements")
    measurements: dict[str, float] = {}
    for element in block if block is not None else []:
        number = xml_number(element.text)
        if number is not None:
            measurements[element.tag] = number
    return measurements


def parse_muse(path: Path) -> Element:
    """The RestingECG root element; EcgDecodeError for anything else or unsafe XML."""
    root = parse_xml(path)
    if root.tag != MUSE_ROOT:
        raise EcgDecodeError(
            path, f"not GE MUSE XML (root element <{root.tag}>, expected <{MUSE_ROOT}>)"
        )
    return root


def _waveform(root: Element, kind: str) -> Element | None:
    for waveform in root.findall("Waveform"):
        if (waveform.findtext("WaveformType") or "").strip().lower() == kind.lower():
            return waveform
    return None


def _median_beats(
    path: Path, root: Element, names: tuple[str, ...]
) -> tuple[float | None, np.ndarray | None]:
    median = _waveform(root, "Median")
    if median is None:
        return None, None
    rate, leads = _decode_waveform(path, median, "Median waveform")
    missing = [name for name in names if name not in leads]
    if missing:
        raise EcgDecodeError(path, f"Median waveform lacks leads {', '.join(missing)}")
    return rate, np.stack([leads[name] for name in names])


def _decode_waveform(path: Path, waveform: Element, where: str) -> tuple[float, dict]:
    base = xml_number(waveform.findtext("SampleBase"))
    exponent = xml_number(waveform.findtext("SampleExponent")) or 0
    if base is None:
        raise EcgDecodeError(path, f"{where}: SampleBase is missing")
    rate = checked_sampling_rate(path, base * 10**exponent, where)
    leads: dict[str, np.ndarray] = {}
    for lead in waveform.findall("LeadData"):
        name, samples = _decode_lead(path, lead, where)
        add_channel(leads, name, samples)
    if not leads:
        raise EcgDecodeError(path, f"{where} has no LeadData")
    lengths = {len(samples) for samples in leads.values()}
    if len(lengths) != 1:
        raise EcgDecodeError(path, f"{where}: leads differ in length {sorted(lengths)}")
    return rate, derive_limb_leads(leads)


def _decode_lead(path: Path, lead: Element, where: str) -> tuple[str, np.ndarray]:
    lead_id = (lead.findtext("LeadID") or "").strip()
    where = f"{where} lead {lead_id or '?'}"
    data = _lead_bytes(path, lead, where)
    per_bit = xml_number(lead.findtext("LeadAmplitudeUnitsPerBit"))
    units = lead.findtext("LeadAmplitudeUnits")
    per_unit = millivolts_per_unit(units)
    if per_bit is None or per_unit is None:
        raise EcgDecodeError(
            path, f"{where}: amplitude scale missing or not a voltage ({units or 'no units'})"
        )
    samples = np.frombuffer(data, dtype="<i2").astype(np.float64) * per_bit * per_unit
    return lead_from_text(lead_id) or lead_id or "?", samples


def _lead_bytes(path: Path, lead: Element, where: str) -> bytes:
    """The lead's int16 bytes, checked against the byte count, sample count and CRC32
    the file declares, so a damaged export fails loudly instead of drawing garbage."""
    text = "".join((lead.findtext("WaveFormData") or "").split())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EcgDecodeError(path, f"{where}: WaveFormData is not valid base64") from None
    sample_size = xml_number(lead.findtext("LeadSampleSize")) or _SAMPLE_BYTES
    if sample_size != _SAMPLE_BYTES:
        raise EcgDecodeError(path, f"{where}: unsupported sample size {sample_size:g} bytes")
    declared = [
        xml_number(lead.findtext("LeadByteCountTotal")),
        _times(xml_number(lead.findtext("LeadSampleCountTotal")), _SAMPLE_BYTES),
    ]
    if not data or any(count is not None and count != len(data) for count in declared):
        raise EcgDecodeError(
            path,
            f"{where}: {len(data)} bytes of samples but the file declares "
            f"{' / '.join(f'{c:g}' for c in declared if c is not None)} (truncated or corrupt)",
        )
    crc = xml_number(lead.findtext("LeadDataCRC32"))
    if crc is not None and zlib.crc32(data) != crc:
        raise EcgDecodeError(path, f"{where}: samples fail the file's CRC32 check (corrupt)")
    return data


def _times(value: float | None, factor: int) -> float | None:
    return None if value is None else value * factor


def _metadata(root: Element, rhythm: Element) -> EcgMetadata:
    patient_field = _field_reader(root.find("PatientDemographics"))
    test_field = _field_reader(root.find("TestDemographics"))
    birth_date = _dicom_date(patient_field("DateofBirth"))
    return EcgMetadata(
        patient_id=patient_field("PatientID"),
        patient_name=_person_name(
            patient_field("PatientLastName"), patient_field("PatientFirstName")
        ),
        patient_birth_date=birth_date,
        patient_sex=sex_code(patient_field("Gender")),
        patient_age=age_string(patient_field("PatientAge"), patient_field("AgeUnits") or "years"),
        acquisition_time=_acquired(test_field("AcquisitionDate"), test_field("AcquisitionTime")),
        # RestingECG XML is written by GE's MUSE system from GE carts.
        device_manufacturer="GE Healthcare",
        device_model=test_field("AcquisitionDevice"),
        institution_name=test_field("SiteName"),
        station_name=test_field("CartNumber"),
        modality="ECG",
        filters=_filters(rhythm),
        warnings=(BIRTH_DATE_LEFT_OUT,) if patient_field("DateofBirth") and not birth_date else (),
        source_format="muse-xml",
        device_measurements=_device_measurements(root),
        device_statements=_statements(root.find("Diagnosis")),
    )


# GE's measurement names -> Measurements keys (QTCorrected names no formula).
_MEASUREMENT_KEYS = {
    "VentricularRate": "heart_rate_bpm",
    "PRInterval": "pr_ms",
    "QRSDuration": "qrs_ms",
    "QTInterval": "qt_ms",
    "QTCorrected": "qtc_ms",
    "QTcFrederica": "qtc_fridericia_ms",
    "PAxis": "p_axis_deg",
    "RAxis": "qrs_axis_deg",
    "TAxis": "t_axis_deg",
}


def _device_measurements(root: Element) -> tuple[tuple[str, float], ...]:
    block = root.find("RestingECGMeasurements")
    found = []
    for tag, key in _MEASUREMENT_KEYS.items():
        number = xml_number(block.findtext(tag)) if block is not None else None
        if number is not None:
            found.append((key, number))
    return tuple(found)


def _statements(diagnosis: Element | None) -> tuple[str, ...]:
    """GE splits a statement over several DiagnosisStatements; ENDSLINE ends one."""
    lines, current = [], ""
    for statement in diagnosis.findall("DiagnosisStatement") if diagnosis is not None else []:
        piece = (statement.findtext("StmtText") or "").strip()
        joiner = "" if not current or piece[:1] in ",.;:)" else " "
        current += joiner + piece
        flags = " ".join(flag.text or "" for flag in statement.findall("StmtFlag"))
        if "ENDSLINE" in flags and current:
            lines.append(current)
            current = ""
    return tuple(lines + ([current] if current else []))


def _field_reader(section: Element | None) -> Callable[[str], str | None]:
    """A lookup of one section's child texts; a missing section reads as all-absent."""

    def read(tag: str) -> str | None:
        text = section.findtext(tag) if section is not None else None
        return (text or "").strip() or None

    return read


def _person_name(last: str | None, first: str | None) -> str | None:
    """DICOM PN form, family^given, the form the other decoders hand on."""
    if not last and not first:
        return None
    return f"{last or ''}^{first}" if first else last


def _dicom_date(text: str | None) -> str | None:
    """MUSE's MM-DD-YYYY as DICOM DA (YYYYMMDD); None if it does not parse."""
    try:
        return datetime.strptime(text, "%m-%d-%Y").strftime("%Y%m%d") if text else None
    except ValueError:
        return None


def _acquired(date: str | None, time: str | None) -> datetime | None:
    if not date or not time:
        return None
    try:
        return datetime.strptime(f"{date} {time}", "%m-%d-%Y %H:%M:%S")
    except ValueError:
        return None


def _filters(waveform: Element) -> str | None:
    high_pass = xml_number(waveform.findtext("HighPassFilter"))
    return describe_filters(
        high_pass * _HIGH_PASS_SCALE if high_pass is not None else None,
        xml_number(waveform.findtext("LowPassFilter")),
        xml_number(waveform.findtext("ACFilter")),
    )
