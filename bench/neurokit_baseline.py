"""The obvious simple method the accuracy bench compares against: neurokit2's R peaks
and DWT delineation on lead II alone."""

from __future__ import annotations

import warnings

import numpy as np

from model.ecg import Ecg


def neurokit_lead_ii(ecg: Ecg) -> dict[str, float | None]:
    """Baseline: neurokit2 R peaks and DWT delineation on lead II alone, median over beats."""
    import neurokit2 as nk

    fs = ecg.sampling_rate
    x = ecg.lead("II").astype(float)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, peaks = nk.ecg_peaks(x, sampling_rate=fs)
            _, waves = nk.ecg_delineate(x, peaks, sampling_rate=fs, method="dwt")
    except (ValueError, IndexError, ZeroDivisionError):
        return dict.fromkeys(("p", "pr", "qrs", "qt"))

    def median_ms(start: str, stop: str) -> float | None:
        d = np.asarray(waves[stop], float) - np.asarray(waves[start], float)
        d = d[np.isfinite(d)]
        return float(np.median(d)) * 1000.0 / fs if d.size else None

    return {
        "p": median_ms("ECG_P_Onsets", "ECG_P_Offsets"),
        "pr": median_ms("ECG_P_Onsets", "ECG_R_Onsets"),
        "qrs": median_ms("ECG_R_Onsets", "ECG_R_Offsets"),
        "qt": median_ms("ECG_R_Onsets", "ECG_T_Offsets"),
    }
