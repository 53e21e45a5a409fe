"""Philips Sierra/PhilipsECG XML 1.03 and 1.04 (PageWriter, TraceMaster, HeartStart) -> Ecg.

The rhythm is `parsedwaveforms`: Base64, usually XLI-compressed (model.decode.xli), in
which leads III, aVR, aVL and aVF are stored as residuals of their prediction from I and
II and are rebuilt here (as sierra-ecg-tools does); uncompressed 8- and 16-bit and
'Plain' text samples are read too. The trailing calibration pulse is cut off.
Representative beats become the median beats. The cart's own global measurements and
statements are kept in the metadata, never as the gateway's interpretation.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from functools import partial
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from model.decode.acquisition import (
    MAX_SAMPLES_PER_LEAD,
    checked_sampling_rate,
    describe_filters,
)
from model.decode.demographics import BIRTH_DATE_LEFT_OUT, age_string, dicom_date, sex_code
from model.decode.leads import add_channel, lead_from_text, stack_leads
from model.decode.xli import XliError, xli_decode
from model.decode.xml_document import find, findall, xml_number
from model.ecg import STANDARD_LEADS, Ecg, EcgMetadata
from model.errors import raise_field_error

FORMAT = "Philips Sierra XML"
NAMESPACE = "{http://www3.medical.philips.com}"
VERSIONS = ("1.03", "1.04", "1.04.01", "1.04.02")
# XLI carries up to 16 channels (the DXL algorithm's); a resting ECG is at most 15 leads.
MAX_LEADS = 16
MAX_DURATION_MS = 600_000  # a resting ECG is 10-24 s; samples are capped besides
MAX_RESOLUTION_UV = 1000.0  # one bit above 1 mV would make every ECG a few steps tall
_LIMB_LEADS = STANDARD_LEADS[:6]
_SAMPLE_TYPES = {8: np.int8, 16: np.dtype("<i2")}
# The cart's global measurements, tag -> Measurements key; the first tag present wins.
_MEASUREMENTS = (
    ("heartrate", "heart_rate_bpm"),
    ("meanventrate", "heart_rate_bpm"),
    ("rrint", "rr_ms"),
    ("pdur", "p_duration_ms"),
    ("print", "pr_ms"),
    ("meanprint", "pr_ms"),
    ("qrsdur", "qrs_ms"),
    ("meanqrsdur", "qrs_ms"),
    ("qtint", "qt_ms"),
    ("meanqtint", "qt_ms"),
    ("qtcb", "qtc_bazett_ms"),
    ("qtcf", "qtc_fridericia_ms"),
    ("meanqtc", "qtc_ms"),  # 1.03 names no correction formula
    ("pfrontaxis", "p_axis_deg"),
    ("qrsfrontaxis", "qrs_axis_deg"),
    ("tfrontaxis", "t_axis_deg"),
)


_fail = partial(raise_field_error, FORMAT)
_find = partial(find, namespace=NAMESPACE)
_findall = partial(findall, namespace=NAMESPACE)


def decode_philips(path: Path, root: Element) -> Ecg:
    """The parsed waveforms as the signal, representative beats (if any) as median beats."""
    version = _text(root, "documentinfo/documentversion") or "?"
    if version not in VERSIONS:
        _fail(path, "documentversion", f"{version} is not supported ({', '.join(VERSIONS)})")
    signal = _find(root, "dataacquisition/signalcharacteristics")
    waveforms = _find(root, "waveforms/parsedwaveforms")
    if signal is None or waveforms is None:
        _fail(path, "parsedwaveforms", "no signalcharacteristics or parsedwaveforms element")
    rate = _sampling_rate(path, signal, waveforms)
    leads = _rhythm(path, signal, waveforms, rate)
    names, samples = stack_leads(leads)
    median_rate, medians = _median_beats(path, root, names)
    return Ecg(samples, rate, names, _metadata(root, signal), medians, median_rate)


def _text(element: Element | None, steps: str) -> str | None:
    found = _find(element, steps)
    text = (found.text or "").strip() if found is not None else ""
    return text or None


def _sampling_rate(path: Path, signal: Element, waveforms: Element) -> float:
    rate = xml_number(waveforms.get("samplespersecond"))
    rate = xml_number(_text(signal, "samplingrate")) if rate is None else rate
    if rate is None:
        _fail(path, "samplingrate", "missing or not a number")
    return checked_sampling_rate(path, rate, f"{FORMAT} samplingrate")


def _rhythm(path: Path, signal: Element, waveforms: Element, rate: float) -> dict:
    """Each lead in mV, keyed by standard name."""
    duration = xml_number(waveforms.get("durationperchannel"))
    if duration is None or not 0 < duration <= MAX_DURATION_MS:
        _fail(
            path,
            "durationperchannel",
            f"{waveforms.get('durationperchannel')!r} ms is not a duration of "
            f"1-{MAX_DURATION_MS} ms",
        )
    n_samples = round(duration * rate / 1000)
    if n_samples > MAX_SAMPLES_PER_LEAD:
        _fail(
            path,
            "durationperchannel",
            f"{duration:g} ms at {rate:g} Hz is {n_samples} samples per lead, over the "
            f"{MAX_SAMPLES_PER_LEAD} limit",
        )
    labels = _lead_labels(path, signal, waveforms)
    raw = _raw_leads(path, waveforms, len(labels), n_samples)
    if len(raw) != len(labels):
        _fail(
            path,
            "parsedwaveforms",
            f"holds {len(raw)} leads but the file declares {len(labels)} ({' '.join(labels)})",
        )
    if _is_xli(waveforms) and tuple(labels[:6]) == _LIMB_LEADS:
        _rebuild_limb_leads(raw)
    resolution = _resolution(path, signal, waveforms)
    raw = _without_calibration_pulse(raw, resolution)
    leads: dict[str, np.ndarray] = {}
    for label, samples in zip(labels, raw, strict=True):
        add_channel(leads, lead_from_text(label) or label, samples * resolution / 1000.0)
    return leads


def _lead_labels(path: Path, signal: Element, waveforms: Element) -> list[str]:
    """1.04 names its leads; 1.03 implies them from the acquisition type."""
    declared = waveforms.get("numberofleads") or _text(signal, "numberchannelsallocated")
    count = xml_number(declared)
    if count is None or not 1 <= count <= MAX_LEADS or count != int(count):
        _fail(path, "numberofleads", f"{declared!r} is not a lead count of 1-{MAX_LEADS}")
    count = int(count)
    labels = (waveforms.get("leadlabels") or "").split()
    if labels:
        if len(labels) < count:
            _fail(path, "leadlabels", f"names {len(labels)} leads but numberofleads is {count}")
        return labels[:count]
    if (_text(signal, "acquisitiontype") or "") in ("STD-12", "10-WIRE") and count <= 12:
        return list(STANDARD_LEADS[:count])
    return [f"Channel {index + 1}" for index in range(count)]


def _is_xli(waveforms: Element) -> bool:
    method = waveforms.get("compressmethod") or waveforms.get("compression") or ""
    flag = waveforms.get("compressflag")
    return method.upper() == "XLI" and (flag is None or flag.lower() == "true")


def _raw_leads(path: Path, waveforms: Element, n_leads: int, n_samples: int) -> list:
    encoding = waveforms.get("dataencoding") or "Base64"
    text = waveforms.text or ""
    if encoding == "Plain":
        return _plain_leads(path, text, n_leads, n_samples)
    if encoding != "Base64":
        _fail(path, "dataencoding", f"{encoding!r} is not Base64 or Plain")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        _fail(path, "parsedwaveforms", "not valid Base64")
    if _is_xli(waveforms):
        try:
            return xli_decode(data, min(n_leads, MAX_LEADS), n_samples)
        except XliError as exc:
            _fail(path, "parsedwaveforms (XLI)", str(exc))
    method = waveforms.get("compressmethod") or waveforms.get("compression") or "Uncompressed"
    if method.upper() not in ("UNCOMPRESSED", "NONE", "XLI"):
        _fail(path, "compression", f"{method!r} is not XLI or uncompressed")
    return _uncompressed_leads(path, waveforms, data, n_leads, n_samples)


def _uncompressed_leads(
    path: Path, waveforms: Element, data: bytes, n_leads: int, n_samples: int
) -> list:
    bits_text = waveforms.get("bitspersample") or waveforms.get("nbitspersample") or "16"
    dtype = _SAMPLE_TYPES.get(int(xml_number(bits_text) or 0))
    if dtype is None:
        _fail(path, "bitspersample", f"{bits_text!r} is not 8 or 16")
    expected = n_leads * n_samples * np.dtype(dtype).itemsize
    if len(data) != expected:
        _fail(
            path,
            "parsedwaveforms",
            f"{len(data)} bytes but {n_leads} leads x {n_samples} samples x "
            f"{np.dtype(dtype).itemsize} bytes = {expected} (truncated or corrupt)",
        )
    samples = np.frombuffer(data, dtype=dtype).astype(np.int64)
    return list(samples.reshape(n_leads, n_samples))


def _plain_leads(path: Path, text: str, n_leads: int, n_samples: int) -> list:
    words = text.split()
    if len(words) != n_leads * n_samples:
        _fail(
            path,
            "parsedwaveforms",
            f"{len(words)} values but {n_leads} leads x {n_samples} samples (truncated)",
        )
    try:
        samples = np.array(words, dtype=np.int64)
    except (ValueError, OverflowError):
        _fail(path, "parsedwaveforms", "Plain data holds a value that is not an integer")
    return list(samples.reshape(n_leads, n_samples))


def _rebuild_limb_leads(raw: list) -> None:
    """XLI stores III, aVR, aVL, aVF as the residual of their prediction from I and II."""
    one, two = raw[0], raw[1]
    raw[2] = two - one - raw[2]
    three = raw[2]
    raw[3] = -raw[3] - (one + two) // 2
    raw[4] = (one - three) // 2 - raw[4]
    raw[5] = (two + three) // 2 - raw[5]


def _without_calibration_pulse(raw: list, resolution: float) -> list:
    """The leads without the cart's trailing 1 mV calibration mark.

    PageWriter files carry 11 s per lead: the ECG, then every lead at exactly 0 with a
    1 mV square pulse in it. Left in, the pulse reads as clipping or a beat; it is cut at
    the first sample from which all leads hold only 0 and the pulse value. Nothing is cut
    when there is no such pulse."""
    pulse = round(1000.0 / resolution)
    stacked = np.stack(raw)
    marks = np.all((stacked == 0) | (stacked == pulse), axis=0)
    if not marks[-1]:
        return raw
    tail = np.flatnonzero(~marks)
    start = int(tail[-1]) + 1 if len(tail) else 0
    if start == 0 or not np.any(stacked[:, start:] == pulse):
        return raw
    return [lead[:start] for lead in raw]


def _resolution(path: Path, signal: Element, waveforms: Element) -> float:
    """Microvolts per bit."""
    text = (
        waveforms.get("resolution")
        or _text(signal, "resolution")
        or _text(signal, "signalresolution")
    )
    value = xml_number(text)
    if value is None or not 0 < value <= MAX_RESOLUTION_UV:
        _fail(path, "resolution", f"{text!r} uV per bit is not in (0, {MAX_RESOLUTION_UV:g}]")
    return value


def _median_beats(
    path: Path, root: Element, names: tuple[str, ...]
) -> tuple[float | None, np.ndarray | None]:
    """Representative beats in the rhythm's lead order; None when the file has none, or not
    for every lead, or (1.03) without a sampling rate."""
    block = _find(root, "waveforms/repbeats")
    if block is None:
        return None, None
    rate = xml_number(block.get("samplespersec"))
    resolution = xml_number(block.get("resolution"))
    if not rate or not resolution:
        return None, None
    rate = checked_sampling_rate(path, rate, f"{FORMAT} repbeats samplespersec")
    if not 0 < resolution <= MAX_RESOLUTION_UV:
        _fail(path, "repbeats resolution", f"{resolution:g} uV per bit is not plausible")
    beats: dict[str, np.ndarray] = {}
    for beat in _findall(block, "repbeat"):
        name = lead_from_text(beat.get("leadname")) or beat.get("leadname") or "?"
        waveform = _find(beat, "waveform")
        text = (waveform if waveform is not None else beat).text or ""
        try:
            data = base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            _fail(path, f"repbeat {name}", "not valid Base64")
        if len(data) % 2:
            _fail(path, f"repbeat {name}", f"odd byte count {len(data)} for 16-bit samples")
        beats[name] = np.frombuffer(data, dtype="<i2") * resolution / 1000.0
    lengths = {len(beats.get(name, ())) for name in names}
    if len(lengths) != 1 or 0 in lengths:
        return None, None
    return rate, np.stack([beats[name] for name in names])


def _metadata(root: Element, signal: Element) -> EcgMetadata:
    patient = _find(root, "patient/generalpatientdata")
    acquisition = _find(root, "dataacquisition")
    machine = _find(root, "dataacquisition/machine")
    birth_text = _text(patient, "age/dateofbirth")
    birth_date = dicom_date((birth_text or "").replace("-", ""))
    return EcgMetadata(
        patient_id=_text(patient, "patientid"),
        patient_name=_person_name(
            _text(patient, "name/lastname"), _text(patient, "name/firstname")
        ),
        patient_birth_date=birth_date,
        patient_sex=sex_code(_text(patient, "sex")),
        patient_age=age_string(_text(patient, "age/years")),
        acquisition_time=_acquired(acquisition),
        device_manufacturer="Philips",
        device_model=(machine.text or "").strip() or None if machine is not None else None,
        device_serial=machine.get("machineid") if machine is not None else None,
        institution_name=_text(root, "dataacquisition/acquirer/institutionname"),
        modality="ECG",
        filters=_filters(root, signal),
        source_format="philips-xml",
        warnings=(BIRTH_DATE_LEFT_OUT,) if birth_text and not birth_date else (),
        device_measurements=_device_measurements(root),
        device_statements=_device_statements(root),
    )


def _person_name(last: str | None, first: str | None) -> str | None:
    if not last and not first:
        return None
    return f"{last or ''}^{first}" if first else last


def _acquired(acquisition: Element | None) -> datetime | None:
    if acquisition is None:
        return None
    try:
        return datetime.fromisoformat(f"{acquisition.get('date')}T{acquisition.get('time')}")
    except (TypeError, ValueError):
        return None


def _filters(root: Element, signal: Element) -> str | None:
    band = _find(root, "reportinfo/reportbandwidth")
    return describe_filters(
        xml_number(_text(signal, "hipass") or _text(band, "highpassfiltersetting")),
        xml_number(_text(signal, "lowpass") or _text(band, "lowpassfiltersetting")),
        xml_number(_text(signal, "acsetting") or _text(band, "notchfiltersetting")),
    )


def _device_measurements(root: Element) -> tuple[tuple[str, float], ...]:
    """The interpretation's global measurements (1.04) or interpretation measurements (1.03),
    else the measurement program's global block; values that are not numbers are left out."""
    blocks = [
        _find(root, "interpretations/interpretation/globalmeasurements"),
        _find(root, "interpretations/interpretation/interpretationmeasurements"),
        _find(root, "measurements/globalmeasurements"),
        _find(root, "internalmeasurements/crossleadmeasurements"),
    ]
    found: dict[str, float] = {}
    for block in (b for b in blocks if b is not None):
        for tag, key in _MEASUREMENTS:
            value = xml_number(_text(block, tag))
            if value is not None and key not in found:
                found[key] = value
    return tuple(found.items())


def _device_statements(root: Element) -> tuple[str, ...]:
    """'Sinus bradycardia (rate< 50)', then the severity line ('- ABNORMAL ECG -')."""
    interpretation = _find(root, "interpretations/interpretation")
    if interpretation is None:
        return ()
    statements = []
    for statement in _findall(interpretation, "statement"):
        left, right = _text(statement, "leftstatement"), _text(statement, "rightstatement")
        if left or right:
            statements.append(f"{left} ({right})" if left and right else left or right)
    severity = _text(interpretation, "severity")
    return tuple(statements + ([severity] if severity else []))
