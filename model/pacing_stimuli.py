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
The pulse search itself is model.stimulus_pulses; this module judges the trains it finds.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter1d

from model.beats import (
    FS,
    WIDE_QRS_MS,
    Beats,
    beat_windows,
    blank_spikes,
    blanked_after,
    median_beat,
    samples,
)
from model.stimulus_pulses import (
    DELAY_TOLERANCE,
    MAX_TRAIN_RISE_MS_LOW_RATE,
    MIN_RATE_FOR_RISE,
    SEARCH_AFTER,
    SEARCH_BEFORE,
    Pulses,
    pulse_spacing,
    rise_ms,
)

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
# A ventricular stimulus before a beat of another shape than the dominant one lies
# within this of its QRS position (the envelope peak of a paced QRS of 150-200 ms).
MAX_SPIKE_TO_PACED_QRS = samples(120)
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
# At MIN_RATE_FOR_SIZE_ALONE and over, two beats of another shape than the dominant
# ones, each after a stimulus at one delay (both STRONG_PULSE_SCORE, narrow, rising as
# a stimulus does at these rates), show a ventricular pacemaker: a VVI pacemaker over
# sinus rhythm or in atrial fibrillation that fired twice in 10 s (synthetic paced set,
# tuning seeds 1 and 3-7: 6 strips at 250 and 500 Hz read "SR" or "AFIB" without
# pacing). At 100 Hz a PVC pair's own sharp peaks at one delay pass as two stimuli
# (docs/measurement.md 3.19, item 3), and three stay needed.
MIN_OTHER_SHAPE_TRAIN_RESOLVED = 2
# An atrial stimulus precedes the ventricular one of AV sequential pacing by the
# programmed AV delay: 100-300 ms (pacemakers' paced AV delays are programmed about
# 120-250 ms, shortened at higher rates; 100 ms also keeps a notch in the PR segment,
# 60 ms before a QRS onset in LUDB 80, out of it).
AV_DELAY = (samples(100), samples(300))
# The beats of another shape are placed again on their own median QRS before the
# search before them (aligned_on_own_shape): model.beats.align_beats places every beat
# on the dominant beats' median QRS, which a paced QRS does not resemble, and a wide
# paced QRS's envelope peak falls on one hump or the other, so its position wandered
# 9-82 samples after the stimulus from beat to beat (synthetic VVI in AF at 500 Hz,
# tuning seeds 4-6: stimuli of 0.7-1.3 mV found before each paced beat, no three at
# one delay). The window is the QRS's core, 60 ms either side of its position
# (OWN_SHAPE_HALF; at 100 ms the T and fibrillatory waves that differ from beat to beat
# left its 4 spread over 10 samples, tuning seed 4 draw 344), the lag up to the
# hump-to-hump spread (OWN_SHAPE_LAG); the signal is smoothed over OWN_SHAPE_SMOOTH so
# that the stimulus itself does not steer the alignment, and its baseline
# (OWN_SHAPE_BASELINE) removed.
OWN_SHAPE_HALF = samples(60)
OWN_SHAPE_LAG = samples(100)
OWN_SHAPE_SMOOTH = samples(20)
OWN_SHAPE_BASELINE = samples(300)


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
    and outscores an atrial stimulus (synthetic AAI), the two trains together where
    they are AV sequential pacing's (av_sequential); last, stimuli each detected as a
    beat of its own (pulses_taken_for_beats), or those before the beats of another
    shape alone (before_other_beats)."""
    pulses = Pulses.of(raw, leads, source_fs)
    spikes = pulses.locked(beats.positions)
    resolved = source_fs >= MIN_RATE_FOR_SIZE_ALONE
    unmistakable = resolved and _unmistakable(pulses, spikes, beats.positions)
    if not (unmistakable or _pacemaker_train(pulses, spikes, beats, qrs_on, qrs_ms)):
        before_onset = qrs_on + ATRIAL_SEARCH_BEFORE_ONSET
        atrial = pulses.locked(beats.dominant, search_after=-before_onset)
        if av_sequential(pulses, atrial, spikes, beats, qrs_on, qrs_ms):
            return np.union1d(atrial, spikes)
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


def av_sequential(
    pulses: Pulses,
    atrial: np.ndarray,
    ventricular: np.ndarray,
    beats: Beats,
    qrs_on: int,
    qrs_ms: float | None,
) -> bool:
    """Whether two trains are AV sequential pacing's: at a resolved rate
    (MIN_RATE_FOR_SIZE_ALONE), an atrial train AV_DELAY before a ventricular one at the
    onset of a wide QRS. Each alone fails its position rule where the atrial
    stimulus's P wave runs into the ventricular stimulus and both, with the smeared
    stimulus, pull the measured QRS onset early (the ventricular train is allowed
    twice onset_tolerance after it): synthetic DDD at 250 Hz, AV delay 120 ms, tuning
    seed 4: onset measured 114 ms before the QRS position, the ventricular stimuli 82
    ms (32 ms after it, the tolerance 30) and the atrial ones 202 ms (88 ms before it,
    the atrial rule 100). A heart wave before a QRS notch is no such pair: a P wave
    rises over 20 ms or more and fails the pulse search's rise test at these rates."""
    if pulses.source_fs < MIN_RATE_FOR_SIZE_ALONE or atrial.size < MIN_TRAIN:
        return False
    if ventricular.size < MIN_TRAIN or (qrs_ms is not None and qrs_ms < WIDE_QRS_MS):
        return False
    positions = beats.positions
    delays = []
    for train in (atrial, ventricular):
        belongs = beat_of(train, positions)
        kept = belongs < positions.size
        delays.append(float(np.median(positions[belongs[kept]] - train[kept])))
    av_delay = delays[0] - delays[1]
    tolerance = onset_tolerance(pulses.source_fs)
    # After the measured onset by up to twice the tolerance: the P wave adds its pull.
    within = -2 * tolerance <= delays[1] - qrs_on <= tolerance
    return bool(within and AV_DELAY[0] <= av_delay <= AV_DELAY[1])


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
    rises = [rise_ms(pulses.x[s >= 0.5 * s.max()], int(j), wider) for j, s in zip(spikes, sizes)]
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
    shortest = shortest_other_shape_train(pulses.source_fs)
    if other.size < shortest or not pulses.may_lock(other, shortest):
        return other[:0]
    spikes = pulses.locked(aligned_on_own_shape(pulses.x, other), shortest=shortest)
    belongs = beat_of(spikes, beats.positions)
    if spikes.size < shortest or (belongs >= beats.positions.size).any():
        return spikes[:0]
    delays = beats.positions[belongs] - spikes
    shaped = np.isin(beats.labels[belongs], OTHER_SHAPE).all()
    return spikes if shaped and np.median(delays) <= MAX_SPIKE_TO_PACED_QRS else spikes[:0]


def shortest_other_shape_train(source_fs: float) -> int:
    """The fewest paced beats of another shape than the dominant ones that show a
    pacemaker (MIN_OTHER_SHAPE_TRAIN_RESOLVED at MIN_RATE_FOR_SIZE_ALONE and over,
    else MIN_TRAIN)."""
    return MIN_OTHER_SHAPE_TRAIN_RESOLVED if source_fs >= MIN_RATE_FOR_SIZE_ALONE else MIN_TRAIN


def aligned_on_own_shape(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """`positions` moved each to where its beat best matches the others (OWN_SHAPE_*
    above): a pacemaker captures the ventricles the same way every time, so aligned
    on one another its QRS complexes follow their stimuli at one delay. The beats are
    first aligned on the one that matches the others best (a median over beats whose
    positions fall on two humps blurs both), then on their median beat."""
    smooth = uniform_filter1d(x, OWN_SHAPE_SMOOTH, axis=1)
    smooth = smooth - uniform_filter1d(smooth, OWN_SHAPE_BASELINE, axis=1)
    reach = OWN_SHAPE_HALF + OWN_SHAPE_LAG
    padded = np.nan_to_num(beat_windows(smooth, positions, -reach, reach + 1))
    width = 2 * OWN_SHAPE_HALF + 1
    shifted = sliding_window_view(padded, width, axis=2)  # (leads, beats, lags, width)
    n, k = positions.size, 2 * OWN_SHAPE_LAG + 1
    flat = shifted.transpose(1, 2, 0, 3).reshape(n * k, -1)  # (beat and lag, leads x width)
    own = flat.reshape(n, k, -1)[:, OWN_SHAPE_LAG]
    score = (flat @ own.T).reshape(n, k, n) / (np.linalg.norm(own, axis=1) + 1e-9)
    reference = int(np.argmax(score.max(axis=1).sum(axis=0)))
    lags = np.argmax(score[:, :, reference], axis=1)
    template = median_beat(shifted[:, np.arange(n), lags]).reshape(-1)
    lags = np.argmax((flat @ template).reshape(n, k), axis=1)
    return positions + lags - OWN_SHAPE_LAG


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
