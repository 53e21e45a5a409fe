"""DICOM ECG waveform objects (12-lead, General, Ambulatory ECG; Hemodynamic) -> Ecg.

pydicom parses the file; the sample decoding is done here rather than with
pydicom.waveforms.multiplex_array because that helper neither checks the byte count
(it silently reshapes what is there), nor converts units to mV, nor handles big-endian
data or padding values, and it raises bare KeyErrors on unknown encodings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from model.decode.acquisition import checked_sampling_rate
from model.decode.dicom_metadata import filter_description, metadata_from_dataset
from model.decode.leads import (
    add_channel,
    lead_from_code,
    lead_from_text,
    stack_leads,
)
from model.decode.pdf_page import ENCAPSULATED_PDF_SOP_CLASS
from model.decode.units import millivolts_per_unit
from model.ecg import Ecg, derive_limb_leads
from model.errors import EcgDecodeError

log = logging.getLogger(__name__)

WAVEFORM_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.9.1.1": "12-lead ECG Waveform Storage",
    "1.2.840.10008.5.1.4.1.1.9.1.2": "General ECG Waveform Storage",
    "1.2.840.10008.5.1.4.1.1.9.1.3": "Ambulatory ECG Waveform Storage",
    "1.2.840.10008.5.1.4.1.1.9.2.1": "Hemodynamic Waveform Storage",
}
_SAMPLE_DTYPES: dict[tuple[int, str], str] = {
    (8, "SB"): "i1",
    (8, "UB"): "u1",
    (16, "SS"): "i2",
    (16, "US"): "u2",
    (32, "SL"): "i4",
    (32, "UL"): "u4",
}
# Objects the gateway reads as pages (model.decode.pdf_page, model.vlm.page_image).
PAGE_SOP_CLASSES: dict[str, str] = {
    ENCAPSULATED_PDF_SOP_CLASS: "DICOM Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture",
}
# mu-law and A-law (MB, AB) are audio encodings; no ECG or hemodynamic IOD allows them.
_AUDIO_ENCODINGS = {"MB", "AB"}


@dataclass(frozen=True)
class _Group:
    """One multiplex group, decoded: its ECG leads in mV, keyed by standard name."""

    label: str
    sampling_rate: float
    n_samples: int
    leads: dict[str, np.ndarray]
    filters: str | None

    @property
    def is_median(self) -> bool:
        return "MEDIAN" in self.label.upper()

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sampling_rate


def decode_dicom(path: Path) -> Ecg:
    """The rhythm group as the signal, a median-beat group (if any) as median_beats."""
    ds = _read_dataset(path)
    try:
        _check_sop_class(path, ds)
        return _ecg_from_dataset(path, ds)
    except EcgDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for malformed values
        reason = f"malformed DICOM waveform object ({type(exc).__name__})"
        raise EcgDecodeError(path, reason) from None


def _read_dataset(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, force=True)
    except Exception as exc:  # noqa: BLE001 - truncated/garbled files fail in many ways
        raise EcgDecodeError(path, f"not a readable DICOM file ({type(exc).__name__})") from None


def _check_sop_class(path: Path, ds: Dataset) -> None:
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    if not sop_class:
        raise EcgDecodeError(path, "not a DICOM object: no SOP Class UID")
    if sop_class in PAGE_SOP_CLASSES:
        raise EcgDecodeError(
            path,
            f"a {PAGE_SOP_CLASSES[sop_class]} object is an ECG page, not a waveform: it is "
            "read as a page (received-page report, VLM engine), not decoded into samples",
        )
    if sop_class not in WAVEFORM_SOP_CLASSES:
        raise EcgDecodeError(
            path,
            f"unsupported SOP class {sop_class} ({UID(sop_class).name}); expected one of: "
            + ", ".join(WAVEFORM_SOP_CLASSES.values()),
        )


def _ecg_from_dataset(path: Path, ds: Dataset) -> Ecg:
    items = ds.get("WaveformSequence")
    if not items:
        raise EcgDecodeError(path, "no WaveformSequence: the object carries no waveform")
    little_endian = _is_little_endian(ds)
    groups = [_decode_group(path, item, i, little_endian) for i, item in enumerate(items)]
    groups = [g for g in groups if g.leads]
    if not groups:
        raise EcgDecodeError(path, "no ECG leads in any multiplex group")
    rhythm = _rhythm_group(path, groups)
    names, signal = stack_leads(rhythm.leads)
    median = next((g for g in groups if g.is_median), None)
    medians = _aligned_medians(median, names) if median else None
    return Ecg(
        signal=signal,
        sampling_rate=rhythm.sampling_rate,
        lead_names=names,
        metadata=metadata_from_dataset(ds, filters=rhythm.filters),
        median_beats=medians,
        median_sampling_rate=median.sampling_rate if medians is not None else None,
    )


def _is_little_endian(ds: Dataset) -> bool:
    """How WaveformData bytes are ordered: OW keeps the transfer syntax's byte order."""
    little = ds.original_encoding[1]
    return True if little is None else bool(little)


def _decode_group(path: Path, item: Dataset, index: int, little_endian: bool) -> _Group:
    where = f"multiplex group {index + 1}"
    channels = item.get("ChannelDefinitionSequence")
    if not channels:
        raise EcgDecodeError(path, f"{where} has no ChannelDefinitionSequence")
    n_channels = _positive_int(path, item, "NumberOfWaveformChannels", where)
    n_samples = _positive_int(path, item, "NumberOfWaveformSamples", where)
    if len(channels) != n_channels:
        raise EcgDecodeError(
            path,
            f"{where} defines {len(channels)} channels but NumberOfWaveformChannels is "
            f"{n_channels}",
        )
    sampling_rate = _sampling_rate(path, item, where)
    raw = _raw_samples(path, item, n_channels, n_samples, little_endian, where)
    leads: dict[str, np.ndarray] = {}
    for position, channel in enumerate(channels):
        named = _channel_in_mv(path, channel, raw[:, position], f"{where} channel {position + 1}")
        if named is not None:
            add_channel(leads, *named)
    return _Group(
        label=str(item.get("MultiplexGroupLabel", "") or "").strip(),
        sampling_rate=sampling_rate,
        n_samples=n_samples,
        leads=derive_limb_leads(leads),
        filters=filter_description(channels[0]),
    )


def _positive_int(path: Path, item: Dataset, keyword: str, where: str) -> int:
    value = item.get(keyword)
    if value is None or int(value) <= 0:
        raise EcgDecodeError(path, f"{where}: {keyword} is missing or zero")
    return int(value)


def _sampling_rate(path: Path, item: Dataset, where: str) -> float:
    value = item.get("SamplingFrequency")
    if value in (None, ""):
        raise EcgDecodeError(path, f"{where}: SamplingFrequency is missing")
    return checked_sampling_rate(path, float(value), where)


def _sample_dtype(path: Path, item: Dataset, little_endian: bool, where: str) -> np.dtype:
    bits = int(item.get("WaveformBitsAllocated", 0) or 0)
    encoding = str(item.get("WaveformSampleInterpretation", "") or "").strip()
    if encoding in _AUDIO_ENCODINGS:
        raise EcgDecodeError(
            path, f"{where}: sample interpretation {encoding} (audio companding) is not an ECG"
        )
    code = _SAMPLE_DTYPES.get((bits, encoding))
    if code is None:
        raise EcgDecodeError(
            path, f"{where}: unsupported sample encoding {bits}-bit {encoding or '(none)'}"
        )
    return np.dtype(code).newbyteorder("<" if little_endian else ">")


def _raw_samples(
    path: Path, item: Dataset, n_channels: int, n_samples: int, little_endian: bool, where: str
) -> np.ndarray:
    """(samples x channels) float64, padding samples (absent data) as NaN."""
    dtype = _sample_dtype(path, item, little_endian, where)
    data = item.get("WaveformData")
    if data is None:
        raise EcgDecodeError(path, f"{where} has no WaveformData")
    data = bytes(data)
    expected = n_channels * n_samples * dtype.itemsize
    # An odd byte count is padded to even length by the encoding; nothing else may differ.
    if len(data) not in (expected, expected + expected % 2):
        raise EcgDecodeError(
            path,
            f"{where}: WaveformData has {len(data)} bytes but {n_channels} channels x "
            f"{n_samples} samples x {dtype.itemsize} bytes = {expected} (truncated or corrupt)",
        )
    samples = np.frombuffer(data[:expected], dtype=dtype).reshape(n_samples, n_channels)
    values = samples.astype(np.float64)
    padding = item.get("WaveformPaddingValue")
    if padding is not None and len(bytes(padding)) >= dtype.itemsize:
        pad_value = np.frombuffer(bytes(padding)[: dtype.itemsize], dtype=dtype)[0]
        values[samples == pad_value] = np.nan
    return values


def _channel_in_mv(
    path: Path, channel: Dataset, raw: np.ndarray, where: str
) -> tuple[str, np.ndarray] | None:
    """The channel's lead name and samples in mV; None for a channel that is not an ECG
    lead (pressure, respiration...), which is logged, not decoded."""
    lead = _lead_name(channel)
    label = lead or _channel_label(channel, where)
    unit = _sensitivity_unit(channel)
    per_unit = millivolts_per_unit(unit)
    has_sensitivity = channel.get("ChannelSensitivity") not in (None, "")
    if lead is None and (per_unit is None or not has_sensitivity):
        log.info("%s (%s, units %s) is not an ECG lead; skipped", where, label, unit or "none")
        return None
    if not has_sensitivity:
        raise EcgDecodeError(
            path, f"{where} ({label}) has no ChannelSensitivity: amplitude unknown"
        )
    if per_unit is None:
        raise EcgDecodeError(
            path, f"{where} ({label}) sensitivity units {unit or '(none)'!r} are not a voltage"
        )
    sensitivity = float(channel.ChannelSensitivity)
    correction = float(channel.get("ChannelSensitivityCorrectionFactor", 1) or 1)
    baseline = float(channel.get("ChannelBaseline", 0) or 0)
    # PS3.3 C.10.9.1.4: ChannelBaseline is the offset of sample value 0 from true 0 in the
    # sensitivity units, so it is added after scaling (as pydicom's own helper does).
    return label, (raw * sensitivity * correction + baseline) * per_unit


def _lead_name(channel: Dataset) -> str | None:
    """Standard lead name from the coded source, else its meaning, else ChannelLabel."""
    for source in channel.get("ChannelSourceSequence") or []:
        name = lead_from_code(source.get("CodingSchemeDesignator"), source.get("CodeValue"))
        name = name or lead_from_text(source.get("CodeMeaning"))
        if name:
            return name
    return lead_from_text(channel.get("ChannelLabel"))


def _channel_label(channel: Dataset, where: str) -> str:
    for source in channel.get("ChannelSourceSequence") or []:
        if source.get("CodeMeaning"):
            return str(source.CodeMeaning).strip()
    return str(channel.get("ChannelLabel", "") or "").strip() or where


def _sensitivity_unit(channel: Dataset) -> str | None:
    units = channel.get("ChannelSensitivityUnitsSequence") or []
    if not units:
        return None
    return str(units[0].get("CodeValue", "") or "").strip() or None


def _rhythm_group(path: Path, groups: list[_Group]) -> _Group:
    """The group labelled RHYTHM, else the longest non-median one."""
    candidates = [g for g in groups if not g.is_median]
    if not candidates:
        raise EcgDecodeError(path, "only median-beat waveforms, no rhythm recording")
    labelled = [g for g in candidates if g.label.upper() == "RHYTHM"]
    return labelled[0] if labelled else max(candidates, key=lambda g: g.duration_s)


def _aligned_medians(median: _Group, names: tuple[str, ...]) -> np.ndarray | None:
    """Median beats in the rhythm's lead order; None (logged) if a lead has no median."""
    missing = [name for name in names if name not in median.leads]
    if missing:
        log.info("median beats lack leads %s; median beats not used", ", ".join(missing))
        return None
    return np.stack([median.leads[name] for name in names])
