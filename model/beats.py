"""Beats of a multi-lead ECG: where they are, which are ectopic, what drives them.

Every function works on a (12, n) signal at the internal rate FS (500 Hz), in the
standard lead order, with a boolean mask of the leads that may be trusted.

QRS detection is written here rather than taken from neurokit2 or wfdb (XQRS):
those detect on one lead, and the brief of this engine is a multi-lead detector
that survives a lead falling off and fits a 50 ms budget for the whole analysis;
a summed-slope envelope with a Pan-Tompkins style search-back does both.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks

FS = 500.0

# Two QRS complexes are "the same shape" above this correlation (over all usable
# leads, -50..+80 ms); PVCs in PTB-XL correlate at -0.4..0.7 with the dominant beats.
SIMILAR_CORRELATION = 0.9
DETECTION_SMOOTH_MS = 16
# A beat is premature when its RR is shorter than this fraction of the dominant RR.
PREMATURE_FRACTION = 0.85
FREQUENT_PREMATURE = 1 / 3
# RR intervals are irregular beyond this normalised RMSSD (sinus rhythm in PTB-XL and
# LUDB: 95th percentile 0.05 without ectopic beats; atrial fibrillation 0.12-0.52).
IRREGULAR_RMSSD = 0.08
# A QRS this wide or wider is wide (AHA/ACCF/HRS 2009): a complete bundle branch block,
# a wide-complex rhythm, a ventricular or paced activation.
WIDE_QRS_MS = 120
# Intervals this close (range over median) keep one cycle: the sinus cycles between
# premature atrial beats spread 1-2 %, atrial fibrillation's longer intervals 15-33 %
# (synthetic tuning seeds, 3.33).
STEADY_SPREAD = 0.1
# The fewest intervals without a PVC whose sequence judges the RR where PVCs leave no
# two successive pairs (Beats.irregularity): as many as the intervals between dominant
# beats need (model.measure.rhythm.MIN_NN_INTERVALS).
MIN_SEQUENCE_INTERVALS = 3
# Search-back's T-wave test (_is_t_wave): a wave this soon after a beat, less steep than
# this fraction of it, is its T wave (Pan and Tompkins 1985). The T waves search-back
# took on the tuning sweeps peaked 250-360 ms after the beat at 0.11-0.42 of its slope;
# the one beat it found there (a ventricular couplet) at 0.81 (3.35).
REPOLARISATION_MS = 450
T_WAVE_SLOPE = 0.5


def samples(milliseconds: float) -> int:
    return round(milliseconds * FS / 1000.0)


@dataclass(frozen=True)
class Beats:
    """Detected beats: positions (samples at FS) and one label each.

    Labels: 'N' dominant (conducted) beat, 'S' dominant shape but premature
    (supraventricular premature beat), 'V' other shape and premature (ventricular
    premature beat), 'X' other shape, not premature (aberrant, artefact, escape).
    """

    positions: np.ndarray
    labels: np.ndarray
    dominant_rr: float  # samples, median RR between consecutive dominant beats

    @property
    def rr(self) -> np.ndarray:
        return np.diff(self.positions).astype(float)

    @property
    def dominant(self) -> np.ndarray:
        return self.positions[self.labels == "N"]

    @property
    def both_normal(self) -> np.ndarray:
        """Per RR interval: True where both of its beats are dominant."""
        return (self.labels[1:] == "N") & (self.labels[:-1] == "N")

    def count(self, label: str) -> int:
        return int(np.count_nonzero(self.labels == label))

    def irregularity(self, in_sequence: bool = False) -> float | None:
        """Normalised RMSSD of the RR intervals, ventricular ectopic beats left out;
        None where too few are left to judge (ventricular bigeminy). in_sequence: where
        PVCs leave fewer than two successive pairs, over the cycles left in their
        sequence in time (cycles_around_pvcs), from MIN_SEQUENCE_INTERVALS (slow atrial
        fibrillation with PVCs, docs/measurement.md 3.37)."""
        kept = (self.labels[1:] != "V") & (self.labels[:-1] != "V")
        successive = normalised_rmssd(self.rr, kept)
        if successive is not None or not in_sequence:
            return successive
        cycles = self.cycles_around_pvcs()
        if cycles.size < MIN_SEQUENCE_INTERVALS:
            return None
        return float(np.sqrt(np.mean(np.diff(cycles) ** 2)) / cycles.mean())

    def dominant_in_pairs(self) -> bool:
        """Whether the beats of the dominant shape (N, S) come in pairs, never three in a
        row, with two or more beats of another shape between them: every interval
        between two of them may then be a premature atrial beat's coupling (a sinus
        beat, a PAC and a PVC in turn, the PAC read 'N'), and their irregularity no
        rhythm's (docs/measurement.md 3.40)."""
        shape = np.isin(self.labels, ("N", "S"))
        pairs = shape[1:] & shape[:-1]
        run_of_three = (shape[:-2] & shape[1:-1] & shape[2:]).any()
        return bool(pairs.any() and not run_of_three and _flanked(shape).sum() >= 2)

    def cycles_around_pvcs(self) -> np.ndarray:
        """In time order, the RRs without a ventricular premature beat and, for each
        one between two other beats, half its coupling interval and the pause after it:
        a compensatory pause keeps the sinus cycle (3.33), atrial fibrillation's do not."""
        rr, ventricular = self.rr, self.labels == "V"
        kept = ~ventricular[1:] & ~ventricular[:-1]
        single = np.zeros(rr.size, dtype=bool)
        single[:-1] = ventricular[1:-1] & ~ventricular[:-2] & ~ventricular[2:]
        pair_halves = (rr[:-1] + rr[1:]) / 2
        cycles = np.where(kept, rr, 0.0)
        cycles[:-1] = np.where(single[:-1], pair_halves, cycles[:-1])
        return cycles[kept | single]


def normalised_rmssd(rr: np.ndarray, kept: np.ndarray, min_pairs: int = 2) -> float | None:
    """Root mean square of successive RR differences over the mean RR: beat-to-beat
    irregularity, unlike the spread, which a slow sinus arrhythmia also has.

    Only kept intervals that follow each other count as successive, as heart rate
    variability is computed (Task Force of the ESC and NASPE, 1996): a difference
    across a left-out ectopic beat compares RRs a cycle apart (PTB-XL 269, sinus
    rhythm with a premature atrial beat: 0.100 across the gap, 0.079 without it).
    None with fewer than min_pairs successive pairs.
    """
    successive = kept[1:] & kept[:-1]
    if successive.sum() < min_pairs:
        return None
    differences = np.diff(rr)[successive]
    return float(np.sqrt(np.mean(differences**2)) / np.mean(rr[kept]))


def qrs_slope(sig: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Absolute slope summed over all usable leads, below about 25 Hz: what QRS
    complexes are detected on (detect_qrs) and told from noise by (qrs_prominence)."""
    # The QRS carries most of its energy below 25 Hz; a moving average before the
    # derivative keeps that band and drops the fast part of muscle noise.
    smooth = uniform_filter1d(sig[usable], size=samples(DETECTION_SMOOTH_MS), axis=1)
    return np.abs(np.diff(smooth, axis=1)).sum(axis=0)


def qrs_prominence(slope: np.ndarray, positions: np.ndarray) -> float:
    """How far the detected QRS complexes stand above the rest of the recording: the
    median over beats of the steepest slope within 50 ms of each, over the slope's
    median everywhere. Noise taken for beats stands barely above itself, QRS complexes
    far above; slow waves (fibrillatory, T) are not steep. slope: qrs_slope()."""
    half = samples(50)
    peaks = [slope[max(p - half, 0) : p + half].max() for p in positions if p < slope.size]
    return float(np.median(peaks) / (np.median(slope) + 1e-12))


def detect_qrs(slope: np.ndarray) -> np.ndarray:
    """QRS positions from the envelope of the slope summed over all usable leads (qrs_slope)."""
    envelope = uniform_filter1d(slope, size=samples(80))
    peaks, _ = find_peaks(envelope, distance=samples(200))
    if peaks.size == 0:
        return peaks
    reference = np.percentile(envelope[peaks], 90)
    strong_level = 0.45 * reference
    strong = _drop_t_waves(peaks[envelope[peaks] > strong_level], envelope)
    weak = peaks[envelope[peaks] > 0.2 * reference]
    return _search_back(strong, weak, envelope, slope, strong_level)


def _drop_t_waves(peaks: np.ndarray, envelope: np.ndarray) -> np.ndarray:
    """Pan-Tompkins T-wave rule: within 360 ms of a beat, a peak under half its size is its T wave."""
    kept: list[int] = []
    for p in peaks:
        if kept and p - kept[-1] < samples(360) and envelope[p] < 0.5 * envelope[kept[-1]]:
            continue
        kept.append(int(p))
    return np.asarray(kept, dtype=peaks.dtype)


def _search_back(
    accepted: np.ndarray,
    weak: np.ndarray,
    envelope: np.ndarray,
    slope: np.ndarray,
    strong_level: float,
) -> np.ndarray:
    """A gap of more than 1.6 RR probably hides a smaller beat: take the biggest candidate
    in it, unless it is the T wave of the beat before it (_is_t_wave). A candidate above
    strong_level was dropped only by _drop_t_waves' envelope rule and is taken back as
    before: an R-on-T PVC after a narrow beat can be under half as steep (3.35)."""
    if accepted.size < 3:
        return accepted
    rr = np.median(np.diff(accepted))
    added = []
    for a, b in pairwise(accepted):
        if b - a > 1.6 * rr:
            inside = weak[(weak > a + samples(250)) & (weak < b - samples(250))]
            if inside.size:
                candidate = inside[np.argmax(envelope[inside])]
                if envelope[candidate] > strong_level or not _is_t_wave(candidate, a, slope):
                    added.append(candidate)
    return np.sort(np.concatenate([accepted, np.asarray(added, dtype=accepted.dtype)]))


def _is_t_wave(candidate: int, beat: int, slope: np.ndarray) -> bool:
    """Pan-Tompkins' slope test: within REPOLARISATION_MS of a beat, a wave whose steepest
    slope is under half the beat's is its T wave. The pause after a premature beat
    (compensatory after a PVC) or a dropped beat is what search-back looks into, and
    a T wave is the biggest wave in it (3.35)."""
    if candidate - beat >= samples(REPOLARISATION_MS):
        return False
    return _steepest(slope, candidate) < T_WAVE_SLOPE * _steepest(slope, beat)


def _steepest(slope: np.ndarray, peak: int) -> float:
    """The steepest summed slope within 40 ms of an envelope peak (the 80 ms envelope's reach)."""
    half = samples(40)
    return float(slope[max(peak - half, 0) : peak + half].max())


def beat_windows(sig: np.ndarray, positions: np.ndarray, start: int, stop: int) -> np.ndarray:
    """(leads, beats, stop-start) windows around each position; outside the record is NaN."""
    n = sig.shape[1]
    idx = positions[:, None] + np.arange(start, stop)[None, :]
    inside = (idx >= 0) & (idx < n)
    out = sig[:, np.clip(idx, 0, n - 1)]
    out[:, ~inside] = np.nan
    return out


def align_beats(sig: np.ndarray, usable: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Move each position to where its QRS best matches the median QRS.

    The envelope peak jitters by a few samples from beat to beat; that jitter
    would blur the median beat and widen its QRS.
    """
    half, max_lag = samples(60), samples(16)
    ok = (positions - half - max_lag >= 0) & (positions + half + max_lag < sig.shape[1])
    if ok.sum() < 2:
        return positions
    x = sig[usable]
    offsets = np.arange(-half, half + 1)
    template = median_over_beats(x[:, positions[ok, None] + offsets])
    lags = np.arange(-max_lag, max_lag + 1)
    idx = positions[ok, None, None] + lags[None, :, None] + offsets[None, None, :]
    score = np.einsum("lbkw,lw->bk", x[:, idx], template)
    aligned = positions.copy()
    aligned[ok] = positions[ok] + lags[np.argmax(score, axis=1)]
    return aligned


def qrs_similarity(
    sig: np.ndarray, usable: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise correlation and amplitude ratio of the multi-lead QRS complexes."""
    segs = beat_windows(sig[usable], positions, -samples(50), samples(80))
    v = np.nan_to_num(np.transpose(segs, (1, 0, 2)).reshape(len(positions), -1))
    v = v - v.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(v, axis=1) + 1e-12
    return (v @ v.T) / np.outer(norms, norms), norms[:, None] / norms[None, :]


def dominant_family(corr: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """The largest family of look-alike QRS complexes: the conducted beats.

    Noise lowers every correlation; when fewer than half the beats look alike at
    SIMILAR_CORRELATION the test is relaxed step by step (0.8, 0.7), so that a
    noisy but regular ECG keeps its beats while ectopic beats, which correlate far
    lower, stay out.
    """
    family = np.zeros(corr.shape[0], dtype=bool)
    for threshold in (SIMILAR_CORRELATION, 0.8, 0.7):
        similar = (corr > threshold) & (ratio > 0.6) & (ratio < 1.6)
        count = similar.sum(axis=1) + corr.mean(axis=1) * 1e-3
        family = similar[int(np.argmax(count))]
        if family.sum() >= max(2, 0.5 * family.size):
            break
    return family


def label_beats(positions: np.ndarray, dominant: np.ndarray) -> Beats:
    rr = np.diff(positions).astype(float)
    pairs = dominant[1:] & dominant[:-1]
    # Without two dominant beats in a row (bigeminy), the intervals that end in a
    # dominant beat: after a ventricular premature beat, the pause (where the cycles
    # around the PVCs agree, they replace it below).
    if pairs.any():
        dominant_rr = float(np.median(rr[pairs]))
    elif dominant[1:].any() and not dominant.all():
        dominant_rr = float(np.median(rr[dominant[1:]]))
    else:
        dominant_rr = float(np.median(rr))
    premature = np.zeros(len(positions), dtype=bool)
    premature[1:] = rr < PREMATURE_FRACTION * dominant_rr
    cycle = _cycle_behind_coupled_pairs(rr, dominant)
    if cycle is None:
        cycle = _cycle_under_frequent_premature_beats(rr, dominant)
    if cycle is not None:
        dominant_rr = cycle
        premature[1:] = rr < PREMATURE_FRACTION * dominant_rr
    labels = np.where(dominant, "N", "X").astype("<U1")
    labels[~dominant & premature] = "V"
    labels[dominant & premature] = "S"
    return Beats(positions=positions, labels=labels, dominant_rr=dominant_rr)


def _cycle_under_frequent_premature_beats(rr: np.ndarray, dominant: np.ndarray) -> float | None:
    """The dominant cycle (samples) where premature beats are frequent enough (a third
    of the intervals) to misstate the median RR; None elsewhere.

    Premature beats of the dominant shape as frequent as in atrial bigeminy (a third of
    the intervals or more, against the longer intervals' level: the 75th percentile of
    those between dominant beats), each alone between longer intervals (in atrial
    fibrillation short intervals come in runs, and judging them all premature left
    too few beats for the median beat: PTB-XL 307 then showed a "P wave")
    pull that median down until late-coupled ones pass for non-premature: judge again
    against the intervals that end in a non-premature dominant beat. (Rarer early
    beats leave the median be: a sinus arrhythmia's shorter cycles would be taken for
    premature, PTB-XL 149: 2 of 11.)
    The pause after a beat of another shape (a ventricular premature beat) is no
    measure of the cycle: compensatory, it spans two cycles less the coupling
    interval. Counted in, it became the "dominant RR" wherever such pauses outnumber
    the intervals between two dominant beats (synthetic tuning seeds 5-7, sinus at
    82-140/min with 30-40 % PVCs: 654 ms for a 444 ms cycle, the sinus beats then
    judged premature and the P wave searched for on the PVC's T wave).
    A run through a beat of another shape is weaker evidence: a ventricular premature
    beat (or its T wave taken for a beat) is coupled to the beat before it whatever
    drives the atria, so its short interval beside a premature atrial beat's is no run
    of atrial fibrillation's; and half the two RRs around one between dominant beats
    (coupled early) is a cycle, as the compensatory pause keeps it. Slow sinus rhythm
    with 25-40 % premature atrial beats and PVCs has few other long intervals (its
    couplings held the median, the sinus beats read as pauses, then AF). Those are let
    in only where the cycles they give agree (_steady): in atrial fibrillation with
    PVCs they do not, and let in there they lost AF (3.33). In ventricular bigeminy
    they replace the pause, which had read a long QT (3.33).
    """
    pairs = dominant[1:] & dominant[:-1]
    early = rr < PREMATURE_FRACTION * np.percentile(rr[pairs] if pairs.any() else rr, 75)
    if early.mean() < FREQUENT_PREMATURE:
        return None
    ending_normal = pairs & ~early
    if not (early[1:] & early[:-1]).any() and ending_normal.sum() >= 2:
        return float(np.median(rr[ending_normal]))
    early_between_dominant = early & pairs
    if (early_between_dominant[1:] & early_between_dominant[:-1]).any():
        return None
    cycles = np.r_[rr[ending_normal], _halves_around(rr, _flanked(dominant) & early[:-1])]
    return float(np.median(cycles)) if _steady(cycles) else None


def _cycle_behind_coupled_pairs(rr: np.ndarray, dominant: np.ndarray) -> float | None:
    """The cycle (samples) where every interval between two dominant beats is a
    premature atrial beat's coupling: half the two RRs around each beat of another
    shape between dominant beats (a PVC's compensatory pause keeps the sinus cycle,
    3.33), where no three dominant beats come in a row, these halves agree (_steady)
    and against them every such interval and every such beat is premature; None
    elsewhere.

    A sinus beat, a premature atrial beat and a PVC in turn at 42-55/min: the only
    dominant pairs are the sinus beat and its PAC, so their median, the "dominant RR",
    was the PAC's coupling; the PAC read as a dominant beat, the PVC (coupled to it
    at about the same interval) as not premature, and the whole RR as atrial
    fibrillation (docs/measurement.md 3.38). A single premature atrial beat is followed
    by a pause or a beat of another shape, never by a third dominant beat early again:
    three in a row are a run of the dominant rhythm itself. Atrial fibrillation and
    flutter with 2:1 conduction have such runs, and where two PVCs there are followed
    by long pauses (2.3 RRs) the halves around them agree and every conducted
    interval is short against them (review of 3.38: flutter 2:1 at 140/min read
    "Rhythm undetermined", AF at 113/min lost AFIB). In sinus rhythm with late PVCs
    the dominant intervals are the cycle.
    Beats of another shape on time are no PVCs: VVI pacing in atrial fibrillation, its
    stimuli not found, paces at one interval after the last beat, and the RRs around
    its beats agreed (tuning seed 3, bench record 316).
    """
    pairs = dominant[1:] & dominant[:-1]
    flanked = _flanked(dominant)
    run_of_three = (dominant[:-2] & dominant[1:-1] & dominant[2:]).any()
    if not pairs.any() or run_of_three or flanked.sum() < 2:
        return None
    cycles = _halves_around(rr, flanked)
    if not _steady(cycles):
        return None
    cycle = float(np.median(cycles))
    early = rr < PREMATURE_FRACTION * cycle
    return cycle if bool(early[pairs].all() and early[:-1][flanked].all()) else None


def _flanked(dominant: np.ndarray) -> np.ndarray:
    """Per beat but the first and last: a beat of another shape between dominant ones."""
    return ~dominant[1:-1] & dominant[:-2] & dominant[2:]


def _halves_around(rr: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Half the two RRs around each of `beats` (a _flanked mask): around a PVC with a
    compensatory pause, the cycle."""
    return (rr[:-1] + rr[1:])[beats] / 2


def _steady(intervals: np.ndarray) -> bool:
    """Whether the intervals keep one cycle (within STEADY_SPREAD of their median), as
    the sinus cycles between premature atrial beats do and atrial fibrillation does not."""
    if intervals.size < 2:
        return False
    return bool(np.ptp(intervals) <= STEADY_SPREAD * np.median(intervals))


def find_beats(sig: np.ndarray, usable: np.ndarray, positions: np.ndarray) -> Beats | None:
    """Align and label the beats detected at `positions`; None when there are too few."""
    positions = positions[whole_qrs_window(positions, sig.shape[1])]
    if positions.size < 3:
        return None
    positions = align_beats(sig, usable, positions)
    corr, ratio = qrs_similarity(sig, usable, positions)
    family = dominant_family(corr, ratio)
    return label_beats(positions, conducted_family(family, corr, positions))


def whole_qrs_window(positions: np.ndarray, n: int) -> np.ndarray:
    """Detections whose QRS window (-50..+80 ms, the one shapes are compared on) lies
    inside the recording. A detection in the last or first few samples (the band-pass's
    edge transient, or a complex cut off) has no shape to compare: labelled by shape it
    read as a ventricular premature beat (LUDB 119, 124, 127-130: 7 of 10 false PVCs)."""
    return (positions >= samples(50)) & (positions < n - samples(80))


def conducted_family(family: np.ndarray, corr: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Of two look-alike families of about the same size (ventricular bigeminy), the
    conducted beats are the ones that do not come early: the other family's beats
    follow a shorter RR."""
    other = ~family
    if other.sum() < max(2, 0.8 * family.sum()):
        return family
    if np.median(corr[np.ix_(other, other)]) <= SIMILAR_CORRELATION:
        return family
    preceding = np.r_[np.nan, np.diff(positions).astype(float)]
    if np.nanmean(preceding[other]) > 1.1 * np.nanmean(preceding[family]):
        return other
    return family


def complete_windows(windows: np.ndarray) -> np.ndarray:
    """The beat windows that lie wholly inside the record, when at least 3 do.

    np.median on them is several times faster than np.nanmedian on all; with
    fewer than 3 whole windows the partial ones (NaN outside the record) stay in.
    """
    whole = ~np.isnan(windows).any(axis=(0, 2))
    return windows[:, whole] if whole.sum() >= 3 else windows


def median_beat(windows: np.ndarray) -> np.ndarray:
    """Sample-wise median over beats (leads, beats, samples): the representative beat."""
    if np.isnan(windows).any():
        return np.nanmedian(windows, axis=1)
    return median_over_beats(windows)


def median_over_beats(windows: np.ndarray) -> np.ndarray:
    """np.median(windows, axis=1), to the bit: the same middle value(s), averaged by
    the same np.mean. Over the few dozen beats of an ECG a sort is 2-5 times faster
    than the partition np.median runs once per (lead, sample); with a NaN (sorted
    last, where np.median returns NaN) np.median itself runs."""
    if np.isnan(windows).any():
        return np.median(windows, axis=1)
    ordered = np.sort(windows, axis=1)
    n = ordered.shape[1]
    return np.mean(ordered[:, (n - 1) // 2 : n // 2 + 1], axis=1)


# A stimulus that the cart records as a step and then holds (LUDB 111, bipolar
# pacing): after the jump the lead stays flat for this many samples (6 ms at 500
# Hz), which no QRS downstroke does, while the paced QRS that starts within 60 ms
# fails the quiet-after test.
STIMULUS_HOLD = samples(6)


def pacing_spikes(raw: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Candidate pacemaker stimuli: jumps one sample long, in at least three leads at once.

    No physiological wave moves within a single sample at 500 Hz in three leads at
    once: a stimulus does (as a pulse, or as a step that the cart's filter lets
    decay). In each of those leads the jump must
    also be far steeper than the 30 ms before it and the 50 ms after it, which a
    sharp R-to-S downstroke is not. A biphasic stimulus (LUDB 93, biventricular
    pacing) has its first, smaller phase in the 2 samples before the main jump,
    so those are left out of the quiet-before test (chosen on LUDB and CinC 2021,
    where it adds that record and no false stimulus). A stimulus held as a flat step
    (STIMULUS_HOLD) need not be quiet after. Electrode artefacts can pass
    this test too; paced_beats() keeps only the stimuli time-locked to QRS complexes.
    """
    x = raw[usable]
    if x.shape[0] < 3:
        return np.zeros(0, dtype=int)
    step = np.diff(x, axis=1)
    size = np.abs(step)
    candidates, _ = find_peaks(np.sort(size, axis=0)[-3], height=0.08, distance=samples(100))
    before, after = samples(30), samples(60)
    inside = candidates[(candidates > before) & (candidates < size.shape[1] - after)]
    spikes = [
        j
        for j in inside
        if all(_is_stimulus(step[lead], j) for lead in np.argsort(size[:, j])[-3:])
    ]
    return np.asarray(spikes, dtype=int)


def _is_stimulus(step: np.ndarray, j: int) -> bool:
    jump = abs(step[j])
    direction = np.sign(step[j])
    one_sample = step[j - 1] * direction < 0.5 * jump and step[j + 1] * direction < 0.5 * jump
    quiet_before = np.abs(step[j - samples(30) : j - 2]).max() < 0.3 * jump
    quiet_after = np.abs(step[j + 4 : j + samples(60)]).max() < 0.5 * jump
    held = np.abs(step[j + 1 : j + 1 + STIMULUS_HOLD]).max() < 0.05 * jump
    return bool(one_sample and quiet_before and (quiet_after or held))


def paced_beats(spikes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Which beats follow a stimulus at the same delay as the others (paced beats).

    A pacemaker fires a fixed time before the QRS it causes (ventricular pacing) or
    before the P wave (atrial pacing); artefacts have no fixed delay.
    """
    paced = np.zeros(positions.size, dtype=bool)
    if spikes.size < 3:
        return paced
    delay = positions[:, None] - spikes[None, :]
    delay = np.where((delay > -samples(10)) & (delay < samples(400)), delay, np.iinfo(int).max)
    nearest = delay.min(axis=1)
    has_spike = nearest < np.iinfo(int).max
    if has_spike.sum() < 3:
        return paced
    # The delay most others share, not the median: in VVI pacing between conducted
    # beats a conducted beat that follows a paced one within 400 ms has that stimulus
    # before it too, at whatever delay (synthetic VVI in atrial fibrillation).
    delays = nearest[has_spike]
    sharing = (np.abs(delays[:, None] - delays[None, :]) <= samples(20)).sum(axis=1)
    typical = delays[np.argmax(sharing)]
    return has_spike & (np.abs(nearest - typical) <= samples(20))


def blanked_after(before: int) -> int:
    """How far after a stimulus blank_spikes replaces the signal, for a stimulus
    blanked from `before` samples before its peak."""
    return max(samples(24), 2 * before)


def blank_spikes(
    raw: np.ndarray, spikes: np.ndarray, before: int = samples(4), hold: bool = False
) -> np.ndarray:
    """Replace each stimulus and its filter tail (from `before` samples before it to
    24 ms after) by a straight line; a low-passed stimulus spreads further before its
    peak (model.stimulus_pulses.pulse_spacing).

    Left in, the band-pass would smear it into a deflection that the QRS onset
    search takes for the start of the QRS. `hold`: the baseline before it is held up
    to the stimulus's peak, and the line starts there: the heart answers a stimulus
    after it, and a line from `before` samples before the peak pulled the captured
    QRS's (or P wave's) onset that much early (the weak stimuli of
    model.pacing_stimuli, low-passed over `before` of up to 13 samples: synthetic
    paced QRS 14 ms wider at 500 Hz than the same drawing without stimuli).
    """
    out = raw.copy()
    after = blanked_after(before)
    for j in spikes:
        a, b = max(j - before, 0), min(j + after, raw.shape[1] - 1)
        start = min(max(j, a), b) if hold else a
        out[:, a:start] = out[:, a : a + 1]
        weight = np.linspace(0.0, 1.0, b - start + 1)
        out[:, start : b + 1] = out[:, a : a + 1] * (1 - weight) + out[:, b : b + 1] * weight
    return out
