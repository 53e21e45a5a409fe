"""The T wave's end and the P wave's extent, on the spatial magnitude of the median beats.

Both are found with the trapezium-area method (Vazquez-Seisdedos et al. 2011) on the
vector length of the eight independent leads above their isoelectric level: it needs
no threshold and ignores low-frequency baseline offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.beats import beat_windows, samples
from model.measure.leads import PRE

# T wave: the peak lies between J+40 ms and min(60 % RR, T_SEARCH_MS) after the QRS
# onset; the end is a trapezium point within T_TRAPEZIUM_MS after the steepest descent.
T_SEARCH_MS = 500
T_SMOOTH_MS = 20
T_TRAPEZIUM_MS = 200
MIN_T_MV = 0.05
# The T wave must have ended T_BEFORE_NEXT_QRS_MS before the next QRS (where the next
# P wave may begin); one still falling there has its end hidden by the next beat.
T_BEFORE_NEXT_QRS_MS = 120
T_END_HIDDEN = (
    f"T wave still falling {T_BEFORE_NEXT_QRS_MS} ms before the next QRS: "
    "the next beat hides its end"
)
# A T wave peaking past 60 % of the RR ends where the next P wave may already stand
# (docs/measurement.md 3.21): the end found there is only where the P search starts,
# and no QT is measured from it (the bench's fast grid read a QT 18 ms long there).
T_PEAK_LATE = (
    "T wave peaking past 60 % of the RR: its end meets the next P wave and is not measured"
)
# P wave: searched up to P_SEARCH_MS before the QRS onset (room for a marked first-degree
# AV block, PTB-XL 191: PR 374 ms) and no earlier than P_AFTER_T_MS after the previous
# T wave's end; it must stand MIN_P_SNR times above the median beat's noise and repeat
# beat to beat (MIN_P_CONSISTENCY), which in atrial fibrillation it does not.
P_SEARCH_MS = 450
P_AFTER_T_MS = 20
# An onset found within P_MIN_TP_MS of the search's start has no isoelectric TP segment
# before it: it cannot be told from the end of the T wave.
P_MIN_TP_MS = 16
P_SMOOTH_MS = 20
# The P wave's fall is looked for at least this far before the PR segment's end, where
# the isoelectric line is pinned to the signal (locate_p).
P_PIN_MARGIN_MS = 20
# The onset's isoelectric anchor is the flattest moment within P_ANCHOR_MS before the
# P wave's steepest rise; the offset lies within P_TRAPEZIUM_MS after its steepest fall.
P_ANCHOR_MS = 70
P_TRAPEZIUM_MS = 60
MIN_P_SNR = 4.0
# Below the smallest real P wave of the bench (0.041 mV), above the filter ripple that a
# noise-free recording (a patient simulator) shows where there is no wave.
MIN_P_MV = 0.02
# An anchor standing away from the PR segment's level, against the wave found, by more
# than this fraction of it lies on the P wave itself, which then began on the T wave
# (synthetic ECGs: -0.8 to -2.3; the bench's real records: -0.5 or above).
P_ANCHOR_DISPLACEMENT = 0.75
P_WITHOUT_BASELINE = "no isoelectric baseline before the P wave: it starts on the preceding T wave"
# Where the anchor lies on a wave before the P wave (a U wave or the T wave's tail, off
# the isoelectric line by more than P_RETURN_DROP of the P wave's height) whose return
# to the line the trapezium takes for the P wave's foot, the onset is where the rise
# stalls at the line (slope at most P_STALL_SLOPE of the steepest rise, after at least
# P_STALL_GAIN of it, within P_RETURN_LEVEL of the P wave's height from the line).
# Synthetic U waves ending as the P wave starts: PRs 30-38 ms long before (docs 3.2).
P_RETURN_DROP = 0.1
P_RETURN_LEVEL = 0.25
P_STALL_SLOPE = 0.25
P_STALL_GAIN = 0.2
# A P wave longer than P_STALLED_LONGEST_MS whose upstroke slows, before its steepest
# rise, to P_LONG_STALL_SLOPE of it (after P_STALL_GAIN of the rise) has no trustworthy
# onset: the slowing may end a separate deflection that the trapezium reads as the P wave's
# slow foot, or be the notch of a very wide P wave. LUDB 127 (sinus bradycardia at
# 40/min): 198 ms found, 154 annotated, the upstroke flat 44 ms after the onset found,
# where the annotation puts it; synthetic lobes of 0.02 mV leading a 0.045 mV P wave by
# 50-60 ms: onsets 44-50 ms early, slowing to 0.19-0.30. Set on LUDB 1-160: no other
# record's P wave lasts this long (bifid P waves that stall: LUDB 70, 84, 135, 110-132 ms).
P_STALLED_LONGEST_MS = 180
P_LONG_STALL_SLOPE = 0.4
P_ONSET_STALLS = (
    f"P wave over {P_STALLED_LONGEST_MS} ms whose upstroke stalls: its onset may lie on a "
    "separate deflection before it and cannot be trusted"
)
MIN_P_CONSISTENCY = 0.5
# A sinus P wave points down and left in the frontal plane (degrees).
SINUS_P_AXIS = (-30, 105)


def _smooth_rows(x: np.ndarray, width: int) -> np.ndarray:
    kernel = np.ones(width) / width
    return np.stack([np.convolve(row, kernel, mode="same") for row in x])


def _trapezium_end(y: np.ndarray, xm: int, xr: int) -> int:
    """Point after xm that maximises the trapezium area to the reference xr (a wave's end)."""
    t = np.arange(xm, xr + 1)
    return xm + int(np.argmax((y[xm] - y[t]) * (2 * xr - t - xm)))


def _trapezium_start(y: np.ndarray, xr: int, xm: int) -> int:
    """Mirror of _trapezium_end: a wave's start, searching back from xm to xr."""
    t = np.arange(xr, xm + 1)
    return xr + int(np.argmax((y[xm] - y[t]) * (t + xm - 2 * xr)))


@dataclass(frozen=True)
class TWave:
    """A T wave's peak and end in the median beat. end_hidden is True where the T wave
    is still falling at the latest it may end (T_BEFORE_NEXT_QRS_MS before the next
    QRS): end is then only that bound, and no QT can be measured from it."""

    peak: int
    end: int
    end_hidden: bool = False


def locate_t(
    median: np.ndarray, leads: np.ndarray, qrs_on: int, qrs_off: int, rr: float
) -> tuple[TWave | None, str]:
    """The T wave after the QRS, or None with the reason it was not found."""
    x = _smooth_rows(median[leads], samples(T_SMOOTH_MS))
    level = x[:, qrs_on - 3 : qrs_on].mean(axis=1, keepdims=True)
    magnitude = np.sqrt(((x - level) ** 2).sum(axis=0))
    lo = qrs_off + samples(40)
    hi = min(qrs_on + min(int(0.6 * rr), samples(T_SEARCH_MS)), magnitude.size - 1)
    flat = "T wave too flat to locate its end"
    if hi - lo < samples(40):
        return None, flat
    peak = lo + int(np.argmax(magnitude[lo:hi]))
    limit = min(qrs_on + int(rr) - samples(T_BEFORE_NEXT_QRS_MS), magnitude.size - 1)
    late = peak >= hi - 2 and hi < limit
    if late:
        # Still rising at 60 % of the RR: at 130-165/min the T peak lies at 55-65 % of it
        # (tuning seeds 1, 3-7). Its peak is where that rise stops, short of the latest the
        # T wave may end; further on the next P wave may stand higher than the T wave.
        peak = _end_of_rise(magnitude, peak, limit)
    if magnitude[peak] < MIN_T_MV or peak >= max(hi, limit) - 2:
        return None, flat
    if limit <= peak + 1:
        # Above about 200/min the T peak lies at or past the latest the T wave may end.
        return TWave(peak, limit, end_hidden=True), T_END_HIDDEN
    slope = np.diff(magnitude)
    steepest = peak + int(np.argmin(slope[peak : min(peak + samples(150), limit)]))
    stop = min(steepest + samples(T_TRAPEZIUM_MS), limit)
    end = _trapezium_end(magnitude, steepest, stop)
    # A descent that only ends at the limit runs into the next beat (at fast rates
    # with a long PR, the next P wave starts on it): an end there would be a guess.
    if stop == limit and end >= limit - 1:
        return TWave(peak, end, end_hidden=True), T_END_HIDDEN
    if late:
        return TWave(peak, end, end_hidden=True), T_PEAK_LATE
    return TWave(peak, end), ""


@dataclass(frozen=True)
class PWave:
    """A P wave's extent in the median beat. onset_clear is False where no isoelectric
    TP segment separates it from the previous T wave: the extent found lies within the
    P wave but its onset is not the P wave's, so no PR or P duration is measured.
    onset_stalls is True where the onset may lie on a deflection before the P wave
    (P_ONSET_STALLS): where the onset is otherwise clear, no P measurement at all."""

    onset: int
    offset: int
    onset_clear: bool = True
    onset_stalls: bool = False


def _end_of_rise(y: np.ndarray, start: int, stop: int) -> int:
    """Where y, rising at start, stops rising before stop."""
    falls = np.flatnonzero(np.diff(y[start:stop]) < 0)
    return start + int(falls[0]) if falls.size else stop - 1


def locate_p(
    median: np.ndarray,
    leads: np.ndarray,
    qrs_on: int,
    previous_t_end: int,
    noise: float,
    t_end_located: bool = True,
) -> tuple[PWave | None, str]:
    """The P wave before the QRS, or None with the reason it was not found.

    previous_t_end is where the previous T wave ends, or, without t_end_located, the
    earliest it can end: then a P onset found after it cannot be told from the T
    wave's tail, and is not clear.

    The P wave is the largest deflection of the spatial magnitude in the search
    window. Its isoelectric reference is a straight line from a flat moment before
    the P wave to the PR segment: the end of the T wave or a U wave is not
    isoelectric, and a reference there reads their tail as an early P onset. The
    flattest moment of the whole TP segment (between the previous T wave and the
    P wave) first finds the P wave's steepest rise; the line is then re-anchored at
    the flattest moment within P_ANCHOR_MS before that rise, since the leads
    drift over a long TP segment and a far anchor reads the drift as an early P
    onset. That anchor is also the trapezium's reference
    point for the onset; the offset is a trapezium point after the steepest fall.
    That fall is looked for no nearer than P_PIN_MARGIN_MS to the PR segment's end:
    the line is pinned to the signal there, so where the PR segment sits away from
    the line (atrial repolarisation) the magnitude drops into the pin faster than
    the P wave itself falls.
    Where the anchor lies on a U wave or the T wave's tail that returns to the line just
    before the P wave, the onset is where the rise stalls at the line
    (_past_return_to_line). A wave under MIN_P_MV is filter ripple, not a P wave; and
    where the anchor itself lies on the P wave (_anchor_on_the_wave), no isoelectric
    baseline precedes it. A P wave over P_STALLED_LONGEST_MS whose rise slows before its
    steepest (_stall) is returned with onset_stalls: its onset may lie on a deflection
    before it.
    """
    lo = qrs_on - samples(P_SEARCH_MS)
    after_t = previous_t_end + samples(P_AFTER_T_MS) > lo
    if after_t:
        lo = previous_t_end + samples(P_AFTER_T_MS)
    lo = max(lo, 4)
    # The smoothing lets the QRS leak this far back: the PR segment ends here.
    pr_end = qrs_on - samples(P_SMOOTH_MS) // 2 - 2
    hi = pr_end - samples(4)
    if hi - lo < samples(60):
        return None, "no room for a P wave between the previous T wave and the QRS"
    x = _smooth_rows(median[leads], samples(P_SMOOTH_MS))
    above_tp = _magnitude_above_line(x, lo, pr_end)
    peak = lo + int(np.argmax(above_tp[lo:hi]))
    if noise > 0 and above_tp[peak] < MIN_P_SNR * noise:
        return None, "no P wave distinguishable from noise"
    if peak - lo < samples(10) or hi - peak < samples(4):
        return None, "no P wave before the QRS"
    anchor = _flattest(x, lo, peak - samples(20))
    rise = _steepest_rise(_magnitude_above_line(x, anchor, pr_end), anchor, peak)
    # Stop 10 ms short of the rise, so that the anchor cannot land on the upstroke.
    anchor = _flattest(x, max(lo, rise - samples(P_ANCHOR_MS)), rise - samples(10))
    magnitude = _magnitude_above_line(x, anchor, pr_end)
    rise = _steepest_rise(magnitude, anchor, peak)
    fall_stop = max(peak + 1, pr_end - samples(P_PIN_MARGIN_MS))
    fall = peak + int(np.argmin(np.diff(magnitude)[peak:fall_stop]))
    foot = _trapezium_start(magnitude, anchor, rise)
    onset = _past_return_to_line(magnitude, above_tp, anchor, foot, rise, pr_end)
    offset = _trapezium_end(magnitude, fall, min(fall + samples(P_TRAPEZIUM_MS), pr_end))
    top = onset + int(np.argmax(magnitude[onset : offset + 1]))
    if magnitude[top] < MIN_P_MV:
        return None, f"no P wave of {MIN_P_MV} mV or more before the QRS"
    if _anchor_on_the_wave(x, anchor, pr_end, top):
        return None, P_WITHOUT_BASELINE
    onset_clear = not (after_t and (not t_end_located or onset - lo < samples(P_MIN_TP_MS)))
    stalls = onset == foot and _stall(magnitude, onset, rise, P_LONG_STALL_SLOPE) is not None
    onset_stalls = stalls and offset - onset > samples(P_STALLED_LONGEST_MS)
    return PWave(onset, offset, onset_clear, onset_stalls), ""


def _past_return_to_line(
    magnitude: np.ndarray, above_tp: np.ndarray, anchor: int, onset: int, rise: int, pr_end: int
) -> int:
    """The P onset past a preceding wave's return to the isoelectric line, or onset.

    magnitude is measured from the anchor, above_tp from the whole TP segment's line
    (the previous T wave's end to the PR segment). Where the anchor lies on a U wave or
    the T wave's tail, the magnitude from the anchor rises twice: as that wave returns
    to the line, then as the P wave leaves it; the trapezium, seeing one slow foot,
    puts the onset near the anchor. Between the two the rise stalls at the line: the
    P wave starts there. A bifid P wave stalls too, but away from the line.
    """
    height = float(magnitude[onset:pr_end].max())
    stall = _stall(magnitude, onset, rise)
    if stall is None:
        return onset
    at_line = above_tp[stall] < P_RETURN_LEVEL * height
    anchor_off_line = above_tp[anchor] > above_tp[stall] + P_RETURN_DROP * height
    return stall if at_line and anchor_off_line else onset


def _stall(
    magnitude: np.ndarray, onset: int, rise: int, slowest: float = P_STALL_SLOPE
) -> int | None:
    """Where the rise from onset to the steepest rise pauses (slope at most `slowest`
    of the steepest, after at least P_STALL_GAIN of its rise), or None."""
    slope = np.diff(magnitude)
    span = np.arange(onset, rise)
    stalled = (slope[span] <= slowest * slope[rise]) & (
        magnitude[span] - magnitude[onset] >= P_STALL_GAIN * (magnitude[rise] - magnitude[onset])
    )
    if not stalled.any():
        return None
    return int(span[stalled][np.argmin(slope[span][stalled])])


def _steepest_rise(magnitude: np.ndarray, anchor: int, peak: int) -> int:
    """Where the magnitude rises fastest between anchor and peak: the trapezium's
    inner point, inside the wave's upstroke whatever its amplitude."""
    if peak <= anchor:
        return anchor
    return anchor + int(np.argmax(np.diff(magnitude)[anchor:peak]))


def _end_levels(x: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Per lead, the level just after start and just before stop."""
    return x[:, start : start + 4].mean(axis=1), x[:, stop - 4 : stop].mean(axis=1)


def _line_through(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Per lead, the straight line from its level at start to its level at stop."""
    first, last = _end_levels(x, start, stop)
    weight = (np.arange(x.shape[1]) - start) / (stop - start)
    return first[:, None] + (last - first)[:, None] * weight[None, :]


def _magnitude_above_line(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Spatial magnitude above the straight line from the level at start to that at stop."""
    return np.sqrt(((x - _line_through(x, start, stop)) ** 2).sum(axis=0))


def _anchor_on_the_wave(x: np.ndarray, anchor: int, pr_end: int, peak: int) -> bool:
    """True where the leads at the anchor stand away from their level at the PR
    segment, against the wave found, by more than P_ANCHOR_DISPLACEMENT of it.

    A P wave rises from the isoelectric level and falls back to it, so the anchor and
    the PR segment share a level (or, with atrial repolarisation, the anchor sits a
    little toward the P wave). An anchor on the P wave's peak reads the wave's fall
    to the PR segment as a wave pointing the other way.
    """
    first, last = _end_levels(x, anchor, pr_end)
    wave = x[:, peak] - (first + (last - first) * (peak - anchor) / (pr_end - anchor))
    return float((first - last) @ wave) < -P_ANCHOR_DISPLACEMENT * float(wave @ wave)


def _flattest(x: np.ndarray, start: int, stop: int) -> int:
    """Where the leads move least (40 ms mean spatial velocity) in [start, stop)."""
    half = samples(20)
    if stop - start < 3:
        return start
    lo, hi = max(start - half, 0), min(stop + half, x.shape[1] - 1)
    velocity = np.sqrt((np.diff(x[:, lo : hi + 1], axis=1) ** 2).sum(axis=0))
    mean = np.convolve(velocity, np.ones(2 * half) / (2 * half), "same")
    return start + int(np.argmin(mean[start - lo : stop - lo]))


def p_wave_correlations(
    sig: np.ndarray,
    leads: np.ndarray,
    positions: np.ndarray,
    median: np.ndarray,
    p_on: int,
    p_off: int,
) -> np.ndarray:
    """Each beat's correlation of its P-wave window with the median P wave (beats whose
    window leaves the record are left out).

    In sinus rhythm every beat carries the same P wave (typically 0.7-0.95); in
    atrial fibrillation the median beat's 'P wave' is a remnant of unrelated
    fibrillatory waves and single beats do not resemble it.
    """
    start, stop = p_on - PRE - samples(10), p_off - PRE + samples(10)
    windows = beat_windows(sig[leads], positions, start, stop)
    reference = median[leads, p_on - samples(10) : p_off + samples(10)]
    reference = reference - reference.mean(axis=1, keepdims=True)
    valid = ~np.isnan(windows).any(axis=(0, 2))
    beats = windows[:, valid, :]
    beats = beats - beats.mean(axis=2, keepdims=True)
    numerator = np.einsum("lbw,lw->b", beats, reference)
    denominator = np.sqrt(np.einsum("lbw,lbw->b", beats, beats) * (reference**2).sum()) + 1e-12
    return numerator / denominator


def p_wave_consistency(correlations: np.ndarray) -> float:
    """The median beat-to-beat P correlation (0 without any beat to judge)."""
    return float(np.median(correlations)) if correlations.size else 0.0
