"""Atrial activity beat by beat, independent of the QRS: every P wave of the recording
and how each relates to the QRS that follows it (AV conduction).

The median beat describes the atrium only where every P wave is conducted at one PR.
In second- and third-degree AV block some P waves are followed by no QRS, and in
complete heart block none is locked to the QRS, so the P waves are looked for along
the whole recording instead: every beat of the dominant shape has its QRS-T complex
cancelled with the median beat (its P wave left in), what the cancellation cannot
reach (each QRS, ectopic beats) is left out, and a P-wave template is matched along
the rest, so that P waves in the TP segment, where no QRS follows, and in the T wave
are found alike. The template is the median beat's P wave where it has one, else
the largest repeating wave left; either way it is then re-estimated from the P waves
found and matched again (a Wenckebach's changing PR smears the median beat's P wave).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks

from model.beats import FS, Beats, median_over_beats, samples
from model.measure.amplitudes import frontal_axis
from model.measure.leads import LEAD_INDEX, PRE
from model.measure.rhythm import ventricular_complex

if TYPE_CHECKING:
    from model.measure.result import Fiducials

# A window is a P wave where it correlates with the template at least this well
# (each lead's mean removed, all leads together) and its size along the template
# lies within P_SIZE of the template's.
MIN_P_MATCH = 0.8
P_SIZE = (0.5, 2.0)
# Two P waves lie at least this far apart (an atrial rate up to 240/min).
MIN_PP_MS = 250
# The template is matched at every this-th sample (PWaveSearch).
SEARCH_STEP = 2
# The template found without a median-beat P wave: this window around each of the
# largest waves left (ms before, after its peak).
BOOTSTRAP_WINDOW_MS = (70, 50)
# Left out of the search, around each QRS (ms before its onset, after its end) and
# around each beat of another shape (ms before, after its position): the
# cancellation leaves the QRS's sharp edges, and an ectopic beat is not cancelled.
QRS_GUARD_MS = (10, 20)
ECTOPIC_GUARD_MS = (120, 480)
# A P wave conducts to the QRS that follows it within this PR (ms): the longest
# Wenckebach PR drawn or labelled here is under 400 ms.
PR_RANGE_MS = (80, 420)
# The atrial rhythm is regular where this share of the intervals between P waves found
# lies within ATRIAL_FIT of a whole number of atrial cycles (a P wave hidden in a QRS
# doubles one), and the P waves found are at least MIN_P_FOUND_SHARE of those expected.
ATRIAL_FIT = 0.12
MIN_ATRIAL_FIT_SHARE = 0.85
MIN_P_FOUND_SHARE = 0.7
MIN_P_WAVES = 5
# A premature atrial beat resets the sinus node: the sinus P waves around it lie its
# coupling (0.4-0.9 of a cycle) plus one return cycle (1.0-1.3: the sinus node fires
# a cycle after the premature P wave, a little later where it was slowed) apart, this
# many cycles. The Mobitz I sweep of the tuning seeds: 1.6-1.9 (docs 3.32).
RESET_CYCLES = (1.4, 2.3)
# No block is judged, and no regular atrial rhythm taken to exclude fibrillation
# (model.measure.p_timing), above this atrial rate: a sinus rhythm's here (the
# synthetic blocks are drawn at 50-110/min); every second or third fibrillatory wave,
# which the P-wave search may take for P waves, comes faster (AF sweep, tuning seeds:
# "cycles" of 268-346 ms, 173-224/min).
MAX_ATRIAL_RATE = 150
# Where the P waves found keep no regular cycle, or none is found, the search runs
# again on the residual smoothed over this much (a moving mean: white noise's power in
# the 0.5-40 Hz band-passed signal falls to 0.29, a P wave's content under 10 Hz keeps
# 0.8 of its size or more). Its P waves are taken where the first search found none,
# or where they keep a cycle at MAX_ATRIAL_RATE or slower: the search is for sinus P
# waves under noise; smoothed fibrillatory waves can keep a faster "cycle" (every
# second wave), which would hide a wandering P timing (model.measure.p_timing). Tuning
# seeds, Mobitz I at 45-110/min under 0.05-0.1 mV of noise (P waves 0.1-0.2 mV): the
# single P waves correlated 0.5-0.8 with their median, under MIN_P_MATCH, and the
# atrial rhythm was not found (docs/measurement.md 3.32). Not on paced strips: a
# stimulus, smoothed, leaves a wave locked to each paced beat that matches as a
# "P wave" (tuning seed 7 draw 364, VVI at 80/min over a sinus rhythm at 64/min:
# "P waves" at the pacing rate, 178 ms before each paced QRS).
NOISE_SMOOTHING_MS = 40


@dataclass(frozen=True)
class AtrialActivity:
    """The P waves found and their relation to the QRS complexes.

    p_onsets: each P wave's onset (samples at FS). atrial_cycle_ms: the median
    interval between successive P waves once the doubled ones are recognised; None
    where the atrial rhythm is not regular (regular_atrial_rhythm). p_axis_deg: the
    frontal axis of the P-wave template. Per beat: pr_ms, its QRS onset minus the
    onset of the last P wave before it (None without one), and conducted, whether that
    PR lies in PR_RANGE_MS. Per RR interval between two beats of the dominant shape
    (-1 where a beat of another shape takes part): p_per_interval, the P waves whose
    onset lies between the two QRS onsets. blocked: P waves not conducted, those in
    a judged interval before its last one, and its last one where it does not conduct.
    """

    p_onsets: tuple[int, ...]
    atrial_cycle_ms: float | None
    p_axis_deg: float | None
    pr_ms: tuple[float | None, ...]
    conducted: tuple[bool, ...]
    p_per_interval: tuple[int, ...]
    blocked: int

    @property
    def atrial_rate_per_min(self) -> float | None:
        return None if self.atrial_cycle_ms is None else 60000.0 / self.atrial_cycle_ms


def atrial_activity(
    sig: np.ndarray,
    leads: np.ndarray,
    beats: Beats,
    median: np.ndarray,
    fid: Fiducials,
    locked_p: bool = True,
    cancelled: tuple[np.ndarray, np.ndarray] | None = None,
    noise_retry: bool = True,
) -> AtrialActivity | None:
    """The P waves of the whole recording, or None where no repeating one is found.

    The median beat's P wave is the template where it is locked to the QRS (locked_p);
    where it precedes only some beats it is a blur of P waves at many PRs (Mobitz I,
    complete block), and the P waves are found without it (bootstrap_template).
    cancelled: the residual and its searchable samples where the caller cancelled
    the QRS-T complexes otherwise (model.measure.paced_atrial: each beat class with
    its own); by default cancelled_residual's. noise_retry: search again on the smoothed
    residual (NOISE_SMOOTHING_MS) where the P waves found keep no cycle."""
    residual, valid = cancelled or cancelled_residual(sig, beats, median, fid)
    locked = locked_p and fid.p_on is not None and fid.p_off is not None and fid.p_off > fid.p_on
    window = slice(fid.p_on, fid.p_off + 1) if locked else None
    activity = _p_waves_related(residual, leads, valid, median, window, beats, fid)
    if not noise_retry or (activity is not None and activity.atrial_cycle_ms is not None):
        return activity
    # White noise keeps a small P wave under MIN_P_MATCH; smoothed, its single
    # windows match again (docs/measurement.md 3.32).
    width = samples(NOISE_SMOOTHING_MS)
    smoothed = _p_waves_related(
        uniform_filter1d(residual, width, axis=1),
        leads,
        valid,
        uniform_filter1d(median, width, axis=1),
        window,
        beats,
        fid,
    )
    if smoothed is None:
        return activity
    rate = smoothed.atrial_rate_per_min
    return (
        smoothed if activity is None or (rate is not None and rate <= MAX_ATRIAL_RATE) else activity
    )


def _p_waves_related(
    residual: np.ndarray,
    leads: np.ndarray,
    valid: np.ndarray,
    median: np.ndarray,
    window: slice | None,
    beats: Beats,
    fid: Fiducials,
) -> AtrialActivity | None:
    """The P waves matched along the residual, the median beat's P wave (its `window`)
    the first template, else bootstrap_template's, and related to the QRS complexes."""
    template = (
        median[:, window] if window is not None else bootstrap_template(residual, leads, valid)
    )
    if template is None:
        return None
    search = PWaveSearch(residual, leads, valid)
    onsets = search.match(template)
    # Re-estimated from the P waves found, in the same window, and matched again.
    refined = p_template(residual, onsets, template.shape[1])
    if refined is None:
        return None
    onsets = search.match(refined)
    if onsets.size < MIN_P_WAVES:
        return None
    return relate_to_qrs(onsets, beats, fid, p_axis(refined, leads))


def cancelled_residual(
    sig: np.ndarray, beats: Beats, median: np.ndarray, fid: Fiducials
) -> tuple[np.ndarray, np.ndarray]:
    """The signal with every dominant-shape beat's QRS-T complex subtracted, and which
    samples may be searched (not a QRS, not near a beat of another shape)."""
    complex_ = ventricular_complex(median, fid, from_level=True)
    residual = sig.copy()
    n = sig.shape[1]
    valid = np.ones(n, dtype=bool)
    width = complex_.shape[1]
    for position, label in zip(beats.positions, beats.labels):
        start = int(position) - PRE
        if label in ("N", "S"):
            a, b = max(start, 0), min(start + width, n)
            residual[:, a:b] -= complex_[:, a - start : b - start]
            lo = start + fid.qrs_on - samples(QRS_GUARD_MS[0])
            hi = start + fid.qrs_off + samples(QRS_GUARD_MS[1])
        else:
            lo = int(position) - samples(ECTOPIC_GUARD_MS[0])
            hi = int(position) + samples(ECTOPIC_GUARD_MS[1])
        valid[max(lo, 0) : max(min(hi, n), 0)] = False
    return residual, valid


def bootstrap_template(
    residual: np.ndarray, leads: np.ndarray, valid: np.ndarray
) -> np.ndarray | None:
    """Without a median-beat P wave (complete heart block: none is locked to the QRS):
    the median of the windows around the largest waves left that resemble each other,
    from the P onset (where its size first reaches a fifth of its peak)."""
    before, after = (samples(ms) for ms in BOOTSTRAP_WINDOW_MS)
    band = _wave_band(residual[leads], valid)
    magnitude = np.where(valid, np.sqrt((band**2).sum(axis=0)), 0.0)
    peaks, props = find_peaks(magnitude, distance=samples(MIN_PP_MS), height=1e-6)
    inside = (peaks >= before) & (peaks + after < residual.shape[1])
    peaks, heights = peaks[inside], props["peak_heights"][inside]
    if peaks.size < MIN_P_WAVES:
        return None
    peaks = peaks[heights >= 0.5 * np.percentile(heights, 90)]
    peaks = np.array([p for p in peaks if valid[p - before : p + after].all()], dtype=int)
    if peaks.size < MIN_P_WAVES:
        return None
    template = p_template(residual, peaks - before, before + after)
    if template is None:
        return None
    windows = _windows(residual[leads], peaks - before, before + after)
    alike = _correlations(windows, template[leads]) >= MIN_P_MATCH
    if alike.sum() < MIN_P_WAVES:
        return None
    template = p_template(residual, peaks[alike] - before, before + after)
    if template is None:
        return None
    size = _spatial_size(template[leads])
    onset = int(np.argmax(size >= 0.2 * size.max()))
    return template[:, onset:]


def p_template(residual: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray | None:
    """The median of the windows starting at `starts` (all leads); None with too few."""
    starts = starts[(starts >= 0) & (starts + width <= residual.shape[1])]
    if starts.size < MIN_P_WAVES:
        return None
    return median_over_beats(_windows(residual, starts, width))


class PWaveSearch:
    """Matches P-wave templates along the residual's searchable windows: each lead's
    mean removed, the leads together, every SEARCH_STEP-th sample (the 0.5-40 Hz
    band-passed signal needs no more than 250 Hz; half the cost). The residual's
    spectrum and running sums are computed once for the matches with the first and the
    re-estimated template, and the leads' cross-spectra summed before one inverse FFT
    (scipy's fftconvolve per lead took a third longer)."""

    def __init__(self, residual: np.ndarray, leads: np.ndarray, valid: np.ndarray) -> None:
        self.x = residual[leads, ::SEARCH_STEP]
        self.n = self.x.shape[1]
        self.size = next_fast_len(self.n)
        self.spectrum = rfft(self.x, self.size, axis=1)
        self.total = np.cumsum(np.pad(self.x, ((0, 0), (1, 0))), axis=1)
        self.squares = np.cumsum(np.pad(self.x**2, ((0, 0), (1, 0))), axis=1)
        self.blocked = np.cumsum(np.pad(~valid[::SEARCH_STEP], (1, 0)))
        self.leads = leads

    def match(self, template: np.ndarray) -> np.ndarray:
        """The starts (samples at FS) of the windows that match the template (all
        leads; MIN_P_MATCH, P_SIZE), at least MIN_PP_MS apart."""
        t = template[self.leads, ::SEARCH_STEP]
        width = t.shape[1]
        if width * SEARCH_STEP < samples(30) or self.n <= width:
            return np.zeros(0, dtype=int)
        t = t - t.mean(axis=1, keepdims=True)
        norm = float((t**2).sum())
        if norm <= 0:
            return np.zeros(0, dtype=int)
        kernel = rfft(t, self.size, axis=1)
        # Cross-correlation: window k's dot product with the template sits at lag k.
        product = (self.spectrum * np.conj(kernel)).sum(axis=0)
        dot = irfft(product, self.size)[: self.n - width + 1]
        sums = self.total[:, width:] - self.total[:, :-width]
        squares = self.squares[:, width:] - self.squares[:, :-width]
        energy = (squares - sums**2 / width).sum(axis=0)
        correlation = dot / np.sqrt(norm * np.maximum(energy, 0.0) + 1e-18)
        size = dot / norm
        clear = (self.blocked[width:] - self.blocked[:-width]) == 0
        score = np.where(clear & (size >= P_SIZE[0]) & (size <= P_SIZE[1]), correlation, 0.0)
        distance = samples(MIN_PP_MS) // SEARCH_STEP
        found, _ = find_peaks(score, height=MIN_P_MATCH, distance=distance)
        return found * SEARCH_STEP


def relate_to_qrs(
    onsets: np.ndarray, beats: Beats, fid: Fiducials, axis: float | None
) -> AtrialActivity:
    """Each P wave against the QRS complexes around it (AtrialActivity)."""
    qrs = beats.positions - PRE + fid.qrs_on
    last = np.searchsorted(onsets, qrs) - 1  # the last P wave before each QRS onset
    pr = [(q - onsets[k]) * 1000.0 / FS if k >= 0 else None for q, k in zip(qrs, last)]
    conducted = [p is not None and PR_RANGE_MS[0] <= p <= PR_RANGE_MS[1] for p in pr]
    dominant = np.isin(beats.labels, ("N", "S"))
    counts, blocked = [], 0
    for i in range(qrs.size - 1):
        if not (dominant[i] and dominant[i + 1]):
            counts.append(-1)
            continue
        inside = int(np.count_nonzero((onsets >= qrs[i]) & (onsets < qrs[i + 1])))
        counts.append(inside)
        blocked += max(inside - 1, 0) + (inside > 0 and not conducted[i + 1])
    return AtrialActivity(
        p_onsets=tuple(int(o) for o in onsets),
        atrial_cycle_ms=atrial_cycle_ms(onsets, qrs[beats.labels == "S"]),
        p_axis_deg=axis,
        pr_ms=tuple(pr),
        conducted=tuple(conducted),
        p_per_interval=tuple(counts),
        blocked=blocked,
    )


def atrial_cycle_ms(onsets: np.ndarray, resets: np.ndarray | None = None) -> float | None:
    """The atrial cycle where the P waves found keep one: every interval between them
    (ATRIAL_FIT, MIN_ATRIAL_FIT_SHARE) a whole number of cycles, and enough of them
    found (MIN_P_FOUND_SHARE); None otherwise.

    resets: the QRS onsets of premature supraventricular beats. A premature atrial
    beat's P wave resets the sinus node, which fires again a cycle after it, not on
    its old schedule; the premature P wave, of another axis, is rarely matched. The
    interval between the sinus P waves around such a beat (the coupling plus a return
    cycle, RESET_CYCLES) is then no whole number of cycles and is not judged
    (docs/measurement.md 3.32)."""
    pp = np.diff(onsets).astype(float)
    if pp.size < MIN_P_WAVES - 1:
        return None
    shortest = pp[pp <= 1.4 * np.percentile(pp, 20)]
    cycle = float(np.median(shortest))
    multiple = np.maximum(np.round(pp / cycle), 1)
    fits = np.abs(pp - multiple * cycle) <= ATRIAL_FIT * cycle
    reset = np.zeros(pp.size, dtype=bool)
    if resets is not None:
        holding = np.searchsorted(onsets, resets) - 1
        reset[holding[(holding >= 0) & (holding < pp.size)]] = True
    lasts = (pp >= RESET_CYCLES[0] * cycle) & (pp <= RESET_CYCLES[1] * cycle)
    excused = reset & ~fits & lasts
    judged = ~excused
    if judged.sum() < MIN_P_WAVES - 1 or fits[judged].mean() < MIN_ATRIAL_FIT_SHARE:
        return None
    # The P waves expected: a whole number of cycles in each interval; where a premature
    # beat reset the sinus node, its coupling is none (the whole cycles it spans).
    cycles = np.where(reset & fits, multiple, pp / cycle)
    cycles = np.where(reset & ~fits, np.maximum(np.floor(pp / cycle), 1), cycles)
    expected = cycles.sum() + 1
    if onsets.size < MIN_P_FOUND_SHARE * expected:
        return None
    return float(np.median(pp[multiple == 1])) * 1000.0 / FS


def p_axis(template: np.ndarray, leads: np.ndarray) -> float | None:
    """The frontal axis of the P-wave template, from its limb leads' net areas against
    the line between the window's ends."""
    usable = {int(i) for i in leads}
    limb = [n for n in ("I", "II") if LEAD_INDEX[n] in usable]
    if len(limb) < 2:
        return None
    wave = template
    line = np.linspace(wave[:, :1], wave[:, -1:], wave.shape[1], axis=1)[..., 0]
    areas = {n: float((wave[LEAD_INDEX[n]] - line[LEAD_INDEX[n]]).sum()) for n in limb}
    areas["III"] = areas["II"] - areas["I"]
    return frontal_axis(areas)


def _windows(x: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """(leads, windows, width) windows of x starting at `starts` (inside x)."""
    return x[:, starts[:, None] + np.arange(width)[None, :]]


def _correlations(windows: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Each window's correlation with the template, each lead's mean removed."""
    w = windows - windows.mean(axis=2, keepdims=True)
    t = template - template.mean(axis=1, keepdims=True)
    numerator = np.einsum("lbw,lw->b", w, t)
    return numerator / (np.sqrt(np.einsum("lbw,lbw->b", w, w) * (t**2).sum()) + 1e-12)


def _wave_band(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """x bridged linearly over what may not be searched, smoothed over 40 ms and less
    its 300 ms moving mean: waves of a P wave's width, without the band-pass's slow
    undershoot after each QRS-T."""
    kept = np.flatnonzero(valid)
    if kept.size < 2:
        return np.zeros_like(x)
    everywhere = np.arange(x.shape[1])
    bridged = np.stack([np.interp(everywhere, kept, row[kept]) for row in x])
    smooth = uniform_filter1d(bridged, size=samples(40), axis=1)
    return smooth - uniform_filter1d(bridged, size=samples(300), axis=1)


def _spatial_size(x: np.ndarray) -> np.ndarray:
    """The spatial magnitude against the line between the window's ends."""
    line = np.linspace(x[:, :1], x[:, -1:], x.shape[1], axis=1)[..., 0]
    return np.sqrt(((x - line) ** 2).sum(axis=0))
