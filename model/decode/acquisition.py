"""Acquisition settings every format carries: the sampling rate and the cart's filters."""

from __future__ import annotations

import math
import re
from pathlib import Path

from model.errors import EcgDecodeError

# Below 50 Hz no ECG wave survives; no cart samples above 20 kHz. A value outside this
# range is a corrupt attribute, and trusting it would make every interval wrong.
MIN_SAMPLING_RATE_HZ = 50.0
MAX_SAMPLING_RATE_HZ = 20_000.0
# Samples per lead a decoder accepts, checked before anything of that size is allocated:
# a resting ECG is 10-60 s (30 000 samples at 500 Hz); this is over 8 minutes at 1 kHz.
MAX_SAMPLES_PER_LEAD = 500_000


def checked_sampling_rate(path: Path, rate: float, where: str = "") -> float:
    """`rate` if it is a plausible ECG sampling rate, else EcgDecodeError saying so."""
    if not math.isfinite(rate) or not MIN_SAMPLING_RATE_HZ <= rate <= MAX_SAMPLING_RATE_HZ:
        prefix = f"{where}: " if where else ""
        raise EcgDecodeError(
            path,
            f"{prefix}sampling frequency {rate:g} Hz is outside the plausible "
            f"{MIN_SAMPLING_RATE_HZ:g}-{MAX_SAMPLING_RATE_HZ:g} Hz",
        )
    return rate


def describe_filters(
    high_pass_hz: float | None, low_pass_hz: float | None, notch_hz: float | None
) -> str | None:
    """'0.05-150 Hz, notch 50 Hz': the pass band and mains filter as printed on a report."""
    parts = []
    if high_pass_hz is not None or low_pass_hz is not None:
        parts.append(f"{_hz(high_pass_hz)}-{_hz(low_pass_hz)} Hz")
    if notch_hz:
        parts.append(f"notch {_hz(notch_hz)} Hz")
    return ", ".join(parts) or None


_FILTERS = re.compile(
    r"^(?P<low>[\d.]+|\?)-(?P<high>[\d.]+|\?) Hz(?:, notch (?P<notch>[\d.]+) Hz)?$"
)


def parse_filters(description: str | None) -> dict[str, str]:
    """describe_filters' text back as its parts: 'high_pass', 'low_pass', 'notch' (Hz, as
    written), each present only when the description gives it, for the writers."""
    match = _FILTERS.match(description or "")
    if not match:
        return {}
    values = {"high_pass": match["low"], "low_pass": match["high"], "notch": match["notch"]}
    return {key: value for key, value in values.items() if value not in (None, "?")}


def _hz(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"
