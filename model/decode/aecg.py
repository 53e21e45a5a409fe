"""HL7 v3 annotated ECG (aECG, FDA submissions, Mortara/Welch Allyn exports) -> Ecg.

The FDA's reader (aecg-python) needs Python 3.12 and returns pandas frames for review
tools, not calibrated arrays with checked limits; BioSig (C, Debian biosig-tools) reads it
as a command-line converter and is the second implementation in the tests. So the format
is read here: the rhythm
series' sequence set (a GLIST time sequence, one SLIST_PQ per lead: value = origin +
scale x digit), the REPRESENTATIVE_BEAT derived series as median beats, and the
annotations: global numeric ones (PR, QRS, QT, axes...) as the device's measurements,
coded and text ones (rhythm, interpretation statements) as its statements. Per-beat wave
boundaries are not carried: the Ecg type has no place for fiducials.
"""

from __future__ import annotations

import warnings
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
from model.decode.leads import add_channel, lead_from_code, stack_leads
from model.decode.units import millivolts_per_unit
from model.decode.xml_document import find, findall, xml_number
from model.ecg import Ecg, EcgMetadata, derive_limb_leads
from model.errors import raise_field_error

FORMAT = "HL7 aECG"
HL7 = "{urn:hl7-org:v3}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MAX_LEADS = 24
# A digit and its separator take at least 2 characters and a 16-bit one at most 7: text
# longer than this cannot hold MAX_SAMPLES_PER_LEAD digits, and is refused before parsing.
MAX_DIGIT_CHARS = 8 * MAX_SAMPLES_PER_LEAD
MAX_SCALE_UV = 1000.0
_TIME_CODES = ("TIME_ABSOLUTE", "TIME_RELATIVE")
_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
AGE_LOINC = "21612-7"
# Annotation codes of global measurements -> Measurements keys (MDC, IEEE 11073-10102).
MEASUREMENT_CODES = {
    "MDC_ECG_HEART_RATE": "heart_rate_bpm",
    "MDC_ECG_TIME_PD_RR": "rr_ms",
    "MDC_ECG_TIME_PD_P": "p_duration_ms",
    "MDC_ECG_TIME_PD_PR": "pr_ms",
    "MDC_ECG_TIME_PD_QRS": "qrs_ms",
    "MDC_ECG_TIME_PD_QT": "qt_ms",
    "MDC_ECG_TIME_PD_QTc": "qtc_ms",
    "MDC_ECG_TIME_PD_QTcB": "qtc_bazett_ms",
    "MDC_ECG_TIME_PD_QTcF": "qtc_fridericia_ms",
    "MDC_ECG_ANGLE_P_FRONT": "p_axis_deg",
    "MDC_ECG_ANGLE_QRS_FRONT": "qrs_axis_deg",
    "MDC_ECG_ANGLE_T_FRONT": "t_axis_deg",
}
_SKIPPED_ANNOTATIONS = ("MDC_ECG_BEAT", "MDC_ECG_WAVC")  # per-beat containers and waves


_fail = partial(raise_field_error, FORMAT)
_find = partial(find, namespace=HL7)
_findall = partial(findall, namespace=HL7)


def decode_aecg(path: Path, root: Element) -> Ecg:
    """The RHYTHM series as the signal, its REPRESENTATIVE_BEAT derivation as median beats."""
    series = _rhythm_series(path, root)
    rate, leads = _sequence_set(path, series, "rhythm series")
    names, signal = stack_leads(derive_limb_leads(leads))
    median_rate, medians = _median_beats(path, series, names)
    return Ecg(signal, rate, names, _metadata(root, series), medians, median_rate)


def _attribute(element: Element | None, steps: str, name: str) -> str | None:
    found = _find(element, steps) if steps else element
    value = found.get(name) if found is not None else None
    return value.strip() if value and value.strip() else None


def _code(element: Element) -> str:
    return _attribute(element, "code", "code") or ""


def _rhythm_series(path: Path, root: Element) -> Element:
    series = _findall(root, "component/series")
    if not series:
        _fail(path, "series", "the document has no component/series (no waveform)")
    rhythm = [s for s in series if _code(s) == "RHYTHM"]
    return (rhythm or series)[0]


def _sequence_set(path: Path, series: Element, where: str) -> tuple[float, dict]:
    """The sampling rate and each lead in mV, keyed by standard name."""
    sequences = _findall(series, "component/sequenceSet/component/sequence")
    time = [s for s in sequences if _code(s) in _TIME_CODES]
    if not time:
        _fail(path, f"{where} time sequence", "no TIME_ABSOLUTE or TIME_RELATIVE sequence")
    rate = _rate(path, time[0], where)
    leads: dict[str, np.ndarray] = {}
    lead_sequences = [s for s in sequences if s not in time]
    if len(lead_sequences) > MAX_LEADS:
        _fail(path, where, f"{len(lead_sequences)} lead sequences; at most {MAX_LEADS} allowed")
    for sequence in lead_sequences:
        name = _lead_name(sequence)
        if name is None:
            continue  # not an ECG lead (e.g. a pressure sequence)
        add_channel(leads, name, _lead_samples(path, sequence, f"{where} lead {name}"))
    if not leads:
        _fail(path, where, "no sequence with an MDC ECG lead code")
    lengths = [len(samples) for samples in leads.values()]
    usual = max(set(lengths), key=lengths.count)
    odd = [f"{name} holds {len(s)}" for name, s in leads.items() if len(s) != usual]
    if odd:
        _fail(path, where, f"lead {', '.join(odd)} samples where the others hold {usual}")
    return rate, leads


def _rate(path: Path, time: Element, where: str) -> float:
    increment = _find(time, "value/increment")
    value = xml_number(increment.get("value")) if increment is not None else None
    unit = (increment.get("unit") or "s") if increment is not None else "s"
    if value is None or unit not in _SECONDS or value <= 0:
        _fail(
            path,
            f"{where} time increment",
            f"{value if value is not None else 'missing'} {unit} is not a sampling interval",
        )
    return checked_sampling_rate(path, 1.0 / (value * _SECONDS[unit]), f"{FORMAT} {where}")


def _lead_name(sequence: Element) -> str | None:
    code = _find(sequence, "code")
    return lead_from_code("MDC", code.get("code")) if code is not None else None


def _lead_samples(path: Path, sequence: Element, where: str) -> np.ndarray:
    value = _find(sequence, "value")
    if value is None or value.get(XSI_TYPE, "SLIST_PQ").split(":")[-1] != "SLIST_PQ":
        _fail(path, where, "value is not an SLIST_PQ (origin, scale, digits)")
    origin = _quantity_mv(path, _find(value, "origin"), f"{where} origin", default=0.0)
    scale = _quantity_mv(path, _find(value, "scale"), f"{where} scale", default=None)
    if not 0 < scale <= MAX_SCALE_UV / 1000:
        _fail(path, f"{where} scale", f"{scale * 1000:g} uV per digit is not in (0, 1000]")
    digits_element = _find(value, "digits")
    text = (digits_element.text or "") if digits_element is not None else ""
    if len(text) > MAX_DIGIT_CHARS:
        _fail(
            path,
            f"{where} digits",
            f"{len(text)} characters exceed the limit for {MAX_SAMPLES_PER_LEAD} samples",
        )
    digits = _parse_digits(path, text, where)
    return origin + scale * digits


def _parse_digits(path: Path, text: str, where: str) -> np.ndarray:
    """Whitespace-separated numbers, parsed by numpy without a Python object per digit."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns, not raises, on a non-number
        try:
            digits = np.fromstring(text, dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            _fail(path, f"{where} digits", "holds a value that is not a number")
    if not digits.size:
        _fail(path, f"{where} digits", "empty")
    if digits.size > MAX_SAMPLES_PER_LEAD:
        _fail(path, f"{where} digits", f"{digits.size} samples exceed the limit")
    if not np.all(np.isfinite(digits)):
        _fail(path, f"{where} digits", "holds a value that is not finite")
    return digits


def _quantity_mv(path: Path, element: Element | None, where: str, default: float | None) -> float:
    if element is None:
        if default is None:
            _fail(path, where, "missing")
        return default
    value, unit = xml_number(element.get("value")), element.get("unit") or ""
    per_unit = millivolts_per_unit(unit)
    if value is None or per_unit is None:
        _fail(path, where, f"{element.get('value')!r} {unit!r} is not a voltage")
    return value * per_unit


def _median_beats(
    path: Path, series: Element, names: tuple[str, ...]
) -> tuple[float | None, np.ndarray | None]:
    for derived in _findall(series, "derivation/derivedSeries"):
        if _code(derived) != "REPRESENTATIVE_BEAT":
            continue
        rate, leads = _sequence_set(path, derived, "representative beat series")
        leads = derive_limb_leads(leads)
        if all(name in leads for name in names):
            return rate, np.stack([leads[name] for name in names])
    return None, None


def _metadata(root: Element, series: Element) -> EcgMetadata:
    subject = _find(root, "componentOf/timepointEvent/componentOf/subjectAssignment/subject")
    trial_subject = _find(subject, "trialSubject")
    person = _find(trial_subject, "subjectDemographicPerson")
    birth = _attribute(person, "birthTime", "value")
    birth_date = dicom_date((birth or "")[:8])
    device = _find(series, "author/seriesAuthor")
    center = _attribute(root, "effectiveTime/center", "value")
    low = _attribute(series, "effectiveTime/low", "value")
    measurements, statements = annotations(root)
    return EcgMetadata(
        patient_id=_attribute(trial_subject, "id", "extension"),
        patient_name=_person_name(_find(person, "name")),
        patient_birth_date=birth_date,
        patient_sex=sex_code(_attribute(person, "administrativeGenderCode", "code")),
        patient_age=_age(root),
        acquisition_time=hl7_time(low or center),
        device_manufacturer=_text(device, "manufacturerOrganization/name"),
        device_model=_text(device, "manufacturedSeriesDevice/manufacturerModelName"),
        device_serial=_attribute(device, "manufacturedSeriesDevice/id", "extension"),
        modality="ECG",
        filters=_filters(series),
        source_format="hl7-aecg",
        warnings=(BIRTH_DATE_LEFT_OUT,) if birth and not birth_date else (),
        device_measurements=measurements,
        device_statements=statements,
    )


def _text(element: Element | None, steps: str) -> str | None:
    found = _find(element, steps)
    text = "".join(found.itertext()).strip() if found is not None else ""
    return text or None


def _person_name(name: Element | None) -> str | None:
    """DICOM PN (family^given) from an HL7 PN's parts, or its text when it has none."""
    if name is None:
        return None
    family, given = _text(name, "family"), _text(name, "given")
    if family or given:
        return f"{family or ''}^{given}" if given else family
    return "".join(name.itertext()).strip() or None


def _age(root: Element) -> str | None:
    for observation in _findall(root, "controlVariable/relatedObservation"):
        if _code(observation) == AGE_LOINC:
            value = _find(observation, "value")
            if value is not None and value.get("unit") in ("a", "mo", "wk", "d"):
                unit = {"a": "Y", "mo": "M", "wk": "W", "d": "D"}[value.get("unit")]
                number = xml_number(value.get("value"))
                return age_string(int(number), unit) if number is not None else None
    return None


def hl7_time(text: str | None) -> datetime | None:
    """An HL7 TS (YYYYMMDDHHMMSS[.fff][+ZZZZ]) as a datetime; None when absent or invalid."""
    if not text:
        return None
    digits = text.split("+")[0].split("-")[0]
    whole, _, fraction = digits.partition(".")
    try:
        stamp = datetime.strptime(whole[:14], "%Y%m%d%H%M%S"[: _format_length(len(whole))])
    except ValueError:
        return None
    if fraction.isdigit():
        stamp = stamp.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return stamp


def _format_length(digits: int) -> int:
    """How much of '%Y%m%d%H%M%S' a TS of `digits` digits uses (8 -> '%Y%m%d')."""
    return {4: 2, 6: 4, 8: 6, 10: 8, 12: 10}.get(digits, 12)


def _filters(series: Element) -> str | None:
    values: dict[str, float] = {}
    for outer in _findall(series, "controlVariable/controlVariable"):
        for inner in _findall(outer, "component/controlVariable"):
            number = xml_number(_attribute(inner, "value", "value"))
            if number is not None:
                values[f"{_code(outer)}/{_code(inner)}"] = number
    prefix = "MDC_ECG_CTL_VBL_ATTR_FILTER_"
    return describe_filters(
        values.get(f"{prefix}HIGH_PASS/{prefix}CUTOFF_FREQ"),
        values.get(f"{prefix}LOW_PASS/{prefix}CUTOFF_FREQ"),
        values.get(f"{prefix}NOTCH/{prefix}NOTCH_FREQ"),
    )


def annotations(root: Element) -> tuple[tuple[tuple[str, float], ...], tuple[str, ...]]:
    """The device's global measurements and statements from every annotation set.

    Values of the representative-beat series come first (they are the global ones), then
    the rhythm series' in document order; the first value of a measurement wins."""
    sets = _findall(root, "component/series/derivation/derivedSeries/subjectOf/annotationSet")
    sets += _findall(root, "component/series/subjectOf/annotationSet")
    measurements: dict[str, float] = {}
    statements: list[str] = []
    for annotation_set in sets:
        for annotation in annotation_set.iter(HL7 + "annotation"):
            _read_annotation(annotation, measurements, statements)
    return tuple(measurements.items()), tuple(dict.fromkeys(statements))


def _read_annotation(annotation: Element, measurements: dict, statements: list) -> None:
    code = _code(annotation)
    value = _find(annotation, "value")
    if value is None or code.startswith(_SKIPPED_ANNOTATIONS):
        return
    kind = value.get(XSI_TYPE, "").split(":")[-1]
    if kind == "PQ" and code in MEASUREMENT_CODES:
        number = xml_number(value.get("value"))
        unit = value.get("unit") or ""
        if number is not None and unit == "s" and MEASUREMENT_CODES[code].endswith("_ms"):
            number *= 1000
        if number is not None:
            measurements.setdefault(MEASUREMENT_CODES[code], number)
    elif kind in ("CE", "CD", "CV"):
        label = value.get("displayName") or value.get("code")
        if label:
            statements.append(label)
    elif kind == "ST":
        text = "".join(value.itertext()).strip()
        if text:
            statements.append(text)
