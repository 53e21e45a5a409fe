"""Beat by beat: which beats are premature, where they come from, and what the rhythm
between them does.

model.beats labels each QRS by its shape and timing (N dominant, S dominant shape but
premature, V other shape and premature, X other). Here each premature beat is given
its origin from the atrial activity before it, the P waves of the dominant beats are
counted one by one, and the RR series is split into the intervals that premature beats
explain (the coupling interval and the pause after it) and those they do not (between
two dominant beats), so that the rhythm statements (model.rhythm_statements) can tell
a sinus rhythm with premature beats from atrial fibrillation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from model.beats import Beats, beat_windows, normalised_rmssd, samples
from model.measure.leads import PRE

if TYPE_CHECKING:
    from model.measure.result import Fiducials

# A beat of the dominant shape is a supraventricular premature beat when its RR is
# this much shorter than both the dominant and the preceding RR (a sinus arrhythmia
# shortens the RR gradually, not against the preceding one).
PAC_PREMATURITY = 0.8
# A dominant beat has its P wave when its P-wave window correlates with the median
# beat's P wave at least this well (the median beat's own consistency test,
# model.measure.waves.MIN_P_CONSISTENCY, is on the median of these).
MIN_BEAT_P_CORRELATION = 0.5
# Before a premature beat of the dominant shape, once the previous beat's QRS-T is
# cancelled, no atrial wave of this share of the sinus P wave's size makes it
# junctional, where a P wave would show: the sinus P wave stands MIN_ECTOPIC_P_SNR
# times above the noise of the same window (synthetic tuning seeds 1 and 3-7, 1,297
# premature atrial and 96 junctional beats: the atrial P waves' 1st percentile 0.43,
# median 0.94 of the sinus P; the junctional beats' T-wave remnant median 0.30, 60th
# percentile 0.33; LUDB 60, a premature atrial beat, has a sinus P wave no larger than
# that noise). Otherwise the beat is taken for atrial, by far the commoner.
ECTOPIC_P_FRACTION = 0.45
MIN_ECTOPIC_P_SNR = 2.0
# Where an ectopic P wave is looked for: from the sinus PR and this margin before the
# QRS (at most ECTOPIC_P_SEARCH_MS) to 30 ms before.
ECTOPIC_P_SEARCH_MS = 300
ECTOPIC_P_PR_MARGIN_MS = 60
# A pause is compensatory when the RR before and after the premature beat add up to
# two dominant RR within this fraction.
COMPENSATORY_TOLERANCE = 0.1
# Bigeminy / trigeminy: at least this many premature beats in the repeating pattern.
MIN_PATTERN_ECTOPICS = 3
# Intervals between two dominant beats need at least this many to judge their spread,
# and successive pairs of them MIN_NN_PAIRS to judge their beat-to-beat change.
MIN_NN_INTERVALS = 3
MIN_NN_PAIRS = 4
# An interval between dominant beats this many dominant RRs long is a pause.
PAUSE_RR = 1.6
ECTOPIC = ("A", "J", "V")
# Around a PVC after a PAC, the two RRs span two sinus cycles where the PVC blocked the
# P wave due after the PAC's reset, one where it conducted; at this span (ms) or more
# one cycle would be a sinus rate under 30/min, so the span is taken for two
# (underlying_cycle; the pac_pvc design at 42-55/min spans 2,170 ms or more).
RESET_BLOCKED_SPAN_MS = 2000
# Where the median of all dominant beats shows no sinus P wave, it is looked for again
# on the median of the steady beats (steady_beats), where at least this many are left
# (the fewest a median beat is made of that still names the tuning seeds' ventricular
# trigeminy at 80/min: 4 sinus beats after a sinus beat in 10 s).
MIN_STEADY_BEATS = 4
# ... only where the intervals between dominant beats vary by no more than this
# (normalised RMSSD), and where the P wave found stands before STEADY_P_SHARE of the
# group's beats one by one (MIN_BEAT_P_CORRELATION). Synthetic tuning seeds 1 and 3-7:
# sinus rhythms with premature beats 0.00-0.03, atrial fibrillation with
# premature-looking beats 0.047-0.079 (model.rhythm_statements.FIBRILLATORY_NN_RMSSD,
# the same evidence); an AF at 102/min (test seed 781, 0.057) had a "P wave" made up
# from 7 beats' fibrillatory waves, before 5 of its 11 dominant beats.
STEADY_NN_RMSSD = 0.04
STEADY_P_SHARE = 0.75
# Regularly irregular: sorted, the RRs fall into at most MAX_RR_LEVELS groups, a new
# group wherever neighbours differ by more than RR_LEVEL_GAP of the median RR, with
# MIN_RR_FOR_LEVELS or more RRs. Grouped beating (Wenckebach, flutter with variable
# conduction: every RR a multiple of the flutter cycle) does this; fibrillation's RRs
# spread continuously (synthetic tuning seeds 1 and 3: fixed-ratio Mobitz I 2-3
# groups, flutter with variable conduction 3, atrial fibrillation 5-13).
RR_LEVEL_GAP = 0.03
MAX_RR_LEVELS = 3
MIN_RR_FOR_LEVELS = 8
# Grouped beating between dominant beats (grouped_beating): their RRs fall into a short
# level and a long one, each within GROUP_SPREAD of its median, the long ones at least
# GROUP_SPLIT times the short ones and at most twice them (a Wenckebach pause is
# shorter than two cycles), never two long ones in a row, with at least
# MIN_GROUP_PAUSES long and MIN_GROUP_CYCLES short ones, and MIN_RR_FOR_LEVELS such RRs
# in all. Mobitz I at 106-109/min whose P waves the noise hides (tuning seeds 1 and 5):
# short levels spread 1-9 %, long 1-3 %, split 1.47-1.58. Of the 908 AF strips of the
# tuning sweeps read AFIB none passes (with 5-7 RRs, 4 slow ones and LUDB 88 did), and
# it is asked only beside atrial activity that peaks under the fibrillatory band
# (model.rhythm_statements; docs/measurement.md 3.39).
GROUP_SPREAD = 0.12
GROUP_SPLIT = 1.25
MIN_GROUP_PAUSES = 2
MIN_GROUP_CYCLES = 3


@dataclass(frozen=True)
class RhythmAnalysis:
    """The beat-by-beat findings the rhythm statements rest on.

    classes: per beat 'N' dominant, 'A' premature atrial, 'J' premature junctional
    (dominant shape, no atrial wave before it), 'V' premature ventricular, 'X' other.
    p_waves / dominant_beats: dominant beats with their P wave, of all dominant beats
    (0 where no median P wave was found to compare with).
    nn_irregularity: beat-to-beat change of the intervals between dominant beats
    (normalised RMSSD over successive pairs, or over their sequence where fewer
    than MIN_NN_PAIRS pairs follow each other); None with fewer than
    MIN_NN_INTERVALS such intervals; nn_intervals: how many there are.
    coupling_spread: how much the premature beats' coupling intervals and the pauses
    after them vary (coupling_spread()); atrial_timing_spread: the same without the
    PVCs' coupling intervals, None where nothing else was judged (a PVC is coupled to
    the beat before it whatever drives the atria, docs/measurement.md 3.35).
    rr_levels: how many distinct values the RRs take (rr_levels()); None with too few.
    grouped_beating: the RRs between dominant beats grouped as Wenckebach's
    (grouped_beating()).
    sinus_cycle: the underlying (dominant) cycle in samples where premature beats are
    present (underlying_cycle()); None without premature beats or without intervals to
    judge it by.
    uncompensated_ventricular: ventricular premature beats without a compensatory pause.
    pattern: a bigeminy or trigeminy (ectopic_pattern()); pattern_beats its premature
    beats in order.
    """

    classes: tuple[str, ...]
    p_waves: int
    dominant_beats: int
    nn_irregularity: float | None
    nn_intervals: int
    coupling_spread: float | None
    compensatory_pauses: int
    pattern: str | None  # "bigeminy" or "trigeminy"
    atrial_timing_spread: float | None = None
    rr_levels: int | None = None
    sinus_cycle: float | None = None
    uncompensated_ventricular: int = 0
    pattern_beats: str = ""
    grouped_beating: bool = False

    def count(self, kind: str) -> int:
        return self.classes.count(kind)


def analyse_rhythm(
    sig: np.ndarray,
    leads: np.ndarray,
    beats: Beats,
    median: np.ndarray,
    fid: Fiducials | None,
    p_correlations: np.ndarray | None,
) -> RhythmAnalysis:
    """Classify every beat and measure what the rhythm does around the premature ones."""
    classes = [str(label) for label in np.where(beats.labels == "S", "A", beats.labels)]
    rr = beats.rr
    atrial = None
    for i in np.flatnonzero(beats.labels == "S"):
        preceding = rr[i - 2] if i >= 2 else beats.dominant_rr
        if rr[i - 1] >= PAC_PREMATURITY * min(beats.dominant_rr, preceding):
            classes[i] = "N"
            continue
        if fid is None:
            continue
        atrial = atrial or AtrialWaves(sig, leads, beats, median, fid)
        if not atrial.before(int(i)):
            classes[i] = "J"
    p_waves = (
        int(np.count_nonzero(p_correlations >= MIN_BEAT_P_CORRELATION))
        if p_correlations is not None
        else 0
    )
    pattern, pattern_beats = ectopic_pattern(classes)
    return RhythmAnalysis(
        classes=tuple(classes),
        p_waves=p_waves,
        dominant_beats=int(np.count_nonzero(beats.labels == "N")),
        nn_irregularity=nn_irregularity(beats),
        nn_intervals=int(np.count_nonzero(between_normal_beats(beats))),
        coupling_spread=coupling_spread(beats),
        atrial_timing_spread=coupling_spread(beats, pvc_coupling=False),
        compensatory_pauses=compensatory_pauses(beats, classes),
        uncompensated_ventricular=uncompensated_ventricular(beats, classes),
        pattern=pattern,
        pattern_beats=pattern_beats,
        rr_levels=rr_levels(rr),
        grouped_beating=grouped_beating(beats),
        sinus_cycle=underlying_cycle(beats, classes),
    )


def underlying_cycle(beats: Beats, classes: list[str]) -> float | None:
    """The dominant rhythm's cycle (samples) under premature beats, which the mean RR
    misstates: their coupling intervals shorten it, the pauses after them lengthen it
    (synthetic tuning seeds 1 and 3-7: sinus rhythms at 85-100/min with atrial
    bigeminy or 25-40 % PACs read as tachycardias, at 40-50/min with PACs as normal
    rates). The intervals between two dominant beats, where MIN_NN_INTERVALS are left;
    else, around single premature beats between dominant ones, half the two RRs around
    a ventricular one (the sinus node is not reset: a compensatory pause) and the RR
    after an atrial or junctional one (the node is reset and fires a cycle later).
    A ventricular one after an atrial one counts as after a dominant one where the two
    RRs around it span RESET_BLOCKED_SPAN_MS or more: the atrial beat reset the node and
    the PVC blocked the P wave due a cycle later, so the span is two cycles (a sinus
    beat, a PAC and a PVC in turn, docs/measurement.md 3.38). Where that P wave
    conducted after the PVC the span is one cycle, and halved it doubled the sinus
    rate; one cycle of 2 s or more would be a sinus rate under 30/min, shorter spans
    may be either, and are left out.
    None without premature beats (the mean RR is the rate) or without such intervals."""
    if not any(c in ECTOPIC for c in classes):
        return None
    nn = beats.rr[between_normal_beats(beats)]
    if nn.size >= MIN_NN_INTERVALS:
        return float(nn.mean())
    cycles = []
    for i in range(1, len(classes) - 1):
        before, after = float(beats.rr[i - 1]), float(beats.rr[i])
        two_cycles = before + after >= samples(RESET_BLOCKED_SPAN_MS)
        after_reset = classes[i] == "V" and classes[i - 1] in ("A", "J") and two_cycles
        measurable = classes[i - 1] == "N" or after_reset
        if measurable and classes[i + 1] == "N" and classes[i] in ECTOPIC:
            cycles.append((before + after) / 2 if classes[i] == "V" else after)
    return float(np.median(cycles)) if cycles else None


def steady_beats(beats: Beats) -> list[np.ndarray]:
    """Groups of dominant beats that share what precedes their P wave, where premature
    beats (S, V) are present: those that follow a dominant beat at PAC_PREMATURITY to
    PAUSE_RR dominant RRs (the previous beat's T wave where a sinus rhythm has it), and
    those that follow a ventricular premature beat (its compensatory pause leaves a
    long TP segment). Each group's positions, where at least MIN_STEADY_BEATS, but not
    every dominant beat, are in it."""
    if not np.isin(beats.labels, ("S", "V")).any():
        return []
    # A regular rhythm between the premature beats, where it can be judged: in atrial
    # fibrillation a few beats' median makes up a "P wave" from fibrillatory waves
    # (synthetic tuning seed 4, 49/min: 4 beats, read as sinus bradycardia).
    irregularity = nn_irregularity(beats)
    if irregularity is not None and irregularity > STEADY_NN_RMSSD:
        return []
    rr = beats.rr
    steady = beats.both_normal & (rr >= PAC_PREMATURITY * beats.dominant_rr)
    steady &= rr < PAUSE_RR * beats.dominant_rr
    after_pvc = (beats.labels[1:] == "N") & (beats.labels[:-1] == "V")
    groups = (beats.positions[1:][steady], beats.positions[1:][after_pvc])
    return [g for g in groups if MIN_STEADY_BEATS <= g.size < beats.dominant.size]


def rr_levels(rr: np.ndarray) -> int | None:
    """How many distinct values the RRs take: sorted, a new one wherever neighbours
    differ by more than RR_LEVEL_GAP of the median RR; None under MIN_RR_FOR_LEVELS."""
    if rr.size < MIN_RR_FOR_LEVELS:
        return None
    ordered = np.sort(rr)
    return 1 + int(np.count_nonzero(np.diff(ordered) > RR_LEVEL_GAP * np.median(ordered)))


def grouped_beating(beats: Beats) -> bool:
    """The RRs between two dominant beats take a short value and a long one
    (GROUP_SPREAD, GROUP_SPLIT), the long ones single and at most twice the short: the
    groups of Mobitz I, each ended by a pause, which premature beats may interrupt
    (their intervals are left out). Atrial fibrillation's RRs spread continuously."""
    at = np.flatnonzero(beats.both_normal)
    nn = beats.rr[at].astype(float)
    if nn.size < MIN_RR_FOR_LEVELS:
        return False
    ordered = np.sort(nn)
    split = int(np.argmax(ordered[1:] / ordered[:-1]))
    short, long = ordered[: split + 1], ordered[split + 1 :]
    if long.size < MIN_GROUP_PAUSES or short.size < MIN_GROUP_CYCLES:
        return False
    if long[0] < GROUP_SPLIT * short[-1] or np.median(long) > 2.0 * np.median(short):
        return False
    if max(np.ptp(short) / np.median(short), np.ptp(long) / np.median(long)) > GROUP_SPREAD:
        return False
    pauses = at[nn >= long[0]]
    return not np.any(np.diff(pauses) == 1)


def between_normal_beats(beats: Beats) -> np.ndarray:
    """Per RR interval: True between two dominant beats, unless it is a pause."""
    return beats.both_normal & (beats.rr < PAUSE_RR * beats.dominant_rr)


def nn_irregularity(beats: Beats) -> float | None:
    """Normalised RMSSD between dominant beats (model.beats.normalised_rmssd): over
    successive pairs where MIN_NN_PAIRS follow each other, else over the intervals'
    sequence in time (the rhythm under frequent premature beats). An interval of
    PAUSE_RR dominant RRs or more is left out: a beat missed by the detection (a
    premature beat in the T wave at 155/min, synthetic tuning set) or not conducted
    (a dropped beat) is no change of the rhythm."""
    both = between_normal_beats(beats)
    successive = normalised_rmssd(beats.rr, both, MIN_NN_PAIRS)
    if successive is not None:
        return successive
    nn = beats.rr[both]
    if nn.size < MIN_NN_INTERVALS:
        return None
    return float(np.sqrt(np.mean(np.diff(nn) ** 2)) / nn.mean())


def coupling_spread(beats: Beats, pvc_coupling: bool = True) -> float | None:
    """How much the premature beats' timing varies: the largest coefficient of variation
    of the coupling intervals (ending in a premature beat) and of the pauses after
    them (ending in a non-premature beat), each judged with 3 or more; None without.
    One ectopic focus fires at a nearly fixed coupling and the pause after it follows
    from that; in atrial fibrillation both vary. Supraventricular (S) and ventricular
    (V) premature beats are judged apart: two foci fire at two couplings (a sinus
    tachycardia with 20 % PACs and 20 % PVCs, synthetic tuning seed 4, spread 0.17
    pooled and was called AFIB). pvc_coupling=False leaves the PVCs' coupling
    intervals out: they tell one focus, not what drives the atria."""
    spreads = []
    for label in ("S", "V"):
        premature = beats.labels == label
        after = premature[:-1] & ~np.isin(beats.labels[1:], ("S", "V"))
        coupling = beats.rr[premature[1:]] if pvc_coupling or label == "S" else beats.rr[:0]
        for intervals in (coupling, beats.rr[after]):
            if intervals.size >= 3:
                spreads.append(float(intervals.std() / intervals.mean()))
    return max(spreads) if spreads else None


def compensatory_pauses(beats: Beats, classes: list[str]) -> int:
    """Premature beats whose surrounding RRs add up to two dominant RRs: the sinus node
    was not reset (typical of ventricular premature beats)."""
    return sum(_compensatory(beats, i) for i in range(1, len(classes) - 1) if classes[i] in ECTOPIC)


def uncompensated_ventricular(beats: Beats, classes: list[str]) -> int:
    """Ventricular premature beats whose surrounding RRs do not add up to two dominant
    RRs. None such, with many compensatory pauses, shows the sinus node keeping its time
    through every one; in atrial fibrillation the two RRs around a beat are random."""
    return sum(not _compensatory(beats, i) for i in range(1, len(classes) - 1) if classes[i] == "V")


def _compensatory(beats: Beats, i: int) -> bool:
    pair = beats.rr[i - 1] + beats.rr[i]
    return bool(abs(pair - 2 * beats.dominant_rr) <= COMPENSATORY_TOLERANCE * 2 * beats.dominant_rr)


def ectopic_pattern(classes: list[str]) -> tuple[str | None, str]:
    """The longest bigeminal (N E N E ...) or trigeminal (N N E N N E ...) run of at
    least MIN_PATTERN_ECTOPICS premature beats, of one origin or several taking turns
    (PACs and PVCs after the sinus beats); ('bigeminy' | 'trigeminy' | None, the run's
    premature beats in order: 'VVVV', 'AVAAV')."""
    for name, every in (("bigeminy", 2), ("trigeminy", 3)):
        cycles, start = _longest_run(classes, every)
        if cycles >= MIN_PATTERN_ECTOPICS:
            return name, "".join(classes[start + every - 1 : start + cycles * every : every])
    return None, ""


def ventricular_pattern(classes: tuple[str, ...]) -> tuple[str | None, str]:
    """ectopic_pattern() of the PVCs alone, every early beat of the dominant shape taken
    for a conducted one: where no sinus rhythm is named (atrial fibrillation, a rhythm
    undetermined) such a beat is no premature atrial beat to make a pattern with."""
    return ectopic_pattern(["N" if c in ("A", "J") else c for c in classes])


def _longest_run(classes: list[str], every: int) -> tuple[int, int]:
    """Longest run of cycles of (every - 1) dominant beats followed by one premature
    beat of any origin; (cycles, where the run starts)."""
    best, best_start = 0, 0
    for start in range(len(classes)):
        run, i = 0, start
        while (
            i + every <= len(classes)
            and classes[i : i + every - 1] == ["N"] * (every - 1)
            and classes[i + every - 1] in ECTOPIC
        ):
            run += 1
            i += every
        if run > best:
            best, best_start = run, start
    return best, best_start


def ventricular_complex(median: np.ndarray, fid: Fiducials, from_level: bool) -> np.ndarray:
    """The median beat's QRS-T complex alone: nothing before the QRS onset (the P wave
    stays), faded out over the 40 ms after the T wave's end (the band-pass's undershoot).
    from_level: against the median beat's level at the QRS onset, for cancelling every
    beat of a recording (without it each beat's baseline would step at its QRS onset);
    AtrialWaves measures its short windows against a line instead."""
    t_end = fid.t_end_found if fid.t_end_found is not None else fid.qrs_off + samples(300)
    end = min(t_end + samples(40), median.shape[1] - 1)
    fade = np.clip((end - np.arange(median.shape[1])) / samples(40), 0, 1)
    fade[: fid.qrs_on] = 0.0
    level = median[:, fid.qrs_on : fid.qrs_on + 1] if from_level else 0.0
    return (median - level) * fade


class AtrialWaves:
    """Atrial activity before single beats, once the previous beat's QRS-T complex,
    which an early P wave rides on, is cancelled with the median beat.

    The same window before dominant beats that follow dominant beats holds their sinus
    P wave and noise: its typical size, and how far single windows stray from their
    median (the noise), are what an ectopic P wave is judged against. after_premature:
    the dominant beats that follow a premature beat of the dominant shape count too (its
    QRS-T is the median beat's): fibrillatory waves are judged on as many windows as
    slow AF with PVCs leaves (docs/measurement.md 3.37)."""

    def __init__(
        self,
        sig: np.ndarray,
        leads: np.ndarray,
        beats: Beats,
        median: np.ndarray,
        fid: Fiducials,
        after_premature: bool = False,
    ) -> None:
        self.x, self.beats = sig[leads], beats
        self.start = fid.qrs_on - PRE - ectopic_p_search(fid)
        self.stop = fid.qrs_on - PRE - samples(30)
        # The previous beat's ventricular complex, faded out over the 40 ms after its T
        # wave's end: beyond lies the median beat's next P wave, which must stay.
        self.complex = ventricular_complex(median, fid, from_level=False)[leads]
        previous = ("N", "S") if after_premature else ("N",)
        follows = (beats.labels[1:] == "N") & np.isin(beats.labels[:-1], previous)
        references = [self.window(int(k)) for k in np.flatnonzero(follows) + 1]
        references = [r for r in references if r is not None]
        self.references = len(references)
        self.sinus_p = self.noise = None
        if references:
            typical = np.median(references, axis=0)
            self.sinus_p = float(np.median([_wave_size(r) for r in references]))
            self.noise = float(np.median([_wave_size(r - typical) for r in references]))

    def window(self, i: int) -> np.ndarray | None:
        """Beat i's search window minus the previous beat's complex; None outside the record."""
        own = beat_windows(self.x, self.beats.positions[i : i + 1], self.start, self.stop)[:, 0]
        if i == 0 or np.isnan(own).any():
            return None
        lag = int(self.beats.positions[i] - self.beats.positions[i - 1])
        a, b = PRE + self.start + lag, PRE + self.stop + lag
        previous = np.zeros_like(own)
        lo, hi = max(a, 0), min(b, self.complex.shape[1])
        if hi > lo:
            previous[:, lo - a : hi - a] = self.complex[:, lo:hi]
        return own - previous

    def before(self, i: int) -> bool:
        """Whether an atrial wave may precede beat i: False only where none is seen
        and a P wave would have been."""
        window = self.window(i)
        if window is None or self.sinus_p is None:
            return True
        if self.sinus_p < MIN_ECTOPIC_P_SNR * self.noise:
            return True
        return _wave_size(window) >= ECTOPIC_P_FRACTION * self.sinus_p


def ectopic_p_search(fid: Fiducials) -> int:
    """How far before a premature beat's QRS its P wave is looked for (samples): up to
    ECTOPIC_P_SEARCH_MS, or the sinus PR and ECTOPIC_P_PR_MARGIN_MS where that is
    shorter. Further back lies the previous beat's T wave, whose remnant after the
    cancellation is what made junctional beats look atrial and atrial ones' share of
    the window hard to tell (synthetic tuning seeds)."""
    limit = samples(ECTOPIC_P_SEARCH_MS)
    if fid.p_on is None:
        return limit
    return min(limit, fid.qrs_on - fid.p_on + samples(ECTOPIC_P_PR_MARGIN_MS))


def _wave_size(window: np.ndarray) -> float:
    """Peak spatial size of what is left in a window, against the straight line between
    its ends (the band-pass leaves a slow undershoot after each T wave, which the
    cancellation does not take away at every coupling)."""
    edge = samples(10)
    first, last = window[:, :edge].mean(axis=1), window[:, -edge:].mean(axis=1)
    line = first[:, None] + (last - first)[:, None] * np.linspace(0, 1, window.shape[1])[None, :]
    magnitude = np.sqrt(((window - line) ** 2).sum(axis=0))
    return float(magnitude.max())
