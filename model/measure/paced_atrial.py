"""The P waves under ventricular pacing that does not track them (VVI): the sinus
node fires on at its own rate, its P waves falling before, between, inside and after
the paced complexes, some conducted where the pacemaker's escape interval allows.
model.measure.av_conduction finds the P waves along the recording once the dominant
beats' QRS-T complexes are cancelled, but leaves a window around every beat of another
shape unsearched (an ectopic beat is not cancelled there): with paced and conducted
beats mixed (VVI over a sinus rhythm near the lower rate), one class of the two loses
most of its P waves. Here each class of beats is cancelled with its own median beat,
and the P waves are searched for between them all (docs/measurement.md 3.30). Where
none keeps a cycle, the same residual shows whether fibrillatory waves fill it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import welch

from model.beats import FS, Beats, beat_windows, complete_windows, median_beat, samples
from model.measure.atrial import FIBRILLATORY_HZ, FLUTTER_LEADS
from model.measure.av_conduction import (
    ECTOPIC_GUARD_MS,
    QRS_GUARD_MS,
    AtrialActivity,
    atrial_activity,
    cancelled_residual,
)
from model.measure.leads import LEAD_INDEX, POST, PRE
from model.measure.paced import MIN_PACED_FRACTION

if TYPE_CHECKING:
    from model.measure.result import EcgMeasurement, Fiducials

# A class of beats of another shape than the dominant one is cancelled with its own
# median beat where it holds at least this many beats (fewer: left out as ectopic).
MIN_CLASS_BEATS = 2
# The other class's median beat, from its stimulus (the median over its beats of the
# last stimulus up to STIMULUS_REACH_MS before the beat detector's point in the QRS:
# 10-120 ms on the synthetic VVI and VVI-over-sinus strips, tuning seeds 1 and 4), or
# from FALLBACK_BEFORE_MS before that point, to CLASS_AFTER_MS after it, faded in and
# out over FADE_MS (a paced QRS-T at 60-80/min ends 420-480 ms after it; the next beat
# comes 600 ms or more after a paced one at a lower rate of 80/min or less). Not from
# before the stimulus: a P wave just before it (the pacemaker fired before the sinus
# beat was conducted) stays, where the window from 120 ms before cancelled it.
STIMULUS_REACH_MS = 250
FALLBACK_BEFORE_MS = 120
CLASS_AFTER_MS = 560
FADE_MS = 20
# Not searched around each QRS of such a class (ms before its window's start, after the
# detector's point): a paced QRS lasts up to 180 ms.
CLASS_QRS_GUARD_MS = (10, 180)
# The residual's spectrum (FIBRILLATORY_HZ's share of its 1-40 Hz power, the least
# over FLUTTER_LEADS) from at least this much of it searchable, in Welch segments of
# this many samples (1 Hz resolution at FS).
MIN_SPECTRUM_MS = 4000
SPECTRUM_SEGMENT = 512


def paced_atrial_evidence(
    result: EcgMeasurement, sig: np.ndarray, leads: np.ndarray, beats: Beats, median: np.ndarray
) -> None:
    """On a strip paced MIN_PACED_FRACTION or more: the P waves found with every beat
    class cancelled (result.paced_atrial) and, where they keep no atrial cycle, the
    residual's fibrillatory-wave share (result.paced_fibrillatory_share)."""
    mask = result.paced_mask
    if mask is None or result.fiducials is None or result.rhythm is None:
        return
    if not result.pacemaker or mask.sum() < MIN_PACED_FRACTION * mask.size:
        return
    cancelled = class_residual(sig, beats, median, result.fiducials, result.stimuli)
    result.paced_atrial = dissociated_p_waves(result, sig, leads, beats, median, cancelled)
    if result.paced_atrial is None or result.paced_atrial.atrial_cycle_ms is None:
        result.paced_fibrillatory_share = fibrillatory_share(*cancelled)


def fibrillatory_share(residual: np.ndarray, valid: np.ndarray) -> float | None:
    """FIBRILLATORY_HZ's share of the searchable residual's 1-40 Hz power, the least
    over FLUTTER_LEADS; None with under MIN_SPECTRUM_MS searchable."""
    if valid.sum() < samples(MIN_SPECTRUM_MS):
        return None
    rows = [LEAD_INDEX[name] for name in FLUTTER_LEADS]
    freq, power = welch(residual[rows][:, valid], fs=FS, nperseg=SPECTRUM_SEGMENT, axis=1)
    total = power[:, (freq >= 1.0) & (freq <= 40.0)].sum(axis=1) + 1e-20
    band = power[:, (freq >= FIBRILLATORY_HZ[0]) & (freq <= FIBRILLATORY_HZ[1])].sum(axis=1)
    return float((band / total).min())


def dissociated_p_waves(
    result: EcgMeasurement,
    sig: np.ndarray,
    leads: np.ndarray,
    beats: Beats,
    median: np.ndarray,
    cancelled: tuple[np.ndarray, np.ndarray],
) -> AtrialActivity | None:
    """The P waves along the `cancelled` residual (class_residual), or None where none
    repeats. The median beat's P wave is the template only where the dominant beats
    are not the paced ones (their P waves are then conducted ones)."""
    mask = result.paced_mask
    dominant = beats.labels == "N"
    locked = bool((dominant & ~mask).sum() > (dominant & mask).sum())
    return atrial_activity(
        sig, leads, beats, median, result.fiducials, locked, cancelled, noise_retry=False
    )


def class_residual(
    sig: np.ndarray, beats: Beats, median: np.ndarray, fid: Fiducials, stimuli: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """av_conduction.cancelled_residual, and each other beat label (paced, ventricular:
    the beat classifier's classes, not strict shapes) with MIN_CLASS_BEATS or more
    beats cancelled with its own median beat, only its QRS left out
    of the search (CLASS_QRS_GUARD_MS) rather than the ectopic beat's wide window."""
    residual, valid = cancelled_residual(sig, beats, median, fid)
    others = [label for label in np.unique(beats.labels) if label not in ("N", "S")]
    if not others:
        return residual, valid
    valid = np.ones_like(valid)
    for position, label in zip(beats.positions, beats.labels):
        if label in ("N", "S"):
            lo = int(position) - PRE + fid.qrs_on - samples(QRS_GUARD_MS[0])
            hi = int(position) - PRE + fid.qrs_off + samples(QRS_GUARD_MS[1])
            valid[max(lo, 0) : max(hi, 0)] = False
    n = sig.shape[1]
    after = samples(CLASS_AFTER_MS)
    for label in others:
        positions = beats.positions[beats.labels == label]
        if positions.size < MIN_CLASS_BEATS:
            for p in positions:
                lo, hi = (
                    int(p) - samples(ECTOPIC_GUARD_MS[0]),
                    int(p) + samples(ECTOPIC_GUARD_MS[1]),
                )
                valid[max(lo, 0) : max(hi, 0)] = False
            continue
        before = stimulus_lead(positions, stimuli)
        # The residual still holds these beats (cancelled_residual left them).
        template = median_beat(complete_windows(beat_windows(sig, positions, -PRE, POST)))
        complex_ = template[:, PRE - before : PRE + after]
        complex_ = (complex_ - complex_[:, :1]) * _fade(before + after, samples(FADE_MS))
        for p in positions:
            start = int(p) - before
            a, b = max(start, 0), min(start + complex_.shape[1], n)
            if b > a:
                residual[:, a:b] -= complex_[:, a - start : b - start]
            lo = start - samples(CLASS_QRS_GUARD_MS[0])
            valid[max(lo, 0) : max(int(p) + samples(CLASS_QRS_GUARD_MS[1]), 0)] = False
    return residual, valid


def stimulus_lead(positions: np.ndarray, stimuli: np.ndarray | None) -> int:
    """Samples from the beats' stimulus to their detector's point (the median over
    those with one within STIMULUS_REACH_MS), else FALLBACK_BEFORE_MS."""
    leads = []
    for p in positions if stimuli is not None else ():
        before = stimuli[(stimuli <= p) & (stimuli > p - samples(STIMULUS_REACH_MS))]
        if before.size:
            leads.append(int(p - before[-1]))
    return int(np.median(leads)) if leads else samples(FALLBACK_BEFORE_MS)


def _fade(width: int, ramp: int) -> np.ndarray:
    """A window of `width` samples rising from 0 and falling to 0 over `ramp` at each end."""
    x = np.arange(width)
    return np.clip(np.minimum(x, width - 1 - x) / max(ramp, 1), 0.0, 1.0)
