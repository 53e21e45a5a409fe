"""Patient demographics in the DICOM forms that every consumer already reads.

DICOM is the gateway's lingua franca (FHIR and HL7 builders map from it), so WFDB and
vendor XML values are put into DICOM value forms: sex M/F/O, age as AS ('071Y').
"""

from __future__ import annotations

from pydicom.valuerep import DA, PersonName

# A report warning: it reaches the physician, so it says what was wrong, not the value.
BIRTH_DATE_LEFT_OUT = "the patient's birth date is not a valid date and was left out"
_SEX_CODES = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O"}
_AGE_UNITS = {
    "y": "Y",
    "years": "Y",
    "m": "M",
    "months": "M",
    "w": "W",
    "weeks": "W",
    "d": "D",
    "days": "D",
}


def sex_code(text: str | None) -> str | None:
    """DICOM PatientSex (M, F, O) for the spellings sources use; None when unknown."""
    if not text:
        return None
    return _SEX_CODES.get(text.strip().lower())


def age_string(number: str | int | None, unit: str = "Y") -> str | None:
    """DICOM Age String ('071Y') for a whole-number age; None when absent or not a number."""
    if number is None:
        return None
    code = _AGE_UNITS.get(unit.strip().lower())
    try:
        value = int(str(number).strip())
    except ValueError:
        return None
    if code is None or not 0 <= value <= 999:
        return None
    return f"{value:03d}{code}"


def dicom_date(text: str | None) -> str | None:
    """A date as DICOM DA at the precision it was given: YYYYMMDD (pydicom's DA, which also
    reads the old YYYY.MM.DD), or the partial YYYYMM and YYYY that FHIR and HL7 keep as
    such; None when it is no real date (19991399), so nothing invalid reaches an EHR."""
    value = (text or "").strip()
    if len(value) in (4, 6) and value.isdigit():
        month = int(value[4:]) if len(value) == 6 else 1
        return value if 1 <= month <= 12 and int(value[:4]) > 0 else None
    try:
        parsed = DA(value)
    except (ValueError, TypeError):
        return None
    return parsed.strftime("%Y%m%d") if parsed is not None else None


def person_name(text: str | None) -> tuple[str | None, bool]:
    """A DICOM PN reduced to what PN allows (3 component groups of 5 components, as
    pydicom's PersonName reads them), and whether anything had to be left out; None when
    no component holds a letter of the name."""
    if not text or not text.strip():
        return None, False
    groups = PersonName(text.strip()).components
    kept = ["^".join(group.split("^")[:5]).rstrip("^") for group in groups[:3]]
    trimmed = len(groups) > 3 or any(len(group.split("^")) > 5 for group in groups[:3])
    name = "=".join(kept).rstrip("=")
    return (name if name.replace("^", "").replace("=", "").strip() else None), trimmed
