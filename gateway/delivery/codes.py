"""Code systems and codes shared by the FHIR and HL7 messages, kept in one table
so the two formats can never disagree about what a measurement is called."""

from __future__ import annotations

from typing import NamedTuple

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"

EKG_STUDY = ("11524-6", "EKG study")
EKG_IMPRESSION = ("8601-7", "EKG impression")
TWELVE_LEAD_PANEL = ("34534-8", "12 lead EKG panel")
CARDIOLOGY_CATEGORY = ("LP29708-2", "Cardiology")
DIAGNOSTIC_SECTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0074"
ELECTROCARDIAC_SECTION = ("EC", "Electrocardiac (e.g., EKG, EEC, Holter)")


class MeasurementCode(NamedTuple):
    """How one `Report.measurements` field is coded (LOINC) and unit-ed (UCUM)."""

    key: str
    loinc: str
    display: str
    ucum: str


MEASUREMENT_CODES: tuple[MeasurementCode, ...] = (
    MeasurementCode("heart_rate_bpm", "8867-4", "Heart rate", "/min"),
    MeasurementCode("pr_ms", "8625-6", "P-R Interval", "ms"),
    MeasurementCode("qrs_ms", "8633-0", "QRS duration", "ms"),
    MeasurementCode("qt_ms", "8634-8", "Q-T interval", "ms"),
    MeasurementCode("qtc_bazett_ms", "8636-3", "Q-T interval corrected", "ms"),
    MeasurementCode("p_axis_deg", "8626-4", "P wave axis", "deg"),
    MeasurementCode("qrs_axis_deg", "8632-2", "QRS axis", "deg"),
    MeasurementCode("t_axis_deg", "8638-9", "T wave axis", "deg"),
)


def measurement_value(value: float) -> float:
    """One decimal is below any ECG measurement's precision; whole numbers stay whole."""
    rounded = round(float(value), 1)
    return float(int(rounded)) if rounded.is_integer() else rounded


def format_number(value: float) -> str:
    rounded = measurement_value(value)
    return str(int(rounded)) if rounded.is_integer() else f"{rounded:.1f}"
