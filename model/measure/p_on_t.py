"""A sinus P wave on the T wave: at 130-160/min the P wave starts on the previous T
wave, no isoelectric baseline precedes it, and locate_p (model.measure.waves) finds
none. It still shows as a hump on the T wave's descent in the limb leads: a rise
from the trough after the T peak, then a fall to the PR segment before the QRS.

Where that hump repeats beat to beat, falls toward the QRS pointing down and left
(a sinus axis) and peaks a PR-like distance before the QRS, the rhythm has a P wave
before each QRS; flutter waves at fixed conduction are ruled out before this
(model.measure.conducted_flutter), and irregular rhythms are not judged by it.
"""

from __future__ import annotations

import numpy as np

from model.beats import FS, Beats, median_over_beats, samples
from model.measure.amplitudes import frontal_axis
from model.measure.conducted_flutter import median_cycle
from model.measure.leads import LEAD_INDEX, LIMB_LEADS
from model.measure.result import Fiducials, PWaveOnT
from model.measure.waves import MIN_P_CONSISTENCY, SINUS_P_AXIS

# The hump rises above the T wave's trough and falls toward the QRS by at least this
# much (mV), seen from the sinus direction where it stands highest (the P waves the
# tuning seeds had missed rose 0.03-0.17 mV above the trough in lead II; the T wave's
# descent alone, drawn without P waves, makes none). On the T wave's steep descent a
# P wave's rise is mostly spent on cancelling the descent: sinus rhythms at 140-160/min
# of the tuning seeds rose 0.015-0.03 mV with P waves of 0.11-0.17 mV, repeating beat
# to beat (consistency 0.95-0.99) and pointing as sinus P waves do; 0.015 takes those
# (set on seeds 1 and 3-7; flutter and AV-block groups checked, docs/measurement.md).
MIN_HUMP_MV = 0.015
# Its peak lies this far before the QRS onset (ms): a P wave's peak, half a P wave
# after its onset, PR 120-260 ms (tuning set: 64-156 ms). A flutter wave's return
# just before the QRS peaks within 40 ms of it.
PEAK_TO_QRS_MS = (60, 220)
SMOOTH_MS = 20
# Only above 100/min does the TP segment vanish; at slower rates a P wave has room of
# its own (locate_p), and a hump there is as likely a P wave not conducted (second- and
# third-degree AV block: 14 of the tuning set's 144 gained a sinus rhythm that way).
MAX_RR_MS = 600
# The hump is looked for in the frontal plane seen from these angles (degrees), the
# sinus P axes: the P wave points anywhere from -30 to 105 degrees.
SINUS_DIRECTIONS = tuple(range(-30, 106, 15))


def p_wave_on_t_wave(sig: np.ndarray, beats: Beats, fid: Fiducials) -> PWaveOnT | None:
    """The P wave on the previous T wave's descent, from the limb leads' median cycle;
    None where no such hump stands, repeats and points as a sinus P wave does."""
    rr = round(beats.dominant_rr)
    if rr > samples(MAX_RR_MS):
        return None
    rows = [LEAD_INDEX[n] for n in LIMB_LEADS]
    windows = median_cycle(sig[rows], beats.dominant, fid.qrs_on, rr)
    if windows is None:
        return None
    median = median_over_beats(windows)
    kernel = np.ones(samples(SMOOTH_MS)) / samples(SMOOTH_MS)
    cycle = np.stack([np.convolve(row, kernel, "same") for row in median])
    end = rr - samples(10)
    start = _t_peak(cycle, fid, end)
    if end - start < samples(60):
        return None
    best = max(_hump(cycle, start, end, angle) for angle in SINUS_DIRECTIONS)
    rise, trough, peak = best
    to_qrs_ms = (rr - peak) * 1000.0 / FS
    fall = cycle[:, peak] - cycle[:, end]
    if rise < MIN_HUMP_MV or not PEAK_TO_QRS_MS[0] <= to_qrs_ms <= PEAK_TO_QRS_MS[1]:
        return None
    axis = frontal_axis(dict(zip(LIMB_LEADS, fall.tolist())))
    if axis is None or not SINUS_P_AXIS[0] <= axis <= SINUS_P_AXIS[1]:
        return None
    consistency = _consistency(windows[:, :, trough:end], median[:, trough:end])
    if consistency < MIN_P_CONSISTENCY:
        return None
    return PWaveOnT(round(axis), rise, to_qrs_ms, consistency)


def _t_peak(cycle: np.ndarray, fid: Fiducials, end: int) -> int:
    """The previous T wave's peak in the cycle: the one located, else where the limb
    leads stand furthest from their level before the QRS after the ST segment."""
    if fid.t_peak is not None:
        return fid.t_peak - fid.qrs_on
    lo = fid.qrs_off - fid.qrs_on + samples(60)
    if lo >= end:
        return end
    level = cycle[:, end : end + 1]
    return lo + int(np.argmax(np.sqrt(((cycle[:, lo:end] - level) ** 2).sum(axis=0))))


def _hump(cycle: np.ndarray, start: int, end: int, angle: float) -> tuple[float, int, int]:
    """(rise, trough, peak) of the largest rise above the running minimum after start,
    in the limb-lead signal seen from `angle` (degrees) of the frontal plane, falling
    again by as much before `end`."""
    lead = np.cos(np.radians(angle)) * cycle[0] + np.sin(np.radians(angle)) * (
        cycle[LIMB_LEADS.index("aVF")] * 2 / np.sqrt(3)
    )
    segment = lead[start:end]
    rise = segment - np.minimum.accumulate(segment)
    fall = segment - segment[-1]
    height = np.minimum(rise, fall)
    top = int(np.argmax(height))
    return float(height[top]), start + int(np.argmin(segment[: top + 1])), start + top


def _consistency(beats: np.ndarray, reference: np.ndarray) -> float:
    """The median over beats of each beat's correlation with the median cycle."""
    beats = beats - beats.mean(axis=2, keepdims=True)
    reference = reference - reference.mean(axis=1, keepdims=True)
    numerator = np.einsum("lbw,lw->b", beats, reference)
    denominator = np.sqrt(np.einsum("lbw,lbw->b", beats, beats) * (reference**2).sum()) + 1e-12
    return float(np.median(numerator / denominator))
