"""Lead preparation: the standard twelve leads, resampled to 500 Hz, and the filters.

Every threshold and window of the measurement is in samples at the internal rate
FS (500 Hz) and in the standard lead order, whatever the recording's own.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import butter, resample_poly

from model.beats import FS, samples
from model.ecg import STANDARD_LEADS, Ecg, derive_limb_leads

LEAD_INDEX = {name: i for i, name in enumerate(STANDARD_LEADS)}
LIMB_LEADS = STANDARD_LEADS[:6]
# The eight leads that carry independent information (the other four limb leads
# are arithmetic on I and II): the global fiducials are found on them.
INDEPENDENT_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
MIN_LEADS = 8
MIN_USABLE_INDEPENDENT = 4

# Beats are found and classified, and P and T located, on a 0.5-40 Hz signal; the
# QRS is delimited on the diagnostic bandwidth (0.5-150 Hz): a 40 Hz low-pass
# spreads every QRS edge by about 10 ms.
BANDPASS = butter(2, [0.5, 40.0], btype="bandpass", fs=FS, output="sos")
WIDEBAND = butter(2, [0.5, 150.0], btype="bandpass", fs=FS, output="sos")

# The median beat spans 500 ms before and 800 ms after each QRS fiducial.
PRE = samples(500)
POST = samples(800)
# A recording shorter than one median beat's window holds no complete beat (and
# under 32 ms the filters cannot even be run over it).
MIN_DURATION_S = (PRE + POST) / FS


def ms(n_samples: float) -> float:
    """Samples at FS -> milliseconds."""
    return float(n_samples) * 1000.0 / FS


def canonical_lead_name(name: str) -> str | None:
    """'AVF', 'avf', ' aVF' -> 'aVF'; None for a lead outside the standard twelve."""
    key = name.strip().upper().replace(" ", "")
    for std in STANDARD_LEADS:
        if key == std.upper():
            return std
    return None


def standard_twelve(ecg: Ecg) -> tuple[np.ndarray, np.ndarray]:
    """(12, n) signal in standard order at the ECG's own rate, and which leads exist.

    Limb leads that the recording lacks are derived from any two of I, II and III
    (model.ecg.derive_limb_leads)."""
    out = np.zeros((12, ecg.n_samples), dtype=np.float64)
    present = np.zeros(12, dtype=bool)
    for i, name in enumerate(ecg.lead_names):
        std = canonical_lead_name(name)
        if std is not None and not present[LEAD_INDEX[std]]:
            out[LEAD_INDEX[std]] = ecg.signal[i]
            present[LEAD_INDEX[std]] = True
    recorded = {name: out[LEAD_INDEX[name]] for name in LIMB_LEADS if present[LEAD_INDEX[name]]}
    for name, values in derive_limb_leads(recorded).items():
        if not present[LEAD_INDEX[name]]:
            out[LEAD_INDEX[name]] = values
            present[LEAD_INDEX[name]] = True
    return out, present


def to_internal_rate(sig: np.ndarray, fs: float) -> np.ndarray:
    """Resample to 500 Hz: every threshold and window is in 500 Hz samples."""
    if abs(fs - FS) < 1e-6:
        return sig
    ratio = Fraction(FS / fs).limit_denominator(1000)
    return resample_poly(sig, ratio.numerator, ratio.denominator, axis=1)
