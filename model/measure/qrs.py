"""The global QRS onset and offset, on the spatial velocity of the median beats.

IEC 60601-2-25 measures the QRS from its earliest onset in any lead to its latest
offset in any lead. A minimum over per-lead onsets lets one noisy lead move the
result; the spatial velocity of the eight independent leads (the square root of
their summed squared slopes) rises as soon as the first lead moves and settles only
when the last one has, so a threshold on it finds the same global points robustly.
The QRS is located on the 0.5-40 Hz median beats and its edges followed on the
0.5-150 Hz ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from model.beats import FS, samples
from model.measure.leads import PRE

# The QRS "core" is where the 40 Hz spatial velocity exceeds QRS_CORE_FRACTION of its
# peak (gaps up to QRS_GAP_MS bridged, for notched complexes). Onset and offset are where
# the 150 Hz velocity stays (QUIET_RUN samples) below QRS_EDGE_FRACTION of its peak above
# the quiet level next to the complex, and at least QRS_NOISE_FACTOR times that level,
# searched at most QRS_HEAD_MS before and QRS_TAIL_MS after the core; both are then
# followed down to QRS_FOOT_FRACTION while the velocity still falls (at most 10 ms).
# Chosen to put synthetic QRS edges within 4 ms of the truth (docs/measurement.md).
QUIET_RUN = 3
QRS_NOISE_FACTOR = 3.0
QRS_CORE_FRACTION = 0.15
QRS_EDGE_FRACTION = 0.05
QRS_FOOT_FRACTION = 0.02
# Under 500 Hz nothing lies above the Nyquist frequency and the interpolation to 500 Hz
# spreads each edge's foot by about a sample, so the edges are taken higher up the slope.
LOW_RATE_EDGE_FRACTION = 0.07
LOW_RATE_FOOT_FRACTION = 0.035
# The offset also stops in a velocity valley below this fraction of the peak (steep ST).
QRS_VALLEY_FRACTION = 0.05
# Slow initial forces separated from the main deflection by a dip that is not quiet are
# QRS: a hump of INITIAL_HUMP_FACTOR times the edge level within INITIAL_FORCES_MS
# before the onset, the dip staying above INITIAL_DIP_QUIET_FACTOR times the quiet level
# (a P wave's hump is a few % of the peak velocity, the edge level 5 %).
INITIAL_FORCES_MS = 20
INITIAL_HUMP_FACTOR = 1.5
INITIAL_DIP_QUIET_FACTOR = 2.0
QRS_HEAD_MS = 60
# The edges walked on the 150 Hz velocity are kept within those the same walk finds on
# the 40 Hz one, give or take LOW_PASS_MARGIN samples: a 40 Hz low-pass spreads a QRS
# edge outward, so on a clean ECG its edges lie at or outside the 150 Hz ones (the
# synthetic grid and random sets, the CinC 2021 records, the WFDB samples: no edge
# moves), and where the 150 Hz walk reaches further out it followed ripple above 40 Hz,
# not a QRS slope (noise in one lead; in LUDB, whose leads are each rescaled, a small
# lead's noise enlarged). Two samples: the 3-sample smoothing of the 40 Hz velocity
# moves its edge by one (the Mortara cart's offset lies one sample outside the 40 Hz
# one); LUDB QRS against the median lead -0.3 +- 10.9 -> -1.8 +- 8.2 ms, with one
# sample -2.4 +- 8.0 and more records changed (docs/measurement.md 3.1).
LOW_PASS_MARGIN = 2
QRS_TAIL_MS = 50
# A slow terminal S wave: at its nadir every lead turns at once, so the spatial velocity
# falls to zero while the signal is still far from its isoelectric level, and the offset
# walk stops there (a Philips PageWriter ECG here: QRS 52 ms against the cart's 102).
# Where, after its lowest point within TERMINAL_NADIR_MS of the offset, the velocity
# rises again above the edge level (a dip, not a slur under it) and, within
# TERMINAL_RETURN_MS, flattens below TERMINAL_FLAT_FRACTION of its peak,
# after moving the leads by at least TERMINAL_RETURN_FRACTION of the QRS's peak spatial
# magnitude and bringing their distance from the PR-segment level down to
# TERMINAL_RETURN_RATIO of what it was at the offset or less, that return is QRS. ST elevation (the leads stay away from the PR level) or a
# T wave (it moves them further away) fails the last test. Set on the PageWriter and on
# synthetic ECGs with such an S wave; no LUDB, CinC 2021 or WFDB sample QRS changes
# (docs/measurement.md 3.1).
TERMINAL_FLAT_FRACTION = 0.025
TERMINAL_NADIR_MS = 10
TERMINAL_RETURN_MS = 60
TERMINAL_RETURN_FRACTION = 0.1
TERMINAL_RETURN_RATIO = 0.5
# Bridges the notch between S and R' of a right bundle branch block (30 ms in LUDB 108).
QRS_GAP_MS = 40
# Below this spatial QRS-to-noise ratio no interval, axis or amplitude is given (clean
# ECGs: 12 and up); down to MIN_RHYTHM_SNR the rhythm is still judged: coarse
# fibrillatory waves (0.15-0.2 mV) count as beat-to-beat noise and score 6.7-7.5
# (synthetic tuning set), yet the rhythm is plain. Noise taken for beats is stopped
# before, by the beats' prominence (model.measure.pipeline.MIN_QRS_PROMINENCE).
MIN_QRS_SNR = 8.0
MIN_RHYTHM_SNR = 6.0


def spatial_velocity(median: np.ndarray, leads: np.ndarray, smooth: int = 1) -> np.ndarray:
    """Length of the multi-lead slope vector, lightly smoothed (3 samples)."""
    slope = np.diff(median[leads], axis=1)
    velocity = np.sqrt((slope**2).sum(axis=0))
    if smooth == 1:
        return velocity
    return np.convolve(velocity, np.ones(smooth) / smooth, mode="same")


def _quiet_level(v: np.ndarray, start: int, stop: int) -> float:
    """Lowest 20 ms mean of the velocity in [start, stop): the isoelectric slope level."""
    start, stop = max(start, 0), min(stop, v.size)
    if stop - start < samples(20):
        return float(v[start:stop].min()) if stop > start else 0.0
    return float(np.convolve(v[start:stop], np.ones(samples(20)) / samples(20), "valid").min())


def _qrs_core(v: np.ndarray) -> tuple[int, int, int]:
    """Peak and extent of the QRS high-velocity region around the fiducial."""
    lo, hi = PRE - samples(80), PRE + samples(80)
    peak = lo + int(np.argmax(v[lo:hi]))
    above = v > QRS_CORE_FRACTION * v[peak]
    gap = samples(QRS_GAP_MS)
    start = peak
    while start > PRE - samples(200) and above[max(0, start - gap) : start].any():
        start -= 1
    end = peak
    while end < PRE + samples(300) and above[end + 1 : end + 1 + gap].any():
        end += 1
    return peak, start, end


def locate_qrs(
    v_core: np.ndarray, v: np.ndarray, source_fs: float = FS, signals: np.ndarray | None = None
) -> tuple[int, int]:
    """Global QRS onset and offset on the spatial velocity of the median beats.

    The QRS core is found on v_core (0.5-40 Hz, smoothed: robust against noise);
    its edges are then followed outward on v (diagnostic bandwidth, unsmoothed:
    accurate) until the velocity falls to QRS_EDGE_FRACTION of its peak (the
    LOW_RATE_ fractions for recordings under 500 Hz), but never below
    QRS_NOISE_FACTOR times the quiet level next to the complex, the onset carried
    back over slow initial forces (_walk_edges). Those edges are kept within the ones
    the same walk finds on v_core, give or take LOW_PASS_MARGIN: ripple above 40 Hz
    is not a QRS slope. The offset is then carried on over a slow terminal S wave's
    return (_terminal_return, given the leads' signals that v was taken from), and
    both edges are followed to their foot. source_fs is the rate the ECG was
    recorded at, before resampling to FS.
    """
    edge_fraction, foot_fraction = (
        (QRS_EDGE_FRACTION, QRS_FOOT_FRACTION)
        if source_fs >= FS
        else (LOW_RATE_EDGE_FRACTION, LOW_RATE_FOOT_FRACTION)
    )
    walk = _walk_edges(v_core, v, edge_fraction)
    onset, offset = walk.onset, walk.offset
    if v is not v_core:
        low_pass = _walk_edges(v_core, v_core, edge_fraction)
        onset = max(onset, low_pass.onset - LOW_PASS_MARGIN)
        offset = min(offset, low_pass.offset + LOW_PASS_MARGIN)
    onset = _foot(v, onset, -1, walk.level(foot_fraction, walk.base_on))
    if signals is not None:
        flat = walk.level(TERMINAL_FLAT_FRACTION, walk.base_off)
        edge = walk.level(edge_fraction, walk.base_off)
        offset = _terminal_return(v, signals, onset, offset, flat, edge)
    offset = _foot(v, offset, +1, walk.level(foot_fraction, walk.base_off))
    return onset, offset


@dataclass(frozen=True)
class EdgeWalk:
    """Where the edge walk on one velocity stopped, and the levels it was measured by:
    the peak velocity and the quiet level before and after the complex."""

    onset: int
    offset: int
    peak: float
    base_on: float
    base_off: float

    def level(self, fraction: float, base: float) -> float:
        """fraction of the peak above the quiet level base, and at least
        QRS_NOISE_FACTOR times it."""
        return max(base + fraction * (self.peak - base), QRS_NOISE_FACTOR * base)


def _walk_edges(v_core: np.ndarray, v: np.ndarray, edge_fraction: float) -> EdgeWalk:
    """Walk outward on v from the QRS core found on v_core until v stays at the edge
    level (edge_fraction of the peak above the quiet level); the onset carried back
    over slow initial forces."""
    _, start, end = _qrs_core(v_core)
    peak = start + int(np.argmax(v[start : end + 1]))
    base_on = _quiet_level(v, start - samples(200), start)
    base_off = _quiet_level(v, end, end + samples(150))
    found = EdgeWalk(start, end, float(v[peak]), base_on, base_off)
    edge_on, edge_off = found.level(edge_fraction, base_on), found.level(edge_fraction, base_off)
    start = _first_above(v, start, peak, edge_on)
    end = _first_above(v, end, peak, edge_off)
    onset = _walk(v, start, -1, edge_on, samples(QRS_HEAD_MS))
    onset = _initial_forces_start(v, onset, edge_on, INITIAL_DIP_QUIET_FACTOR * base_on)
    offset = _walk(
        v, end, +1, edge_off, samples(QRS_TAIL_MS), valley_below=QRS_VALLEY_FRACTION * v[peak]
    )
    return replace(found, onset=onset, offset=offset)


def _terminal_return(
    v: np.ndarray, signals: np.ndarray, onset: int, offset: int, flat: float, edge: float
) -> int:
    """The QRS offset, carried on over a slow terminal S wave that the walk stopped at.

    signals are the leads v was taken from; the distance of their vector from its
    PR-segment level (the samples up to the onset) says how far from isoelectric the
    signal still is. Returns the offset unchanged unless the velocity leaves the nadir
    (the lowest velocity within TERMINAL_NADIR_MS, and whatever stays at or below flat
    for TERMINAL_NADIR_MS more), rises above the edge level again (the walk stopped in
    a dip; a slur that stays under the edge level is left out, as everywhere else) and
    stays at or below flat for QUIET_RUN samples again within TERMINAL_RETURN_MS,
    having returned toward the PR level (TERMINAL_ constants).
    """
    stop = min(offset + samples(TERMINAL_RETURN_MS), v.size - QUIET_RUN)
    nadir = offset + int(np.argmin(v[offset : offset + samples(TERMINAL_NADIR_MS)]))
    end = nadir
    while end < min(nadir + samples(TERMINAL_NADIR_MS), stop) and v[end] <= flat:
        end += 1
    while end < stop and not (v[end : end + QUIET_RUN] <= flat).all():
        end += 1
    if end >= stop or v[nadir:end].max(initial=0.0) <= edge:
        return offset
    pr_level = signals[:, max(onset - 4, 0) : onset + 1].mean(axis=1, keepdims=True)
    distance = np.sqrt(((signals - pr_level) ** 2).sum(axis=0))
    moved = float(np.sqrt(((signals[:, end] - signals[:, offset]) ** 2).sum()))
    returned = distance[end] <= TERMINAL_RETURN_RATIO * distance[offset]
    if returned and moved >= TERMINAL_RETURN_FRACTION * distance[onset : offset + 1].max():
        return end
    return offset


def _initial_forces_start(v: np.ndarray, onset: int, edge: float, quiet: float) -> int:
    """The QRS onset, moved back over initial forces that the edge walk stopped short of.

    Where the QRS loop turns after slow initial forces (a septal q wave), the velocity
    dips below the edge level for a few samples without going quiet, then rises
    again; the walk stops in that dip, up to 20 ms inside the QRS. A velocity hump of
    INITIAL_HUMP_FACTOR times the edge level within INITIAL_FORCES_MS before the onset,
    joined to it without a sample at or below quiet (the isoelectric level), is part of
    the QRS: the walk resumes from it.
    """
    lo = max(onset - samples(INITIAL_FORCES_MS), 1)
    if lo >= onset:
        return onset
    hump = lo + int(np.argmax(v[lo:onset]))
    if v[hump] <= INITIAL_HUMP_FACTOR * edge or v[hump : onset + 1].min() <= quiet:
        return onset
    return _walk(v, hump, -1, edge, samples(QRS_HEAD_MS))


def _first_above(v: np.ndarray, i: int, toward: int, threshold: float) -> int:
    """Move from i toward `toward` to the first sample above threshold.

    The core found on the 40 Hz velocity can reach past the true edge (the
    low-pass spreads it); the edge walk must start inside the complex.
    """
    step = 1 if toward > i else -1
    while i != toward and v[i] <= threshold:
        i += step
    return i


def _walk(
    v: np.ndarray, start: int, step: int, threshold: float, limit: int, valley_below: float = 0.0
) -> int:
    """From start, move in direction step until v stays at or below threshold for
    QUIET_RUN samples in a row (at most limit): one noise dip does not end a wave.

    With valley_below, also stop in a valley of v lower than that: where the QRS
    runs straight into a steep ST segment, v never gets down to the threshold.
    """
    i = start
    for _ in range(limit):
        ahead = (
            v[i : i + step * QUIET_RUN : step] if step > 0 else v[max(i - QUIET_RUN + 1, 0) : i + 1]
        )
        nxt = i + step
        if nxt <= 0 or nxt >= v.size - 1 or (ahead <= threshold).all():
            break
        if v[i] < valley_below and v[nxt] >= v[i]:
            break
        i = nxt
    return i


def _foot(v: np.ndarray, i: int, step: int, floor: float, limit: int = 5) -> int:
    """Refine an edge to the foot of the slope: keep going while v still falls (<= 10 ms)."""
    for _ in range(limit):
        nxt = i + step
        if nxt <= 0 or nxt >= v.size - 1 or not (floor < v[nxt] < v[i]):
            break
        i = nxt
    return i


def too_noisy_for_wideband(v_core: np.ndarray, v_wide: np.ndarray) -> bool:
    """True when the 150 Hz velocity's quiet level is over a tenth of its QRS peak.

    Then muscle noise, not the QRS, sets its edges, and the 40 Hz velocity (about
    5 ms wider per edge, but stable) delimits the QRS instead.
    """
    _, start, end = _qrs_core(v_core)
    peak = float(v_wide[start : end + 1].max())
    quiet = _quiet_level(v_wide, start - samples(200), start)
    return quiet > 0.1 * peak


def qrs_to_noise(median: np.ndarray, noise: np.ndarray, leads: np.ndarray) -> float:
    """Spatial QRS amplitude of the median beat over the spatial beat-to-beat noise.

    Clean resting ECGs score 12 and far more; when noise peaks were taken for
    beats, the 'median QRS' is noise itself and scores near 1.
    """
    qrs = median[leads, PRE - samples(60) : PRE + samples(60)]
    amplitude = np.sqrt(((qrs - qrs[:, :1]) ** 2).sum(axis=0)).max()
    return float(amplitude / (np.sqrt((noise[leads] ** 2).sum()) + 1e-9))
