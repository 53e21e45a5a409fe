"""Ecg -> HL7 v3 annotated ECG (aECG) XML, the form the FDA ECG warehouse and research
tools exchange (`ecg-gateway convert IN -o OUT.xml`).

The document follows the HL7 aECG implementation guide's structure, as in the HL7 ballot
example: AnnotatedECG with id, code and effectiveTime; the subject under
componentOf/timepointEvent/.../trialSubject; one RHYTHM series whose sequence set holds a
TIME_ABSOLUTE GLIST_TS and one SLIST_PQ per lead (MDC lead codes, origin 0 uV, the
finest scale that keeps the lead in 16-bit digits); the median beats as a
REPRESENTATIVE_BEAT derived series; the device's own measurements and statements, when
the source had them, as an annotation set.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from xml.etree.ElementTree import Element, SubElement, indent, tostring

import numpy as np

from model.decode.acquisition import parse_filters
from model.decode.aecg import MEASUREMENT_CODES
from model.dicom_write import sensitivity_uv
from model.ecg import Ecg, EcgMetadata

HL7_NS = "urn:hl7-org:v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ACT_CODE = "2.16.840.1.113883.5.4"
MDC = "2.16.840.1.113883.6.24"
CPT = "2.16.840.1.113883.6.12"
GENDER = "2.16.840.1.113883.5.1"
LOINC = "2.16.840.1.113883.6.1"
_DIGITS_PER_LINE = 20
_CODES_BY_KEY = {key: code for code, key in MEASUREMENT_CODES.items()}
_MDC_LEAD_NAMES = {"aVR": "AVR", "aVL": "AVL", "aVF": "AVF"}


def ecg_to_aecg(ecg: Ecg) -> bytes:
    """The aECG document as UTF-8 bytes with an XML declaration."""
    meta = ecg.metadata
    start = meta.acquisition_time or datetime.now()
    root = Element("AnnotatedECG", {"xmlns": HL7_NS, "xmlns:xsi": XSI_NS, "type": "Observation"})
    SubElement(root, "id", root=str(uuid.uuid4()))
    SubElement(root, "code", code="93000", codeSystem=CPT, codeSystemName="CPT-4")
    SubElement(SubElement(root, "effectiveTime"), "center", value=_ts(start))
    _add_subject(root, meta)
    series = SubElement(SubElement(root, "component"), "series")
    _series_header(series, "RHYTHM", "Rhythm Waveforms", start, ecg.duration_s, meta)
    _filters(series, meta.filters)
    _sequence_set(series, ecg.signal, ecg.sampling_rate, ecg.lead_names, start)
    if ecg.median_beats is not None:
        derived = SubElement(SubElement(series, "derivation"), "derivedSeries")
        _series_header(
            derived, "REPRESENTATIVE_BEAT", "Representative Beat Waveforms", start, 0, meta
        )
        _sequence_set(derived, ecg.median_beats, ecg.median_sampling_rate, ecg.lead_names, None)
    _annotations(series, meta)
    indent(root, space=" ")
    return tostring(root, encoding="utf-8", xml_declaration=True)


def _ts(stamp: datetime) -> str:
    return stamp.strftime("%Y%m%d%H%M%S") + f".{stamp.microsecond // 1000:03d}"


def _add_subject(root: Element, meta: EcgMetadata) -> None:
    assignment = _path(root, "componentOf/timepointEvent/componentOf/subjectAssignment")
    subject = _path(assignment, "subject/trialSubject")
    if meta.patient_id:
        SubElement(subject, "id", extension=meta.patient_id)
    else:
        SubElement(subject, "id", nullFlavor="UNK")
    person = SubElement(subject, "subjectDemographicPerson")
    if meta.patient_name:
        family, _, given = meta.patient_name.partition("^")
        name = SubElement(person, "name")
        SubElement(name, "family").text = family
        if given:
            SubElement(name, "given").text = given.split("^")[0]
    if meta.patient_sex:
        SubElement(person, "administrativeGenderCode", code=meta.patient_sex, codeSystem=GENDER)
    if meta.patient_birth_date:
        SubElement(person, "birthTime", value=meta.patient_birth_date)
    trial = _path(assignment, "componentOf/clinicalTrial")
    SubElement(trial, "id", nullFlavor="NA")  # required; a clinical ECG is in no trial
    if meta.patient_age and meta.patient_age.endswith("Y"):
        observation = _path(root, "controlVariable/relatedObservation")
        SubElement(observation, "code", code="21612-7", codeSystem=LOINC, displayName="Age")
        SubElement(
            observation,
            "value",
            {"xsi:type": "PQ", "value": str(int(meta.patient_age[:3])), "unit": "a"},
        )


def _path(parent: Element, steps: str) -> Element:
    for step in steps.split("/"):
        parent = SubElement(parent, step)
    return parent


def _series_header(
    series: Element, code: str, name: str, start: datetime, duration_s: float, meta: EcgMetadata
) -> None:
    SubElement(series, "id", root=str(uuid.uuid4()))
    SubElement(series, "code", code=code, codeSystem=ACT_CODE, displayName=name)
    period = SubElement(series, "effectiveTime")
    SubElement(period, "low", value=_ts(start), inclusive="true")
    end = start + timedelta(seconds=duration_s)
    SubElement(period, "high", value=_ts(end), inclusive="false")
    if meta.device_model or meta.device_manufacturer:
        author = _path(series, "author/seriesAuthor")
        device = SubElement(author, "manufacturedSeriesDevice")
        if meta.device_serial:
            SubElement(device, "id", extension=meta.device_serial)
        if meta.device_model:
            SubElement(device, "manufacturerModelName").text = meta.device_model
        if meta.device_manufacturer:
            _path(author, "manufacturerOrganization/name").text = meta.device_manufacturer


def _filters(series: Element, description: str | None) -> None:
    """The filter settings as MDC control variables, as the HL7 example carries them."""
    prefix = "MDC_ECG_CTL_VBL_ATTR_FILTER_"
    settings = {
        "high_pass": ("HIGH_PASS", "CUTOFF_FREQ"),
        "low_pass": ("LOW_PASS", "CUTOFF_FREQ"),
        "notch": ("NOTCH", "NOTCH_FREQ"),
    }
    for key, value in parse_filters(description).items():
        kind, attribute = settings[key]
        outer = _path(series, "controlVariable/controlVariable")
        SubElement(outer, "code", code=prefix + kind, codeSystem=MDC)
        inner = _path(outer, "component/controlVariable")
        SubElement(inner, "code", code=prefix + attribute, codeSystem=MDC)
        SubElement(inner, "value", {"xsi:type": "PQ", "value": value, "unit": "Hz"})


def _sequence_set(
    series: Element,
    signal: np.ndarray,
    rate: float,
    names: tuple[str, ...],
    start: datetime | None,
) -> None:
    sequence_set = _path(series, "component/sequenceSet")
    time = _path(sequence_set, "component/sequence")
    code = "TIME_ABSOLUTE" if start else "TIME_RELATIVE"
    SubElement(time, "code", code=code, codeSystem=ACT_CODE)
    glist = SubElement(time, "value", {"xsi:type": "GLIST_TS" if start else "GLIST_PQ"})
    if start:
        SubElement(glist, "head", value=_ts(start))
    else:
        SubElement(glist, "head", value="0", unit="s")
    SubElement(glist, "increment", value=f"{1.0 / rate:.9g}", unit="s")
    for name, samples in zip(names, signal, strict=True):
        sequence = _path(sequence_set, "component/sequence")
        lead = _MDC_LEAD_NAMES.get(name, name)
        SubElement(sequence, "code", code=f"MDC_ECG_LEAD_{lead}", codeSystem=MDC)
        value = SubElement(sequence, "value", {"xsi:type": "SLIST_PQ"})
        step = sensitivity_uv(samples)
        SubElement(value, "origin", value="0", unit="uV")
        SubElement(value, "scale", value=f"{step:g}", unit="uV")
        digits = np.rint(np.nan_to_num(samples) * 1000 / step).astype(np.int64)
        SubElement(value, "digits").text = _digits_text(digits)


def _digits_text(digits: np.ndarray) -> str:
    lines = [
        " ".join(map(str, digits[i : i + _DIGITS_PER_LINE].tolist()))
        for i in range(0, len(digits), _DIGITS_PER_LINE)
    ]
    return "\n".join(lines)


def _annotations(series: Element, meta: EcgMetadata) -> None:
    """The source device's measurements and statements, authored by that device."""
    measured = [(k, v) for k, v in meta.device_measurements if k in _CODES_BY_KEY]
    if not measured and not meta.device_statements:
        return
    annotation_set = _path(series, "subjectOf/annotationSet")
    for key, number in measured:
        annotation = _path(annotation_set, "component/annotation")
        SubElement(annotation, "code", code=_CODES_BY_KEY[key], codeSystem=MDC)
        unit = "deg" if key.endswith("_deg") else "bpm" if key.endswith("_bpm") else "ms"
        SubElement(annotation, "value", {"xsi:type": "PQ", "value": f"{number:g}", "unit": unit})
    for statement in meta.device_statements:
        annotation = _path(annotation_set, "component/annotation")
        SubElement(annotation, "code", code="MDC_ECG_INTERPRETATION_STATEMENT", codeSystem=MDC)
        SubElement(annotation, "value", {"xsi:type": "ST"}).text = statement
