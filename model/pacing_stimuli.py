"""Pacemaker stimuli too small or too smoothed for model.beats.pacing_spikes.

Carts record pacer spikes badly: a 150 Hz low-pass spreads a spike over 2-5 samples
at 500 Hz (and over more once a 100 or 250 Hz record is brought to 500 Hz), bipolar
pacing leaves spikes of a few tenths of a millivolt, and some carts remove the spike
and leave a small artefact, or show it in a few leads only. What a cardiologist
still sees is a small sharp deflection at the same place before every paced complex:
on the baseline, at a fixed delay before the QRS (ventricular pacing), or before the
P wave at a fixed delay before the QRS (atrial or AV sequential pacing).

So this search is beat-locked: before each QRS it takes the sharpest narrow pulse
standing on a quiet baseline (a QRS's own sharp peaks stand on its steep upstroke and
fail that), measured against each lead's own noise, and calls the pulses stimuli
only where they sit at the same delay before the QRS in enough beats. Noise peaks
fall at random delays; nothing physiological is that sharp on a flat baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from model.beats import FS, WIDE_QRS_MS, Beats, blank_spikes, blanked_after, samples

# The search window before each QRS position (the envelope peak): an atrial stimulus
# precedes its QRS by the PR (AAI) or the AV delay (DDD), at most about 350 ms.
SEARCH_BEFORE = samples(400)
SEARCH_AFTER = samples(10)
# Delays of the pulses of one pacemaker agree within this many samples at 500 Hz
# (the QRS position's own jitter after model.beats.align_beats is 1-2 samples).
DELAY_TOLERANCE = 3
# A ventricular stimulus sits at most this (plus twice the pulse spacing) after the
# QRS onset measured on the median beat, which the blurred spike pulls early (LUDB
# 90: 6 samples after it; synthetic VVI at 100 Hz: up to 20), and the QRS it captures
# is wide (a narrow QRS's septal q wave sits there too: LUDB 78).
VENTRICULAR_SPIKE_TO_ONSET = samples(10)
# Below this source rate (Hz) a pulse's size alone (UNMISTAKABLE_SCORE) names no
# pacemaker: the recorder's anti-alias filter spreads a stimulus and a narrow QRS's apex
# alike over 20 ms or more, and within one sample every lead peaks at once, so a QRS
# apex scores as a large stimulus does (LUDB and CinC 2021 resampled to 100 Hz: 9 of
# 180 unpaced records read PACE from it; the position rules still judge, and no
# synthetic paced rhythm of the tuning seeds needed it at 100 Hz).
MIN_RATE_FOR_SIZE_ALONE = 250.0
# The second, atrial search ends this long before the QRS onset: the QRS's own
# peaks, smeared over 20-30 ms at 100 Hz, stay out of it.
ATRIAL_SEARCH_BEFORE_ONSET = samples(40)
# An atrial stimulus precedes the QRS onset by at least this (the P wave and the
# shortest PR; a notch in the PR segment does not: LUDB 80, 60 ms).
MIN_ATRIAL_SPIKE_TO_QRS = samples(100)
# Every lead showing a pulse at this share of its largest size peaks at the same
# sample (within one at 500 Hz): a QRS notch reaches each lead at its own time.
SIMULTANEOUS_SHARE = 0.25
# A ventricular stimulus before a beat of another shape than the dominant one lies
# within this of its QRS position (the envelope peak of a paced QRS of 150-200 ms).
MAX_SPIKE_TO_PACED_QRS = samples(120)
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
# A train every pulse of which scores this much is a pacemaker's wherever it sits
# before the QRS: so large a stimulus can pull the QRS delimitation onto itself, and
# the position rules fail (synthetic DDD at 250 Hz, 4.7 mV spikes scoring 880-970:
# QRS read 62 ms, the stimulus after its onset). The weakest pulse of QRS-locked
# trains on non-paced ECGs: at most 107 (synthetic tuning seeds, noise-free q lobes
# and flutter corners), much less on LUDB and CinC 2021.
UNMISTAKABLE_SCORE = 300.0
# A beat blanked beside a stimulus is the stimulus itself where, with the stimuli
# blanked, its window (RESIDUAL_BEFORE before its position to RESIDUAL_AFTER after)
# holds less than NO_QRS_SHARE of the other beats' (root-sum-squared peak-to-peak):
# a spike taken for a beat leaves its P wave, a QRS a ventricular stimulus captured
# most of its 120-200 ms past the 56 ms blanked at 100 Hz. Synthetic paced rhythms of
# the tuning seeds 1 and 3-7 (the bench's 360, and AAI, DDD at 150/min and VVI at
# 150/min at 100 and 250 Hz, 2 and 4 mV): 134 spikes taken for beats at most 0.23 of
# the others, 139 captured QRS complexes beside their stimulus 0.86 and more.
# At least this many stimuli each detected as a beat of its own (a train's three),
# and with 1.5 source samples either side of each bridged, under NARROW_LEFT_SHARE of
# its window left (median over the train). At 100 Hz the apex of a narrow QRS that a
# premature beat follows at a fixed coupling passed the other tests (synthetic sinus
# rhythms with PACs or PVCs, bigeminy, one flutter, tuning seeds 1 and 3 resampled to
# 100 Hz: 14 false PACE), its flanks leaving 0.42-0.59; AAI spikes of 2-5 mV taken
# for beats at 100 Hz (tuning seeds 1 and 3-7) leave 0.27-0.33. A thin margin: the
# rule is the last of the search, for trains nothing else explains.
MIN_TAKEN_PULSES = 3
NARROW_LEFT_SHARE = 0.38
RESIDUAL_BEFORE = samples(60)
RESIDUAL_AFTER = samples(100)
NO_QRS_SHARE = 0.4
# The labels (model.beats.find_beats) of beats of another shape than the dominant
# ones, premature or not: a premature beat of the dominant shape ("S") is no paced
# one (synthetic sinus tachycardia with PACs, tuning seed 3: 3 of 26 PACs with a
# QRS-locked pulse read PACE).
OTHER_SHAPE = ("V", "X")
# A train of stimuli holds at least this many pulses (Pulses.locked).
MIN_TRAIN = 3
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

    def locked(self, positions: np.ndarray, search_after: int = SEARCH_AFTER) -> np.ndarray:
        """Stimuli time-locked to the QRS complexes at `positions`, searched from
        SEARCH_BEFORE before each to `search_after` after it (negative: before it):
        one sample index per beat that has one, where at least three beats agree on
        the delay and two of them score STRONG_PULSE_SCORE; else empty."""
        quiet = samples(QUIET_MS)
        windows = [
            (p, p - SEARCH_BEFORE, p + search_after)
            for p in positions
            # room before the window for the quiet baseline and the narrowness test
            if p - SEARCH_BEFORE - max(quiet + self.spacing, 2 * self.spacing) >= 0
            and p + search_after + 2 * self.spacing < self.x.shape[1]
            and search_after > -SEARCH_BEFORE
        ]
        if not self._may_hold_train([(a, b) for _, a, b in windows], quiet):
            return np.zeros(0, dtype=int)
        found, delays = [], []
        for p, a, b in windows:
            j = self._best(a, b, quiet)
            if j is not None:
                found.append(j)
                delays.append(p - j)
        if len(found) < 3:
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
        if spikes.size < 3 or np.sort(self.score[spikes])[-2] < STRONG_PULSE_SCORE:
            return np.zeros(0, dtype=int)
        return spikes

    def _may_hold_train(self, windows: list[tuple[int, int]], quiet: int) -> bool:
        """Whether a train could be found at all: three windows with a pulse and two
        with a strong one on a quiet baseline (necessary conditions, cheap to test
        first; most ECGs are not paced, and the full search costs about 2 ms per ECG).
        A QRS's own peaks score strong in nearly every window, so the baseline test
        is needed to tell most ECGs apart."""
        tops = np.array([self.score[a:b].max() for a, b in windows]) if windows else np.zeros(0)
        if (tops >= MIN_PULSE_SCORE).sum() < 3 or (tops >= STRONG_PULSE_SCORE).sum() < 2:
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
    if pulses.source_fs >= MIN_RATE_FOR_RISE and _rise_ms(x[shown], j, wider) > MAX_RISE_MS:
        return False
    return _simultaneous(response, j, spacing, size)


def _rise_ms(x: np.ndarray, j: int, before: int) -> float:
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


def weak_stimuli(
    raw: np.ndarray,
    leads: np.ndarray,
    beats: Beats,
    qrs_on: int,
    qrs_ms: float | None,
    source_fs: float,
) -> np.ndarray:
    """Stimuli locked to the beats where they sit as a pacemaker's would (sorted);
    else empty.
    qrs_on: the dominant beats' QRS onset, in samples before their QRS position;
    qrs_ms: their QRS duration (None where its end was not found).

    First before every beat; then, where that found nothing a pacemaker explains,
    for atrial stimuli only, up to ATRIAL_SEARCH_BEFORE_ONSET before the dominant
    beats' QRS onset: at 100 Hz a narrow QRS's own peak is the sharpest pulse near it
    and outscores an atrial stimulus (synthetic AAI); last, stimuli each detected as a
    beat of its own (pulses_taken_for_beats)."""
    pulses = Pulses.of(raw, leads, source_fs)
    spikes = pulses.locked(beats.positions)
    resolved = source_fs >= MIN_RATE_FOR_SIZE_ALONE
    unmistakable = resolved and _unmistakable(pulses, spikes, beats.positions)
    if not (unmistakable or _pacemaker_train(pulses, spikes, beats, qrs_on, qrs_ms)):
        before_onset = qrs_on + ATRIAL_SEARCH_BEFORE_ONSET
        atrial = pulses.locked(beats.dominant, search_after=-before_onset)
        if not _pacemaker_train(pulses, atrial, beats, qrs_on, qrs_ms):
            taken = pulses_taken_for_beats(pulses, spikes, beats.positions, source_fs)
            # The R apexes the rise turned down pass as beats' own pulses too
            # (synthetic AF and sinus tachycardia at 100 Hz, tuning seeds 1 and 5).
            return taken if _rise_like_stimuli(pulses, taken) else before_other_beats(pulses, beats)
        spikes = atrial
    # AV sequential pacing: the other chamber's stimuli, at their own fixed delay.
    second = pulses.without(spikes).locked(beats.positions)
    if _pacemaker_train(pulses, second, beats, qrs_on, qrs_ms):
        spikes = np.union1d(spikes, second)
    return spikes


def _pacemaker_train(
    pulses: Pulses, spikes: np.ndarray, beats: Beats, qrs_on: int, qrs_ms: float | None
) -> bool:
    """Whether a train rises like stimuli and sits where a pacemaker's would."""
    return _rise_like_stimuli(pulses, spikes) and explained(
        spikes, beats, qrs_on, qrs_ms, pulses.source_fs
    )


def _rise_like_stimuli(pulses: Pulses, spikes: np.ndarray) -> bool:
    """Whether a train's pulses rise as stimuli do: at MIN_RATE_FOR_RISE and over,
    _narrow judged each; under it their median within MAX_TRAIN_RISE_MS_LOW_RATE, as a
    stimulus the anti-alias filter smeared does and a narrow R apex does not."""
    if spikes.size == 0 or pulses.source_fs >= MIN_RATE_FOR_RISE:
        return spikes.size > 0
    sizes = np.abs(pulses.response[:, spikes]).T
    wider = 2 * pulses.spacing
    rises = [_rise_ms(pulses.x[s >= 0.5 * s.max()], int(j), wider) for j, s in zip(spikes, sizes)]
    return float(np.median(rises)) <= MAX_TRAIN_RISE_MS_LOW_RATE


def before_other_beats(pulses: Pulses, beats: Beats) -> np.ndarray:
    """Stimuli locked to the beats of another shape than the dominant ones (labels
    OTHER_SHAPE), searched before those beats alone, where they lie within
    MAX_SPIKE_TO_PACED_QRS of them (a ventricular pacemaker taking over from a
    conducted rhythm now and then); else empty. Searched before every beat, the
    conducted beats' own R apex can form the train instead: at 100 Hz a narrow QRS's
    apex is as sharp as a stimulus and outscores it, and the stimuli before the paced
    beats are left out or merged with the apexes (synthetic VVI over sinus rhythm at
    100 Hz, tuning seeds 1 and 3-7: apexes scoring 440-680 at 5-9 samples before the
    conducted beats, stimuli 50-560 at 10-20 before the paced ones; 49 of 60 read
    a sinus rhythm without pacing; docs/measurement.md 3.19)."""
    other = beats.positions[np.isin(beats.labels, OTHER_SHAPE)]
    spikes = pulses.locked(other) if other.size >= MIN_TRAIN else other[:0]
    belongs = beat_of(spikes, beats.positions)
    if spikes.size < MIN_TRAIN or (belongs >= beats.positions.size).any():
        return spikes[:0]
    delays = beats.positions[belongs] - spikes
    shaped = np.isin(beats.labels[belongs], OTHER_SHAPE).all()
    return spikes if shaped and np.median(delays) <= MAX_SPIKE_TO_PACED_QRS else spikes[:0]


def other_beat_stimuli(
    raw: np.ndarray, leads: np.ndarray, beats: Beats, source_fs: float
) -> np.ndarray:
    """before_other_beats on the leads `leads` of `raw` (at FS)."""
    return before_other_beats(Pulses.of(raw, leads, source_fs), beats)


def stimulus_in_window(
    stimuli: np.ndarray, positions: np.ndarray, pre: int, beyond: int = samples(200)
) -> int | None:
    """Where the ventricular stimulus lies in the median beat's window (`pre` samples
    before the QRS position): the median delay of the last stimulus before each beat,
    where at least half of the beats at `positions` follow one within `beyond` (LUDB
    93, biventricular pacing, QRS about 210 ms: 144 ms); else None. An atrial stimulus
    lies before the P wave, too far from the QRS onset for
    model.measure.fiducials.evoked_qrs_onset to use it."""
    if stimuli.size == 0 or positions.size == 0:
        return None
    delay = positions[:, None] - stimuli[None, :]
    delay = np.where((delay >= 0) & (delay < beyond), delay, beyond).min(axis=1)
    found = delay[delay < beyond]
    if 2 * found.size < positions.size:
        return None
    return pre - int(np.median(found))


def beat_of(stimuli: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per stimulus, the index of the beat it belongs to: the first whose QRS position
    lies at most SEARCH_AFTER before it, as the locked search looks (positions.size
    where none follows). A pulse found at a QRS position is that beat's, not the next
    one's: at 100 Hz a narrow R apex is as sharp as a stimulus, and, taken for the
    next beat's, read as an atrial stimulus a whole RR before it (LUDB resampled to
    100 Hz: LUDB 9, 99 and 122 read PACE)."""
    return np.searchsorted(positions, stimuli - SEARCH_AFTER, side="left")


def stimulated(stimuli: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per beat, whether a stimulus precedes it (after the beat before): a beat after
    two stimuli (AV sequential pacing: atrial, then ventricular) counts once."""
    mask = np.zeros(positions.size, dtype=bool)
    following = beat_of(stimuli, positions)
    mask[following[following < positions.size]] = True
    return mask


def stimuli_taken_for_beats(
    stimuli: np.ndarray, positions: np.ndarray, before: int, after: int, blanked: np.ndarray
) -> np.ndarray:
    """Per beat, whether it is a stimulus taken for a QRS complex: it lies in the span
    blanked around one (`before` samples before it to `after` after), another beat
    follows sooner than an atrial stimulus precedes its QRS (SEARCH_BEFORE), and
    with the stimuli blanked (`blanked`: the leads searched, at FS) it has no QRS of
    its own (beat_residuals). A large low-passed atrial spike is detected as a beat of
    its own (synthetic AAI: 22 beats for 11, read as bigeminy; its position 10 samples
    after the spike's peak at 500 Hz). A QRS a ventricular stimulus captured lies in
    that span too (its position 20-56 ms after the stimulus at 100 Hz), and at 150/min
    or with a premature beat after it the next beat follows within 400 ms: by timing
    alone those real beats were dropped (synthetic DDD at 150/min, 100 Hz: 62/min)."""
    candidates = _beside_and_followed(stimuli, positions, before, after)
    if not candidates.any():
        return candidates
    residual = beat_residuals(blanked, positions)
    others = residual[~candidates]
    typical = float(np.median(others if others.size >= 2 else residual))
    return candidates & (residual < NO_QRS_SHARE * typical)


def _beside_and_followed(
    stimuli: np.ndarray, positions: np.ndarray, before: int, after: int
) -> np.ndarray:
    """Per beat: inside the span blanked around a stimulus, and another beat follows
    within SEARCH_BEFORE."""
    if stimuli.size == 0 or positions.size < 2:
        return np.zeros(positions.size, dtype=bool)
    near = in_blanked_span(positions, stimuli, before, after).any(axis=1)
    return near & np.append(np.diff(positions) < SEARCH_BEFORE, False)


def in_blanked_span(
    positions: np.ndarray, stimuli: np.ndarray, before: int, after: int
) -> np.ndarray:
    """(positions, stimuli): whether each position lies in the span blanked around each
    stimulus, from `before` samples before it to `after` after."""
    gap = positions[:, None] - stimuli[None, :]
    return (gap >= -before) & (gap <= after)


def pulses_taken_for_beats(
    pulses: Pulses, found: np.ndarray, positions: np.ndarray, source_fs: float
) -> np.ndarray:
    """Of the pulses a locked search `found`, those each detected as a beat of its own,
    where at least MIN_TAKEN_PULSES are and a pacemaker explains them: each such beat
    has no QRS once its pulse is blanked (stimuli_taken_for_beats), is followed by a
    beat that is not one, and always after the same delay (a stimulus and the QRS it
    leads to); else empty. AAI at 100 Hz with spikes of 4 mV: every atrial stimulus
    was detected as a beat, the locked search found it and the following QRS's own
    peak alike, no position rule explained that, and the strip read "PVC, BIGU" at
    twice the rate (docs/measurement.md 3.11, 3.13)."""
    before = blank_reach(source_fs)
    after = blanked_after(before)
    candidates = _beside_and_followed(found, positions, before, after)
    if candidates.sum() < MIN_TAKEN_PULSES:
        return found[:0]
    own = in_blanked_span(positions[candidates], found, before, after).any(axis=0)
    blanked = blank_spikes(pulses.x, found[own], before, hold=True)
    taken = stimuli_taken_for_beats(found[own], positions, before, after, blanked)
    index = np.flatnonzero(taken)
    if index.size < MIN_TAKEN_PULSES or taken[index + 1].any():
        return found[:0]
    delays = positions[index + 1] - positions[index]
    tolerance = 2 * max(DELAY_TOLERANCE, pulses.spacing)
    if np.ptp(delays) > tolerance:
        return found[:0]
    stimuli = found[in_blanked_span(positions[index], found, before, after).any(axis=0)]
    if np.median(_left_beside(pulses.x, stimuli, source_fs)) >= NARROW_LEFT_SHARE:
        return found[:0]
    # Beats too near the record's start for a search window (the locked search needs
    # SEARCH_BEFORE before each): followed at the same delay, each is one too, its
    # stimulus the largest pulse beside it (synthetic AAI at 100 Hz: 11 beats for 10).
    rest = np.setdiff1d(np.arange(positions.size - 1), index)
    rest = rest[np.abs(positions[rest + 1] - positions[rest] - np.median(delays)) <= tolerance]
    extra = [
        p - after + int(np.argmax(pulses.score[max(p - after, 0) : p + before + 1]))
        for p in positions[rest]
        if p - after >= 0
    ]
    return np.union1d(stimuli, np.asarray(extra, dtype=int))


def _left_beside(x: np.ndarray, stimuli: np.ndarray, source_fs: float) -> np.ndarray:
    """Per stimulus, the share of the root-sum-squared peak-to-peak from RESIDUAL_BEFORE
    before it to RESIDUAL_AFTER after it that is left once 1.5 source samples either
    side of it are bridged by a line: a spike is gone, a QRS apex leaves its flanks."""
    reach = round(1.5 * FS / source_fs)
    out = np.ones(stimuli.size)
    for i, j in enumerate(stimuli):
        a, b = j - RESIDUAL_BEFORE, j + RESIDUAL_AFTER
        if a < 0 or b > x.shape[1]:
            continue
        window = x[:, a:b].copy()
        full = np.sqrt((np.ptp(window, axis=1) ** 2).sum())
        lo, hi = RESIDUAL_BEFORE - reach, RESIDUAL_BEFORE + reach
        weight = np.linspace(0.0, 1.0, hi - lo + 1)
        window[:, lo : hi + 1] = (
            window[:, lo : lo + 1] * (1 - weight) + window[:, hi : hi + 1] * weight
        )
        out[i] = np.sqrt((np.ptp(window, axis=1) ** 2).sum()) / max(full, 1e-9)
    return out


def blank_reach(source_fs: float) -> int:
    """How far before a weak stimulus's peak it is blanked: its pulse spacing."""
    return pulse_spacing(source_fs) + 1


def beat_residuals(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per beat, the peak-to-peak of each lead from RESIDUAL_BEFORE before its position
    to RESIDUAL_AFTER after it, root-sum-squared over the leads: what is left of a
    beat once its stimulus is blanked (a P wave, for a spike taken for a beat)."""
    out = np.zeros(positions.size)
    for i, p in enumerate(positions):
        window = x[:, max(p - RESIDUAL_BEFORE, 0) : p + RESIDUAL_AFTER]
        if window.shape[1]:
            out[i] = float(np.sqrt((np.ptp(window, axis=1) ** 2).sum()))
    return out


def _unmistakable(pulses: Pulses, spikes: np.ndarray, positions: np.ndarray) -> bool:
    """A train whose every pulse scores UNMISTAKABLE_SCORE, each clear of its QRS's
    own peak (2 pulse spacings before the QRS position: at 100 Hz a narrow QRS's
    peak, at 6 samples, is as sharp and as large; synthetic AAI and VVI in sinus
    rhythm at 100 Hz)."""
    if spikes.size < 3 or pulses.score[spikes].min() < UNMISTAKABLE_SCORE:
        return False
    following = np.searchsorted(positions, spikes, side="right")
    inside = following < positions.size
    delays = positions[following[inside]] - spikes[inside]
    return bool(delays.size >= 3 and delays.min() >= 2 * pulses.spacing)


def onset_tolerance(source_fs: float) -> int:
    """How far after the QRS onset measured on the median beat a ventricular stimulus
    may sit: the smoothed spike pulls that onset earlier, the more so the lower the
    source rate (LUDB 90: 6 samples; synthetic VVI at 100 Hz: up to 20)."""
    return VENTRICULAR_SPIKE_TO_ONSET + 2 * pulse_spacing(source_fs)


def explained(
    spikes: np.ndarray, beats: Beats, qrs_on: int, qrs_ms: float | None, source_fs: float
) -> bool:
    """Whether pulses locked to the QRS complexes sit where a pacemaker's stimuli
    would: at the onset of a wide QRS (ventricular pacing; a narrow QRS's own sharp
    septal q wave sits there too, LUDB 78); before beats of another shape than the
    dominant one and close to them (ventricular pacing between conducted beats, as
    VVI in atrial fibrillation); or well before the QRS (atrial pacing; a notch in
    the PR segment is not, LUDB 80)."""
    positions = beats.positions
    belongs = beat_of(spikes, positions)
    kept = belongs < positions.size
    following = belongs[kept]
    if following.size < 3:
        return False
    delays = positions[following] - spikes[kept]
    to_onset = float(np.median(delays)) - qrs_on
    if to_onset >= MIN_ATRIAL_SPIKE_TO_QRS:
        return True
    # A QRS whose end was not found counts as wide: a stimulus left in the signal can
    # keep the QRS from being delimited (synthetic VVI with spikes low-passed to 4-5
    # samples).
    wide = qrs_ms is None or qrs_ms >= WIDE_QRS_MS
    if wide and abs(to_onset) <= onset_tolerance(source_fs):
        return True
    other_shape = (beats.labels[following] != "N").all()
    return bool(other_shape and np.median(delays) <= MAX_SPIKE_TO_PACED_QRS)
