"""Electrical-potential units to millivolts, the one unit an Ecg carries."""

from __future__ import annotations

# UCUM codes (DICOM ChannelSensitivityUnitsSequence, WFDB headers) and the words
# vendor XML spells out. UCUM is case-sensitive ('mV' vs 'MV' megavolt), but no
# ECG is recorded in megavolts, so a case-insensitive match is the useful one.
_MILLIVOLTS_PER_UNIT: dict[str, float] = {
    "nv": 1e-6,
    "uv": 1e-3,
    "µv": 1e-3,
    "mv": 1.0,
    "v": 1e3,
    "nanovolts": 1e-6,
    "microvolts": 1e-3,
    "microvolt": 1e-3,
    "millivolts": 1.0,
    "millivolt": 1.0,
    "volts": 1e3,
    "volt": 1e3,
}


def millivolts_per_unit(unit: str | None) -> float | None:
    """The factor that turns a value in `unit` into mV; None if `unit` is not a voltage
    (e.g. mmHg on a pressure channel), so the caller can tell ECG leads from the rest."""
    if not unit:
        return None
    return _MILLIVOLTS_PER_UNIT.get(unit.strip().lower())
