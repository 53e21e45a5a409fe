"""Patient demographics in the DICOM forms that every consumer already reads.

DICOM is the gateway's lingua franca (FHIR and HL7 builders map from it), so WFDB and
vendor XML values are put into DICOM value forms: sex M/F/O, age as AS ('071Y').
"""

from __future__ import annotations

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
