"""Atrial activity left once the QRS-T complexes are cancelled: flutter waves."""

from __future__ import annotations

import numpy as np
from scipy.signal import welch

from model.beats import FS, Beats, samples
from model.measure.leads import LEAD_INDEX, PRE
from model.measure.result import Fiducials

# Atrial flutter: after the QRS-T complexes are cancelled, II, III and aVF keep a wave
# at one shared frequency of 4-6 Hz (240-360/min), of at least result.FLUTTER_MIN_MV RMS.
FLUTTER_HZ = (4.0, 6.0)
INFERIOR_LEADS = ("II", "III", "aVF")


def atrial_residual(
    sig: np.ndarray, beats: Beats, median: np.ndarray, fid: Fiducials, cancel_p: bool
) -> tuple[float | None, float]:
    """Flutter-wave frequency (Hz) shared by II, III and aVF, and their mean RMS (mV).

    Subtracting the median beat from every beat cancels the QRS-T complexes, and
    with cancel_p the P wave too; what is left is atrial activity and noise. Flutter
    waves are one regular wave at 4-6 Hz in the inferior leads; fibrillation is not
    one frequency, sinus rhythm leaves almost nothing. A sinus P wave left in would
    not: from 120/min its second harmonic lies in the flutter band. The caller cancels
    only a P wave with a sinus axis: in flutter with 2:1 block the median beat holds a
    flutter wave locked to the QRS, with a superior axis, and cancelling it would hide
    the flutter. Each beat's window ends where the next
    one's starts, so no stretch is cancelled twice. Ectopic beats, which the median
    does not cancel, are cut out. Returns (None, rms) without a shared peak.
    """
    first = fid.p_on if cancel_p and fid.p_on is not None else fid.qrs_on
    start = first - samples(20)
    t_end = fid.t_end_found if fid.t_end_found is not None else fid.qrs_off + samples(300)
    stop = t_end + samples(40)
    rows = [LEAD_INDEX[n] for n in INFERIOR_LEADS]
    residual = sig[rows].copy()
    keep = np.ones(residual.shape[1], dtype=bool)
    next_starts = np.append(beats.positions[1:] + start - PRE, residual.shape[1])
    for p, label, next_start in zip(beats.positions, beats.labels, next_starts):
        a, b = p + start - PRE, min(p + stop - PRE, next_start)
        if a < 0 or b > residual.shape[1] or label not in ("N", "S"):
            keep[max(a, 0) : min(b, residual.shape[1])] = False
            continue
        residual[:, a:b] -= median[rows, start : start + b - a]
    residual = residual[:, keep]
    if residual.shape[1] < samples(4000):
        return None, 0.0
    freq, power = welch(residual, fs=FS, nperseg=1024, axis=1)
    band = (freq >= 3.0) & (freq <= 10.0)
    rms = float(np.sqrt(power[:, band].sum(axis=1) * (freq[1] - freq[0])).mean())
    in_range = (freq >= FLUTTER_HZ[0]) & (freq <= FLUTTER_HZ[1])
    peaks = freq[np.argmax(np.where(in_range, power, 0.0), axis=1)]
    if peaks.max() - peaks.min() > 0.5:
        return None, rms
    return float(np.median(peaks)), rms
