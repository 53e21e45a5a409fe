"""The DICOM Waveform Annotation module (PS3.3 C.10.10) as the device's measurements and
statements: read from received ECG objects (GE MUSE's DICOM exports carry its global
measurements there) and written by model.dicom_write, so `convert` keeps them.

Codes are the MDC global measurements of pydicom's code dictionary (DICOM CID 3229/3689);
the heart rate is MDC 2:16016 'Ventricular Heart Rate' as GE writes it (MDC_ECG_HEART_RATE,
2:16770, is read too).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes

# (code, meaning, EcgMetadata key, UCUM unit, unit meaning), the form written.
MEASUREMENT_CODES: tuple[tuple[str, str, str, str, str], ...] = (
    ("2:16016", "Ventricular Heart Rate", "heart_rate_bpm", "/min", "per minute"),
    *(
        (code.value, code.meaning, key, "ms", "millisecond")
        for code, key in (
            (codes.MDC.RRIntervalGlobal, "rr_ms"),
            (codes.MDC.PDurationGlobal, "p_duration_ms"),
            (codes.MDC.PRIntervalGlobal, "pr_ms"),
            (codes.MDC.QRSDurationGlobal, "qrs_ms"),
            (codes.MDC.QTIntervalGlobal, "qt_ms"),
            (codes.MDC.QtcIntervalGlobal, "qtc_ms"),
            (codes.MDC.QtcGlobalUsingBazettFormula, "qtc_bazett_ms"),
            (codes.MDC.QtcGlobalUsingFredericiaFormula, "qtc_fridericia_ms"),
        )
    ),
    *(
        (code.value, code.meaning, key, "deg", "degree")
        for code, key in (
            (codes.MDC.PAxis, "p_axis_deg"),
            (codes.MDC.QRSAxis, "qrs_axis_deg"),
            (codes.MDC.TAxis, "t_axis_deg"),
        )
    ),
)
_KEY_BY_CODE = {code: key for code, _, key, _, _ in MEASUREMENT_CODES}
_KEY_BY_CODE["2:16770"] = "heart_rate_bpm"
_ALL_CHANNELS_OF_GROUP_1 = [1, 0]


def read_annotations(ds: Dataset) -> tuple[tuple[tuple[str, float], ...], tuple[str, ...]]:
    """Numeric MDC measurements by key, and the text of unformatted-text annotations; coded
    annotations without a value (GE's 'P wave' markers) are not statements and are skipped."""
    measurements: dict[str, float] = {}
    statements: list[str] = []
    for item in ds.get("WaveformAnnotationSequence") or []:
        text = str(item.get("UnformattedTextValue", "") or "").strip()
        if text:
            statements.append(text)
            continue
        concept = item.get("ConceptNameCodeSequence") or []
        value = item.get("NumericValue")
        if not concept or value in (None, ""):
            continue
        key = _KEY_BY_CODE.get(str(concept[0].get("CodeValue", "")))
        try:
            number = float(
                value[0] if isinstance(value, Iterable) and not isinstance(value, str) else value
            )
        except (TypeError, ValueError):
            continue
        if key and key not in measurements:
            measurements[key] = number
    return tuple(measurements.items()), tuple(statements)


def annotation_sequence(
    measurements: tuple[tuple[str, float], ...], statements: tuple[str, ...]
) -> Sequence:
    """Items for WaveformAnnotationSequence: one per measurement the code table knows,
    one per statement, each referring to all channels of the rhythm group."""
    rows = {
        key: (code, meaning, unit, unit_meaning)
        for code, meaning, key, unit, unit_meaning in MEASUREMENT_CODES
    }
    items = []
    for key, number in measurements:
        if key not in rows:
            continue
        code, meaning, unit, unit_meaning = rows[key]
        item = Dataset()
        item.ConceptNameCodeSequence = Sequence([_code(code, "MDC", meaning)])
        item.NumericValue = f"{number:g}"
        item.MeasurementUnitsCodeSequence = Sequence([_code(unit, "UCUM", unit_meaning)])
        item.ReferencedWaveformChannels = _ALL_CHANNELS_OF_GROUP_1
        items.append(item)
    for statement in statements:
        item = Dataset()
        item.UnformattedTextValue = statement
        item.ReferencedWaveformChannels = _ALL_CHANNELS_OF_GROUP_1
        items.append(item)
    return Sequence(items)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item
