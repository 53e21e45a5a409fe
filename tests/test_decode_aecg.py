"""HL7 v3 aECG: the HL7 ballot example (Mortara ELI250) read in full, checked against the
digits read independently and the device's own annotations, and a corpus of damaged and
hostile documents made from it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import model
from model import STANDARD_LEADS, EcgDecodeError
from tests.device_measurements import assert_engine_agrees, measurements_text

EXAMPLE = "vendor/aecg/fda_example_aecg.xml"
MINIMUM = "vendor/aecg/minimum_aecg.xml"
NS = {"h": "urn:hl7-org:v3"}
SCALE_MV = 2.5e-3  # every sequence: origin 0 uV, scale 2.5 uV


def _digits(path: Path, lead_code: str, derived: bool = False) -> np.ndarray:
    """One sequence's digits, read with the standard library, not the decoder."""
    series = ET.parse(path).getroot().find("h:component/h:series", NS)
    if derived:
        series = series.find("h:derivation/h:derivedSeries", NS)
    for sequence in series.iterfind("h:component/h:sequenceSet/h:component/h:sequence", NS):
        if sequence.find("h:code", NS).get("code") == lead_code:
            return np.array(sequence.find("h:value/h:digits", NS).text.split(), dtype=float)
    raise AssertionError(lead_code)


def test_rhythm_and_representative_beat(shared_data):
    path = shared_data / EXAMPLE
    ecg = model.load(path)
    assert ecg.lead_names == STANDARD_LEADS
    assert (ecg.sampling_rate, ecg.signal.shape) == (500, (12, 5000))
    for lead, code in (
        ("I", "MDC_ECG_LEAD_I"),
        ("aVR", "MDC_ECG_LEAD_AVR"),
        ("V6", "MDC_ECG_LEAD_V6"),
    ):
        np.testing.assert_allclose(ecg.lead(lead), _digits(path, code) * SCALE_MV, atol=1e-6)
    assert ecg.median_sampling_rate == 500
    index = ecg.lead_names.index("V2")
    np.testing.assert_allclose(
        ecg.median_beats[index],
        _digits(path, "MDC_ECG_LEAD_V2", derived=True) * SCALE_MV,
        atol=1e-6,
    )


def test_metadata_and_annotations(shared_data):
    meta = model.load(shared_data / EXAMPLE).metadata
    assert meta.source_format == "hl7-aecg"
    assert (meta.patient_id, meta.patient_name, meta.patient_sex) == ("SBJ-123", "Clark", "M")
    assert (meta.patient_birth_date, meta.patient_age) == ("19530508", "046Y")
    assert meta.acquisition_time.isoformat() == "2002-11-22T09:10:00"
    assert (meta.device_manufacturer, meta.device_model) == ("Mortara Instrument, Inc.", "ELI250")
    assert meta.filters == "?-150 Hz, notch 60 Hz"
    assert measurements_text(meta) == (
        "p_axis_deg=44 p_duration_ms=102 pr_ms=148 qrs_axis_deg=-61 qrs_ms=120 "
        "qt_ms=420 qtc_ms=443 t_axis_deg=86"
    )
    assert meta.device_statements == ("Sinus Rhythm",)


def test_engine_agrees_with_the_carts_annotations(shared_data):
    tolerances = {"pr_ms": 30, "qrs_ms": 15, "qt_ms": 25, "qrs_axis_deg": 15, "t_axis_deg": 10}
    assert_engine_agrees(model.load(shared_data / EXAMPLE), {**tolerances, "p_axis_deg": 30})


def test_minimal_document_one_lead(shared_data):
    ecg = model.load(shared_data / MINIMUM)
    assert ecg.lead_names == ("II",)
    np.testing.assert_allclose(ecg.lead("II")[:4], [-0.005, -0.005, -0.005, -0.005], atol=1e-7)
    assert ecg.metadata.patient_id == "SBJ-123"


def test_scale_origin_and_units_are_applied(shared_data, tmp_path):
    text = (shared_data / MINIMUM).read_text()
    text = text.replace('<origin value="0" unit="uV"/>', '<origin value="0.1" unit="mV"/>')
    text = text.replace('<scale value="2.5" unit="uV"/>', '<scale value="0.01" unit="mV"/>')
    text = text.replace('value="0.002" unit="s"', 'value="4" unit="ms"')
    path = tmp_path / "scaled.xml"
    path.write_text(text)
    ecg = model.load(path)
    assert ecg.sampling_rate == 250
    np.testing.assert_allclose(ecg.lead("II")[:3], [0.1 - 0.02, 0.1 - 0.02, 0.1 - 0.02])


# --- bad input ---------------------------------------------------------------------------


def _second_lead_cut(text: str) -> str:
    starts = [m.end() for m in re.finditer(r"<digits>", text)]
    return text[: starts[1]] + " 1 2 3 " + text[text.index("</digits>", starts[1]) :]


BAD = {
    "cut in half": (lambda t: t[: len(t) // 2], "malformed XML"),
    "lengths disagree": (
        _second_lead_cut,
        "rhythm series: lead II holds 3 samples where the others hold 5000",
    ),
    "absurd scale": (
        lambda t: t.replace('<scale value="2.5" unit="uV"/>', '<scale value="5e9" unit="uV"/>', 1),
        "rhythm series lead I scale: 5e+09 uV per digit is not in (0, 1000]",
    ),
    "scale not a voltage": (
        lambda t: t.replace(
            '<scale value="2.5" unit="uV"/>', '<scale value="2.5" unit="mmHg"/>', 1
        ),
        "lead I scale: '2.5' 'mmHg' is not a voltage",
    ),
    "no scale": (
        lambda t: t.replace('<scale value="2.5" unit="uV"/>', "", 1),
        "rhythm series lead I scale: missing",
    ),
    "digit not a number": (
        lambda t: t.replace("<digits>", "<digits>12 x7 ", 1),
        "rhythm series lead I digits: holds a value that is not a number",
    ),
    "zero time increment": (
        lambda t: t.replace(
            '<increment value="0.002" unit="s"/>', '<increment value="0" unit="s"/>', 1
        ),
        "rhythm series time increment: 0.0 s is not a sampling interval",
    ),
    "absurd sampling rate": (
        lambda t: t.replace(
            '<increment value="0.002" unit="s"/>', '<increment value="1e-9" unit="s"/>', 1
        ),
        "sampling frequency 1e+09 Hz",
    ),
    "no time sequence": (
        lambda t: t.replace('code="TIME_ABSOLUTE"', 'code="TIME_UNKNOWN"'),
        "rhythm series time sequence: no TIME_ABSOLUTE or TIME_RELATIVE sequence",
    ),
    "no lead codes": (
        lambda t: re.sub(r'code="MDC_ECG_LEAD_[A-Z0-9]+"', 'code="MDC_PRESS_BLD"', t),
        "rhythm series: no sequence with an MDC ECG lead code",
    ),
    "too many leads": (
        lambda t: t.replace(
            "</sequenceSet>",
            "".join(
                '<component><sequence><code code="X"/><value/></sequence></component>'
                for _ in range(30)
            )
            + "</sequenceSet>",
            1,
        ),
        "42 lead sequences; at most 24 allowed",
    ),
    "no series": (
        lambda t: re.sub(
            r"<component>\s*<series>.*</series>\s*</component>", "", t, flags=re.DOTALL
        ),
        "series: the document has no component/series",
    ),
}


@pytest.mark.timeout(10)  # a hostile file fails fast: no decoding loop can hang
@pytest.mark.parametrize("case", list(BAD))
def test_bad_document_names_format_field_and_problem(shared_data, tmp_path, case):
    edit, fragment = BAD[case]
    path = tmp_path / "bad.xml"
    path.write_text(edit((shared_data / EXAMPLE).read_text()))
    with pytest.raises(EcgDecodeError) as caught:
        model.load(path)
    assert caught.value.source == str(path)
    assert fragment in caught.value.reason, caught.value.reason
    assert "Clark" not in str(caught.value)
    if "XML" not in fragment:
        assert caught.value.reason.startswith("HL7 aECG ") or "Hz" in fragment


@pytest.mark.parametrize(
    "digits, fragment",
    [
        ("1 " * 2_100_000, "4200000 characters exceed the limit for 500000 samples"),
        ("7 " * 600_000, "600000 samples exceed the limit"),
    ],
)
def test_huge_sequences_are_refused_before_they_are_held(shared_data, tmp_path, digits, fragment):
    text = (shared_data / MINIMUM).read_text()
    path = tmp_path / "huge.xml"
    path.write_text(re.sub(r"<digits>[^<]*</digits>", f"<digits>{digits}</digits>", text))
    with pytest.raises(EcgDecodeError, match=f"HL7 aECG rhythm series lead II digits: {fragment}"):
        model.load(path)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE AnnotatedECG [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>',
        '<!DOCTYPE AnnotatedECG [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    ],
)
def test_entities_are_refused(shared_data, tmp_path, doctype):
    path = tmp_path / "hostile.xml"
    text = (shared_data / MINIMUM).read_text()
    path.write_text('<?xml version="1.0"?>' + doctype + text)
    with pytest.raises(EcgDecodeError, match="refused for safety"):
        model.load(path)


def test_oversized_document_is_refused_before_parsing(tmp_path, monkeypatch):
    from model.decode import xml_document

    monkeypatch.setattr(xml_document, "MAX_XML_BYTES", 1000)
    path = tmp_path / "big.xml"
    path.write_text("<AnnotatedECG>" + " " * 2000 + "</AnnotatedECG>")
    with pytest.raises(EcgDecodeError, match="2029 bytes exceeds the 1000-byte limit"):
        model.load(path)
