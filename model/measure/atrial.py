"""Atrial activity left once the QRS-T complexes are cancelled: flutter waves."""

from __future__ import annotations

import numpy as np
from scipy.signal import welch

from model.beats import FS, Beats, samples
from model.measure.leads import LEAD_INDEX, PRE
from model.measure.result import Fiducials

# Atrial flutter: after the QRS-T complexes are cancelled, II, III, aVF and V1 keep a
# wave at one shared frequency of 4-5.67 Hz (240-340/min), of at least
# result.FLUTTER_MIN_MV RMS in II, III and aVF. Fibrillatory waves run faster (350-600/min).
FLUTTER_HZ = (4.0, 340 / 60)
FLUTTER_LEADS = ("II", "III", "aVF", "V1")
INFERIOR_LEADS = ("II", "III", "aVF")
# Welch windows of 2 s zero-padded to 8.2 s: 0.12 Hz bins (at 0.5 Hz bins a
# fibrillatory wave at 5.8 Hz fell into the bin holding 340/min).
SPECTRUM_SAMPLES = 4096


def atrial_residual(
    sig: np.ndarray, beats: Beats, median: np.ndarray, fid: Fiducials, cancel_p: bool
) -> tuple[float | None, float]:
    """Flutter-wave frequency (Hz) shared by II, III, aVF and V1, and the mean RMS (mV)
    of II, III and aVF.

    Subtracting the median beat from every beat cancels the QRS-T complexes, and
    with cancel_p the P wave too; what is left is atrial activity and noise. Flutter
    waves are one regular wave at 240-340/min in the inferior leads and V1, the
    strongest atrial activity there; fibrillation is faster and not one frequency,
    sinus rhythm leaves almost nothing. A sinus P wave left in would
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
    rows = [LEAD_INDEX[n] for n in FLUTTER_LEADS]
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
    freq, power = welch(residual, fs=FS, nperseg=1024, nfft=SPECTRUM_SAMPLES, axis=1)
    band = (freq >= 3.0) & (freq <= 10.0)
    inferior = [FLUTTER_LEADS.index(n) for n in INFERIOR_LEADS]
    rms = float(np.sqrt(power[inferior][:, band].sum(axis=1) * (freq[1] - freq[0])).mean())
    # Each lead's strongest peak in the 3-10 Hz band must itself lie in the flutter range.
    peaks = freq[np.argmax(np.where(band, power, 0.0), axis=1)]
    if peaks.min() < FLUTTER_HZ[0] or peaks.max() > FLUTTER_HZ[1]:
        return None, rms
    if peaks.max() - peaks.min() > 0.5:
        return None, rms
    return float(np.median(peaks)), rms
