"""Flutter conducted at a fixed ratio (2:1, 3:1, 4:1): the atrial wave before the QRS
repeats one flutter cycle earlier, inside the previous beat's ST-T.

At fixed conduction every flutter wave is locked to the QRS: the QRS-T cancellation of
model.measure.atrial takes them all away, and at 2:1 (and 3:1 at fast flutter rates)
no TQ segment is left to see one repeat in. What stays is the median cycle, from one
QRS onset to the next: there an atrial wave repeating at RR/k shows k copies, one
before the QRS and the others inside the ST-T complex. The T wave is removed by
projecting the eight independent leads off its direction (the first principal
direction of the ST-T up to 60 ms after the T peak, taken square to the atrial wave
before the QRS, so that a large flutter wave inside the ST-T does not pull the T
direction onto itself and go with it); a sinus P wave, once per cycle, then leaves
nothing alike one flutter cycle earlier, while flutter waves repeat with the same
shape and size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.beats import FS, WIDE_QRS_MS, Beats, beat_windows, median_over_beats, samples
from model.measure.leads import INDEPENDENT_LEADS, LEAD_INDEX, PRE
from model.measure.result import Fiducials

# The flutter cycle (ms): 240-340/min, as model.measure.atrial.FLUTTER_HZ.
FLUTTER_CYCLE_MS = (60000 / 340, 60000 / 240)
CONDUCTION_RATIOS = (2, 3, 4)
# Every earlier copy correlates this well with the wave before the QRS and is this
# close in size (synthetic tuning seeds 1 and 3: flutter 0.8-1.0 and 0.5-1.5; sinus
# rhythms at 110-160/min and fibrillation at the same rates -0.3 to 0.35; LUDB 35, typical
# flutter at 2:1, 0.69).
MIN_COPY_CORRELATION = 0.6
COPY_SIZE = (0.4, 2.5)
# The window compared: up to this long, ending 10 ms before the QRS, and starting no
# nearer than 30 ms after the previous QRS's end once shifted back k-1 cycles.
WINDOW_MS = 120
MIN_WINDOW_MS = 30
# Fixed conduction: at least this share of the RRs lie within LOCKED_RR of the dominant
# RR, and only the beats after such an RR make the median cycle (LUDB 35, flutter at 2:1
# with a few 3:1 and 4:1 cycles: 14 of 21; LUDB 101, atrial fibrillation: 4 of 12).
LOCKED_RR = 0.02
LOCKED_SHARE = 0.5
# The T wave's direction is read over at least this much of the ST-T (ms). Read from
# its change over one flutter cycle instead, which flutter waves leave alone, it took
# sinus P waves into it: 22 of 430 synthetic sinus tachycardias were called flutter.
MIN_ST_T_MS = 40
# Below this (mV RMS over the eight leads, T direction removed) there is no wave to
# compare, only filter ripple of a noise-free recording.
MIN_WAVE_MV = 0.015
# Where the measured QRS leaves no window, it is tried again as no wider than a narrow
# QRS can be (WIDE_QRS_MS): at 2:1 the flutter wave after the QRS fuses with it, and synthetic flutters at 130-170/min
# (tuning seeds 1 and 3-7) measured 150-260 ms with a QRS drawn 80-110 ms wide; they were
# named no rhythm, or sinus tachycardia from the flutter wave before the QRS.
# Ended at WIDE_QRS_MS, the copy starts 20 ms later, in the early ST that the one T
# direction removed leaves (copies 1.0-7.4 the wave's size): a measured QRS wider than
# these is also tried as ending here (ms), the copy then lying on the flutter wave fused
# with its end, and accepted only at FUSED_MIN_CORRELATION, as the window left is short
# (30-80 ms). Tuning seeds 1 and 3-7, 2:1 flutters with 0.2-0.3 mV waves, QRS drawn
# 80-110 ms measured 154-234 ms: 0.86-0.98 where found; sinus tachycardias drawn with a
# QRS of 120-160 ms: at most 0.64 (docs/measurement.md 3.26).
FUSED_QRS_ENDS_MS = (150, 140)
FUSED_MIN_CORRELATION = 0.8


@dataclass(frozen=True)
class ConductedFlutter:
    """Flutter waves at fixed conduction: the atrial rate (Hz), the ratio of atrial
    waves to QRS complexes, the copies' lowest correlation and the wave's RMS (mV);
    fused where the copies were found taking the QRS as narrower than measured, a
    flutter wave then fusing with its end."""

    hz: float
    ratio: int
    correlation: float
    rms_mv: float
    fused: bool = False


def conducted_flutter(sig: np.ndarray, beats: Beats, fid: Fiducials) -> ConductedFlutter | None:
    """Flutter at a fixed 2:1, 3:1 or 4:1 conduction, where most RRs are one and the
    same and the median cycle of the beats after them holds k alike atrial waves RR/k
    apart (RR/k a flutter cycle); else None."""
    rr = round(beats.dominant_rr)
    locked = beats.both_normal & (np.abs(beats.rr - beats.dominant_rr) <= LOCKED_RR * rr)
    if locked.sum() < max(3, LOCKED_SHARE * beats.rr.size):
        return None
    rows = [LEAD_INDEX[n] for n in INDEPENDENT_LEADS]
    windows = median_cycle(sig[rows], beats.positions[1:][locked], fid.qrs_on, rr)
    if windows is None:
        return None
    cycle = median_over_beats(windows)
    qrs = fid.qrs_off - fid.qrs_on
    t_peak = fid.t_peak - fid.qrs_on if fid.t_peak is not None else qrs + samples(100)
    st_t = (qrs + samples(20), min(t_peak + samples(60), rr))
    if st_t[1] - st_t[0] < samples(MIN_ST_T_MS):
        return None
    for ratio in CONDUCTION_RATIOS:
        lag = rr / ratio
        if not samples(FLUTTER_CYCLE_MS[0]) - 2 <= lag <= samples(FLUTTER_CYCLE_MS[1]) + 2:
            continue
        for qrs_end, least in _qrs_ends(qrs):
            found = _alike_copies(cycle, st_t, rr, round(lag), ratio, qrs_end)
            if found is not None and found[0] >= least:
                return ConductedFlutter(FS / lag, ratio, *found, fused=qrs_end < qrs)
    return None


def _qrs_ends(qrs: int) -> list[tuple[int, float]]:
    """(QRS end, least copy correlation) to try, in order: the measured end, no wider
    than a narrow QRS, then the ends a fused flutter wave may hide inside it."""
    ends = dict.fromkeys((qrs, min(qrs, samples(WIDE_QRS_MS))), MIN_COPY_CORRELATION)
    for end in map(samples, FUSED_QRS_ENDS_MS):
        if end < qrs:
            ends.setdefault(end, FUSED_MIN_CORRELATION)
    return list(ends.items())


def median_cycle(sig: np.ndarray, positions: np.ndarray, qrs_on: int, rr: int) -> np.ndarray | None:
    """(leads, beats, rr) windows from the previous QRS onset (index 0) to each beat's
    own (index rr), qrs_on being the median beat's; None with fewer than 3 inside."""
    windows = beat_windows(sig, positions, qrs_on - PRE - rr, qrs_on - PRE)
    windows = windows[:, ~np.isnan(windows).any(axis=(0, 2))]
    return windows if windows.shape[1] >= 3 else None


def _off_t_wave(cycle: np.ndarray, st_t: tuple[int, int], atrial: np.ndarray) -> np.ndarray:
    """The cycle projected off the T wave's direction: the first principal direction
    of the eight leads over st_t (20 ms after the QRS to 60 ms after the T peak) square
    to the atrial wave's own (`atrial`, the window before the QRS). Taken over the
    ST-T alone, it leaned toward flutter waves of 0.2-0.3 mV inside the ST-T and took
    most of them away (synthetic tuning seeds: copies 0.23-0.63 the size)."""
    atrial_direction = _principal_direction(atrial)
    window = _centred(cycle[:, st_t[0] : st_t[1]])
    window = window - np.outer(atrial_direction, atrial_direction @ window)
    direction = _principal_direction(window)
    return cycle - np.outer(direction, direction @ cycle)


def _principal_direction(x: np.ndarray) -> np.ndarray:
    """The unit direction (over the leads) along which x, centred, varies most."""
    return np.linalg.svd(_centred(x), full_matrices=False)[0][:, 0]


def _alike_copies(
    cycle: np.ndarray, st_t: tuple[int, int], rr: int, lag: int, ratio: int, qrs: int
) -> tuple[float, float] | None:
    """(lowest correlation, RMS) where, the T wave removed, the window before the QRS
    and each copy 1..k-1 flutter cycles earlier are alike in shape and size; else None."""
    length = min(lag - qrs - samples(MIN_WINDOW_MS), samples(WINDOW_MS))
    if length < samples(MIN_WINDOW_MS):
        return None
    start = rr - samples(10) - length
    x = _off_t_wave(cycle, st_t, cycle[:, start : start + length])
    wave = _centred(x[:, start : start + length])
    energy = float((wave**2).sum())
    rms = float(np.sqrt((wave**2).mean(axis=1).sum()))
    if rms < MIN_WAVE_MV:
        return None
    lowest = 1.0
    for copy in range(1, ratio):
        earlier = _centred(x[:, start - copy * lag : start - copy * lag + length])
        size = np.sqrt(float((earlier**2).sum()) / energy)
        corr = float((wave * earlier).sum()) / (np.sqrt(energy * (earlier**2).sum()) + 1e-12)
        if corr < MIN_COPY_CORRELATION or not COPY_SIZE[0] <= size <= COPY_SIZE[1]:
            return None
        lowest = min(lowest, corr)
    return lowest, rms


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=1, keepdims=True)
