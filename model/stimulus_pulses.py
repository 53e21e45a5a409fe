"""The pulse search under model.pacing_stimuli: where, before a QRS, a small sharp pulse
stands on a quiet baseline, narrow and at once in every lead, as a pacemaker's stimulus
does once a cart's filters have spread it; and the trains of such pulses locked to the
beats (Pulses.locked). Whether a train is a pacemaker's is judged in model.pacing_stimuli.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from model.beats import FS, samples

# The search window before each QRS position (the envelope peak): an atrial stimulus
# precedes its QRS by the PR (AAI) or the AV delay (DDD), at most about 350 ms.
SEARCH_BEFORE = samples(400)
SEARCH_AFTER = samples(10)
# Delays of the pulses of one pacemaker agree within this many samples at 500 Hz
# (the QRS position's own jitter after model.beats.align_beats is 1-2 samples).
DELAY_TOLERANCE = 3
# Every lead showing a pulse at this share of its largest size peaks at the same
# sample (within one at 500 Hz): a QRS notch reaches each lead at its own time.
SIMULTANEOUS_SHARE = 0.25
# Below this a lead's pulse noise is the quantisation of a clean record (LUDB), not
# noise a pulse must stand out of.
NOISE_FLOOR_MV = 0.005
# A pulse counts where its size over the lead's noise (the median absolute pulse
# response over the whole record), root-sum-squared over the leads, reaches
# MIN_PULSE_SCORE, and a train of them only where two reach STRONG_PULSE_SCORE: LUDB
# 90's bipolar spikes score 12-154 (two over 75), while the notches and septal q
# waves that the non-paced LUDB, CinC 2021 and WFDB records show at a fixed place
# score at most 27 (synthetic tuning seeds: see docs/measurement.md 3.8).
MIN_PULSE_SCORE = 10.0
STRONG_PULSE_SCORE = 40.0
# Of the largest pulses before a QRS, this many are tried, largest first (the QRS's
# own sharp peaks, which fail the tests below, may come first).
CANDIDATES_PER_BEAT = 12
# The baseline before a pulse: in every lead its peak-to-peak over QUIET_MS stays
# under QUIET_SHARE of the pulse plus QUIET_NOISE times the lead's noise (an R apex
# stands on its upstroke, a notch inside a QRS on the QRS's start). Without the
# noise allowance LUDB 90's noisy lead I failed it; at 0.6 of the pulse notches a
# few samples into wide QRS complexes passed.
QUIET_MS = 20
QUIET_SHARE = 0.3
QUIET_NOISE = 8
# A stimulus is narrow: measured over twice the spacing it stands barely higher out
# of the baseline than over the spacing (a spike low-passed to 5 samples: 1.0); a
# rounded wave stands up to four times higher. At 1.6 the drawn q lobes and flutter
# corners of noise-free synthetic AF and flutter (tuning seeds: 22 PACE calls) and a
# notch 14 ms into a wide QRS (an existing PTB-XL test, docs/measurement.md 3.8)
# passed; 1.15 keeps LUDB 90 (its spikes are one to two samples).
NARROW_RATIO = 1.15
# A stimulus lasts under 1 ms: the record shows it rising as fast as the recorder's
# filters let it, from half its height to its peak in about one sample at 250 Hz
# (synthetic stimuli low-passed to up to 5 samples at 500 Hz, tuning seeds: median per
# ECG at most 3.6 ms at 500 Hz, 4.3 ms at 250 Hz; a few noisy single pulses up to 5.7).
# A wave of the heart rises over a third of its duration: the 23-26 ms septal q lobe
# of a wide single-dipole QRS (116-128 ms) takes 5.7-6.5 ms, and at 250 Hz the
# narrowness test, over 10 and 20 ms, passed it (44 of 200 such synthetic ECGs read
# PACE, tuning seeds; docs/measurement.md 3.12).
MAX_RISE_MS = 5.0
# Below this source rate the filter spreads a stimulus and a QRS apex alike, and one
# pulse's rise tells nothing; a train's median still does: a stimulus is the filter's
# impulse response, an R apex rises over more (at 100 Hz, tuning seeds 1 and 3-7:
# stimuli 3.7-7.4 ms per ECG, the other trains found, mostly R apexes, 9.3-14.5;
# LUDB 10, 13 and 108's R apexes, read PACE, 9.2-15.4; docs/measurement.md 3.23).
MIN_RATE_FOR_RISE = 250.0
MAX_TRAIN_RISE_MS_LOW_RATE = 8.5


def pulse_spacing(source_fs: float) -> int:
    """Samples (at FS) from a pulse's peak to where it has returned to the baseline:
    3 for a spike low-passed to 5 samples at 500 Hz, wider for a record brought up
    from a lower rate, where each source sample spans FS / source_fs samples."""
    return max(3, round(2.5 * FS / source_fs))


def pulse_response(x: np.ndarray, spacing: int) -> np.ndarray:
    """Per lead, how far each sample stands out of both the sample `spacing` before
    and the one after it, in the same direction (the smaller of the two): a pulse's
    height; zero on a ramp and at an edge, such as a QRS onset, which leaves the
    baseline and does not come back."""
    out = np.zeros_like(x)
    mid = x[:, spacing:-spacing]
    rise, fall = mid - x[:, : -2 * spacing], mid - x[:, 2 * spacing :]
    same = np.sign(rise) == np.sign(fall)
    out[:, spacing:-spacing] = np.where(same, np.sign(rise) * np.minimum(abs(rise), abs(fall)), 0)
    return out


@dataclass(frozen=True)
class Pulses:
    """The leads searched, their pulse response and the pulse score per sample."""

    x: np.ndarray
    response: np.ndarray
    score: np.ndarray
    spacing: int
    noise: np.ndarray
    source_fs: float

    @classmethod
    def of(cls, raw: np.ndarray, leads: np.ndarray, source_fs: float) -> Pulses:
        """Each lead's pulse response over its noise (the median absolute response
        over the record, floored), root-sum-squared over the leads."""
        x = raw[leads]
        spacing = pulse_spacing(source_fs)
        response = pulse_response(x, spacing)
        noise = np.maximum(np.median(np.abs(response), axis=1, keepdims=True), NOISE_FLOOR_MV)
        score = np.sqrt(((response / noise) ** 2).sum(axis=0))
        return cls(x, response, score, spacing, noise[:, 0], source_fs)

    def without(self, spikes: np.ndarray) -> Pulses:
        """The same, with the pulses at `spikes` (and their shoulders) scored zero."""
        score = self.score.copy()
        for j in spikes:
            score[max(j - 2 * self.spacing, 0) : j + 2 * self.spacing + 1] = 0.0
        return replace(self, score=score)

    def locked(
        self, positions: np.ndarray, search_after: int = SEARCH_AFTER, shortest: int = 3
    ) -> np.ndarray:
        """Stimuli time-locked to the QRS complexes at `positions`, searched from
        SEARCH_BEFORE before each to `search_after` after it (negative: before it):
        one sample index per beat that has one, where at least `shortest` (2 or more)
        beats agree on the delay and two of them score STRONG_PULSE_SCORE; else empty."""
        quiet = samples(QUIET_MS)
        windows = self._windows(positions, search_after)
        if not self._may_hold_train([(a, b) for _, a, b in windows], quiet, shortest):
            return np.zeros(0, dtype=int)
        found, delays = [], []
        for p, a, b in windows:
            j = self._best(a, b, quiet)
            if j is not None:
                found.append(j)
                delays.append(p - j)
        if len(found) < shortest:
            return np.zeros(0, dtype=int)
        delays_arr = np.asarray(delays)
        tolerance = max(DELAY_TOLERANCE, self.spacing)
        # The train is centred on the pulses that weigh most (summed scores within
        # DELAY_TOLERANCE), not on the most common delay: beside a few large stimuli
        # before paced beats, every conducted beat may show a smaller QRS-locked
        # pulse (a septal q wave) 6 samples away, within `tolerance` at 250 Hz, and
        # the two groups merged (synthetic VVI in sinus rhythm, tuning seeds).
        scores = self.score[np.asarray(found)]
        near = np.abs(delays_arr[:, None] - delays_arr[None, :]) <= DELAY_TOLERANCE
        heaviest = near[np.argmax(near @ scores)]
        centre = np.average(delays_arr[heaviest], weights=scores[heaviest])
        kept = np.abs(delays_arr - centre) <= tolerance
        spikes = np.asarray(found)[kept]
        if spikes.size < shortest or np.sort(self.score[spikes])[-2] < STRONG_PULSE_SCORE:
            return np.zeros(0, dtype=int)
        return spikes

    def may_lock(self, positions: np.ndarray, shortest: int = 3) -> bool:
        """Whether `locked` could find a train before the beats at `positions` at all
        (its cheap necessary conditions)."""
        windows = self._windows(positions, SEARCH_AFTER)
        return self._may_hold_train([(a, b) for _, a, b in windows], samples(QUIET_MS), shortest)

    def _windows(self, positions: np.ndarray, search_after: int) -> list[tuple[int, int, int]]:
        """Per beat (position, window start, window end), where the window fits."""
        quiet = samples(QUIET_MS)
        return [
            (p, p - SEARCH_BEFORE, p + search_after)
            for p in positions
            # room before the window for the quiet baseline and the narrowness test
            if p - SEARCH_BEFORE - max(quiet + self.spacing, 2 * self.spacing) >= 0
            and p + search_after + 2 * self.spacing < self.x.shape[1]
            and search_after > -SEARCH_BEFORE
        ]

    def _may_hold_train(
        self, windows: list[tuple[int, int]], quiet: int, shortest: int = 3
    ) -> bool:
        """Whether a train could be found at all: `shortest` windows with a pulse and two
        with a strong one on a quiet baseline (necessary conditions, cheap to test
        first; most ECGs are not paced, and the full search costs about 2 ms per ECG).
        A QRS's own peaks score strong in nearly every window, so the baseline test
        is needed to tell most ECGs apart."""
        tops = np.array([self.score[a:b].max() for a, b in windows]) if windows else np.zeros(0)
        if (tops >= MIN_PULSE_SCORE).sum() < shortest or (tops >= STRONG_PULSE_SCORE).sum() < 2:
            return False
        return self._windows_with_strong_quiet_pulse(windows, quiet) >= 2

    def _windows_with_strong_quiet_pulse(self, windows: list[tuple[int, int]], quiet: int) -> int:
        """How many windows hold a candidate (as _best picks them, but of any rank)
        reaching STRONG_PULSE_SCORE on a quiet baseline: each strong stimulus of a
        train is one, in its own window."""
        s = self.score
        peaks = 1 + np.flatnonzero(
            (s[1:-1] >= STRONG_PULSE_SCORE) & (s[1:-1] >= s[:-2]) & (s[1:-1] >= s[2:])
        )
        # _best's candidates in a..b lie in a + 1 .. b - 2.
        bounds = [
            (np.searchsorted(peaks, a + 1), np.searchsorted(peaks, b - 2, side="right"))
            for a, b in windows
        ]
        inside = np.unique(np.concatenate([np.arange(lo, hi) for lo, hi in bounds]))
        quiet_peak = np.zeros(peaks.size, dtype=bool)
        quiet_peak[inside] = _on_quiet_baseline(self, peaks[inside], quiet)
        return sum(bool(quiet_peak[lo:hi].any()) for lo, hi in bounds)

    def _best(self, a: int, b: int, quiet: int) -> int | None:
        """The highest-scoring of the CANDIDATES_PER_BEAT largest pulses (local maxima
        of the score reaching MIN_PULSE_SCORE) in a..b that stands on a quiet baseline."""
        window = self.score[a:b]
        peaks = np.flatnonzero(
            (window[1:-1] >= MIN_PULSE_SCORE)
            & (window[1:-1] >= window[:-2])
            & (window[1:-1] >= window[2:])
        )
        candidates = a + 1 + peaks[np.argsort(window[peaks + 1])[::-1][:CANDIDATES_PER_BEAT]]
        # The baseline test first for all candidates at once: most fail it (a QRS's
        # own peaks), and the per-candidate tests cost more.
        for j in candidates[_on_quiet_baseline(self, candidates, quiet)]:
            if _narrow(self, int(j)):
                return int(j)
        return None


def _on_quiet_baseline(pulses: Pulses, candidates: np.ndarray, quiet: int) -> np.ndarray:
    """Per candidate: the pulse stands on a flat baseline in every lead (flat but for
    the lead's own noise and a share of the pulse's size)."""
    starts = candidates - pulses.spacing - quiet
    before = sliding_window_view(pulses.x, quiet, axis=1)[:, starts]
    size = np.abs(pulses.response[:, candidates])
    allowed = QUIET_SHARE * size.max(axis=0) + QUIET_NOISE * pulses.noise[:, None]
    return (np.ptp(before, axis=2) < allowed).all(axis=0)


def _narrow(pulses: Pulses, j: int) -> bool:
    """The pulse at j is narrow in the leads that show it best, and peaks at once in
    every lead."""
    x, response, spacing = pulses.x, pulses.response, pulses.spacing
    size = np.abs(response[:, j])
    shown = size >= 0.5 * size.max()
    wider = 2 * spacing
    height = x[shown, j]
    rise = height - x[shown, j - wider]
    fall = height - x[shown, j + wider]
    twice = np.where(np.sign(rise) == np.sign(fall), np.minimum(abs(rise), abs(fall)), 0)
    if np.median(twice / size[shown]) > NARROW_RATIO:
        return False
    if pulses.source_fs >= MIN_RATE_FOR_RISE and rise_ms(x[shown], j, wider) > MAX_RISE_MS:
        return False
    return _simultaneous(response, j, spacing, size)


def rise_ms(x: np.ndarray, j: int, before: int) -> float:
    """The median over the leads `x` of the time the pulse at j takes to rise from half
    its height to its peak, its height measured from the signal `before` samples
    earlier (the quiet baseline it stands on): a stimulus's is the recorder's filter's,
    a heart wave's a third of its duration."""
    rel = np.abs(x[:, j - before : j + 1] - x[:, j - before, None])
    half = 0.5 * rel[:, -1]
    # The last sample at or under half the height before the peak, and where the
    # signal crosses it between that sample and the next.
    last = np.minimum(before - np.argmax(rel[:, ::-1] <= half[:, None], axis=1), before - 1)
    rows = np.arange(x.shape[0])
    low, high = rel[rows, last], rel[rows, last + 1]
    step = np.where(high > low, high - low, 1.0)
    crossing = last + np.clip((half - low) / step, 0.0, 1.0)
    return float(np.median(before - crossing)) * 1000.0 / FS


def _simultaneous(response: np.ndarray, j: int, spacing: int, size: np.ndarray) -> bool:
    """A stimulus peaks at the same sample in every lead that shows it; the notches of
    a QRS do not, its wavefront reaching each lead at its own time."""
    shown = np.flatnonzero(size >= SIMULTANEOUS_SHARE * size.max())
    window = np.abs(response[shown, j - spacing : j + spacing + 1])
    peaks = np.argmax(window, axis=1) - spacing
    return bool((np.abs(peaks) <= max(1, spacing // 4)).all())
