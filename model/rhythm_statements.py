"""Rhythm and ectopy statements, from the beat-by-beat analysis (model.measure.rhythm).

The order of the reasoning is a cardiologist's: a pacemaker (model.paced_statements,
judged first); flutter waves; then
the P waves of the dominant (non-premature) beats. Where they are found and point
down and left, the rhythm is sinus, whatever the premature beats do. Atrial
fibrillation needs both: no consistent P wave before the dominant beats, and an
irregularity that premature beats do not explain (the intervals between dominant
beats irregular too, or, where premature beats leave too few of those, their
coupling intervals spread as no single ectopic focus spreads them). Premature beats
are then named by origin, counted, and a bigeminal or trigeminal pattern stated
(model.ectopy_statements).
"""

from __future__ import annotations

from model.beats import (
    FS,
    IRREGULAR_RMSSD,
    WIDE_QRS_MS,
)
from model.ectopy_statements import ORIGIN_WORDS
from model.flutter_statements import drifting_flutter_statement, flutter_statement
from model.measure import (
    FIBRILLATORY_HZ,
    FLUTTER_HZ,
    SINUS_P_AXIS,
    EcgMeasurement,
)
from model.measure.amplitudes import polarity_fits_axis
from model.measure.atrial import MAX_FIBRILLATORY_REPEAT
from model.measure.p_timing import p_timing_wanders, pr_spread_ms, regular_atrial_rhythm
from model.measure.rhythm import (
    MAX_RR_LEVELS,
    MIN_NN_INTERVALS,
    RhythmAnalysis,
)
from model.report import Statement
from model.rhythm_few_beats import (
    MIN_BEATS_FOR_P_SHARE,
    MIN_P_WAVE_SHARE,
    irregular_beyond_sinus_arrhythmia,
    irregular_beyond_sinus_arrhythmia_words,
    sinus_not_judged,
)
from model.statement_limits import StatementLimits
from model.statement_text import make_statement

# Sinus arrhythmia: normal-to-normal intervals vary by more than 160 ms (the
# classic criterion) and by more than this fraction of their mean (LUDB: the
# sinus arrhythmias spread 25-34 %, most sinus rhythms under 22 %).
SINUS_ARRHYTHMIA_MS = 160
SINUS_ARRHYTHMIA_SPREAD = 0.25
# Premature beats explain an irregular rhythm where their coupling intervals and the
# pauses after them vary by no more than this (coefficient of variation): one ectopic
# focus fires at a nearly fixed coupling (synthetic tuning set, unifocal PACs drawn at
# 55-72 % of the cycle: up to 0.08).
COUPLING_SPREAD = 0.1
# This many regular intervals between non-premature beats show a regular underlying
# rhythm: the premature beats explain the rest (the bench's first synthetic set held a
# sinus rhythm at 123/min with 25 % PACs and hidden P waves whose couplings and pauses
# spread by 11 %, called AFIB; see docs/measurement.md).
MIN_NN_TO_EXPLAIN = 5
# With fibrillatory waves and no P wave, the intervals between non-premature beats
# need vary only by more than this (normalised RMSSD; IRREGULAR_RMSSD otherwise):
# synthetic tuning seeds 1 and 3-7, atrial fibrillation with premature-looking beats
# 0.047-0.079, sinus rhythms with premature beats 0.00-0.03; AV blocks whose P waves
# are not found reach 0.07, kept out by the waves' test (docs/measurement.md 3.4.4).
FIBRILLATORY_NN_RMSSD = 0.04
# At 2:1 conduction a flutter at FLUTTER_HZ (240-340/min) drives the QRS at 120-170/min,
# regularly: one flutter wave stands before the QRS where a sinus P wave would, and the
# next fuses with the QRS's end. There a sinus rhythm is not named on a P wave whose
# onset was not delimited (no PR) where the QRS was not delimited either or measured
# FUSED_QRS_MS or wider, past a bundle branch block's usual width. Synthetic tuning seeds
# 1 and 3-7, 540 flutters at 270-300/min, f waves 0.2-0.3 mV, conducted 2:1: 26 read sinus
# tachycardia, all without a PR, with a QRS of 140-250 ms (drawn 80-110) or none; 11 of
# them at 180 ms or more, or none. 150 sinus tachycardias at 120-170/min drawn with a QRS
# of 120-160 ms: 112 named sinus, none measured so wide; of the 651 sinus rhythms named at
# 115/min or faster (tune sets), 13 had neither PR nor QRS, all with premature beats
# (their complexes, not fusion, leave the QRS undelimited); no LUDB, CinC 2021 or WFDB
# sample record is touched.
TWO_TO_ONE_BPM = (30.0 * FLUTTER_HZ[0], 30.0 * FLUTTER_HZ[1])
FUSED_QRS_MS = 180
# Codes that leave an ECG normal: normal sinus rhythm and its physiological variants.
NORMAL_RHYTHM_CODES = frozenset({"SR", "SBRAD", "STACH", "SARRH"})


def normal_to_normal_rr_ms(m: EcgMeasurement) -> list[float]:
    """RR intervals between two consecutive dominant beats, in ms."""
    return [float(x) * 1000.0 / FS for x in m.beats.rr[m.beats.both_normal]]


def has_p_waves(m: EcgMeasurement) -> bool:
    """A repeating P wave was found, whether or not its onset (and so the PR) could be
    measured: at fast rates the P wave may start on the preceding T wave."""
    return m.fiducials is not None and m.fiducials.p_on is not None


def rhythm_statements(m: EcgMeasurement, limits: StatementLimits) -> list[Statement]:
    if m.has_flutter_waves:
        return [flutter_statement(m)]
    if not consistent_p_waves(m):
        if p_wave_on_the_t_wave(m):
            return sinus_statements(m, limits)
        fibrillation = atrial_fibrillation_statements(m)
        if fibrillation and m.drifting_flutter_hz is not None:
            return [drifting_flutter_statement(m)]
        return fibrillation
    if sinus_not_judged(m) is not None:
        return []
    return sinus_statements(m, limits)


def p_wave_on_the_t_wave(m: EcgMeasurement) -> bool:
    """No P wave was delimited, but a sinus P wave stands on the previous T wave before
    each QRS (model.measure.p_on_t) of a rhythm that is regular, or whose irregularity
    premature beats explain: sinus tachycardia at 130-160/min with a long enough PR.
    Not where the P waves found along the recording stand at a wandering PR before the
    beats that follow a non-premature beat (model.measure.p_timing): fibrillatory waves
    on the T wave (test seeds 24 and 74, AF at 128-140/min, read as sinus tachycardia)."""
    if m.p_wave_on_t is None or m.rhythm is None or p_timing_wanders(m, steady_only=True):
        return False
    irregularity = m.beats.irregularity()
    regular = irregularity is not None and irregularity <= IRREGULAR_RMSSD
    return regular or unexplained_irregularity(m.rhythm)[0] is False


def consistent_p_waves(m: EcgMeasurement) -> bool:
    """A P wave was found in the median beat, and, where the rhythm is irregular beyond
    what premature beats explain, it is a sinus P wave that stands before at least
    MIN_P_WAVE_SHARE of the non-premature beats one by one (where there are enough of
    them to judge a share): fibrillatory waves can leave a median 'P wave' that half
    the beats resemble by chance (synthetic tuning set), or one pointing up and right
    (LUDB 38); a sinus P wave precedes them all."""
    if not has_p_waves(m):
        return False
    rhythm = m.rhythm
    if rhythm is None:
        return True
    if p_timing_wanders(m):
        return False
    unexplained, _ = unexplained_irregularity(rhythm)
    if not unexplained:
        return True
    if sinus_p_axis(m) is None:
        return False
    if rhythm.dominant_beats < MIN_BEATS_FOR_P_SHARE:
        return not irregular_beyond_sinus_arrhythmia(rhythm)
    return rhythm.p_waves >= MIN_P_WAVE_SHARE * rhythm.dominant_beats


def unexplained_irregularity(rhythm: RhythmAnalysis) -> tuple[bool | None, str]:
    """Whether the RR stays irregular once premature beats are set aside, and on what
    that rests; None where premature beats leave nothing to judge it by.

    Irregular intervals between non-premature beats are unexplained; so are premature
    beats whose coupling intervals or following pauses spread as no single ectopic
    focus spreads them (in atrial fibrillation the early beats are many, and the
    intervals left between the others are the longer, less variable ones). Regular
    intervals between non-premature beats, MIN_NN_TO_EXPLAIN or more counting fully
    compensatory pauses (docs/measurement.md 3.4.5), explain it
    unless the premature beats' timing spreads by more than twice COUPLING_SPREAD
    (LUDB 112, atrial fibrillation: 0.36)."""
    nn, coupling = rhythm.nn_irregularity, rhythm.coupling_spread
    if nn is not None and nn > IRREGULAR_RMSSD:
        return True, (
            f"intervals between non-premature beats irregular too "
            f"(normalised RMSSD > {IRREGULAR_RMSSD})"
        )
    # A fully compensatory pause spans two sinus cycles: the sinus node kept its time
    # through that premature beat, as it does between two dominant beats. So many of
    # them can stand in for the intervals between dominant beats where premature beats
    # leave too few (MIN_NN_INTERVALS) to judge: mixed bigeminy, docs 3.4.5.
    if (
        (nn is not None or rhythm.compensatory_pauses >= MIN_NN_INTERVALS)
        and rhythm.nn_intervals + rhythm.compensatory_pauses >= MIN_NN_TO_EXPLAIN
        and (coupling is None or coupling <= 2 * COUPLING_SPREAD)
    ):
        return False, "the non-premature beats' rhythm is regular"
    if sinus_kept_time(rhythm):
        return False, (
            f"every ventricular premature beat ({rhythm.compensatory_pauses} or more) "
            "followed by a fully compensatory pause: the sinus node kept its time"
        )
    if coupling is not None and coupling > COUPLING_SPREAD:
        return True, (
            f"the premature beats' coupling intervals or the pauses after them vary by more "
            f"than {COUPLING_SPREAD:.0%}, as no single ectopic focus fires"
        )
    if nn is None and (coupling is None or rhythm.atrial_timing_spread is None):
        # Without the intervals between non-premature beats, PVCs at one coupling
        # explain nothing: they keep it in atrial fibrillation too (slow AF with
        # PVCs, docs/measurement.md 3.35).
        return None, "too few non-premature or premature beats to judge those apart"
    return False, "explained by premature beats"


def sinus_kept_time(rhythm: RhythmAnalysis) -> bool:
    """MIN_NN_TO_EXPLAIN or more compensatory pauses and not one ventricular premature
    beat without: the sinus node fired on time through each, whatever their coupling
    intervals (a sinus tachycardia at 124/min with 38 % PVCs coupled at 45-85 % of the
    cycle, synthetic tuning seed 3, was called AFIB: no P wave found at that rate, the
    couplings spread 0.25). In atrial fibrillation the two RRs around a beat are random
    and rarely add up to two cycles every time."""
    return rhythm.compensatory_pauses >= MIN_NN_TO_EXPLAIN and rhythm.uncompensated_ventricular == 0


def atrial_fibrillation_statements(m: EcgMeasurement) -> list[Statement]:
    """AFIB where no P wave repeats and the RR is irregular beyond what premature beats
    explain, and irregularly so: RRs that take only a few distinct values are grouped
    beating (Mobitz I, flutter with variable conduction), which is no fibrillation.
    Where PVCs leave no two successive pairs of intervals, the intervals without one
    judge the RR in their sequence (slow AF with PVCs, docs/measurement.md 3.37), and
    then only where the atrial activity is unorganised (FibrillatoryWaves.unorganised):
    a PAC taken for a dominant beat alternates the cycles too. So where the dominant
    beats come only in pairs between beats of another shape (Beats.dominant_in_pairs):
    the intervals between them may all be PACs' couplings (a sinus beat, an early PAC
    and a PVC in turn, docs/measurement.md 3.40)."""
    in_sequence = m.beats.irregularity() is None
    irregularity = m.beats.irregularity(in_sequence=True)
    if irregularity is None or irregularity <= IRREGULAR_RMSSD or m.rhythm is None:
        return []
    if (in_sequence or m.beats.dominant_in_pairs()) and not atrial_activity_unorganised(m):
        return []
    if regularly_irregular(m.rhythm) or regular_atrial_rhythm(m) or organised_atria(m) is not None:
        return []
    unexplained, basis = unexplained_irregularity(m.rhythm)
    too_few = unexplained is None
    if too_few and not has_p_waves(m) and no_atrial_evidence(m):
        return []
    if unexplained is None and has_p_waves(m):
        # Too few beats to tell premature beats from the rhythm, and a P wave found, if
        # at a wandering PR (model.measure.p_timing): the fibrillatory waves decide, not
        # the whole RR (synthetic VVI in AF at 100 Hz, tuning seed 6 draw 369, its
        # pacing not found: 5 of 12 beats of the dominant shape, RR just irregular).
        unexplained = False
    if unexplained is False and on_time_beats_irregular(m):
        unexplained = True
        basis = (
            "no premature beat explains it: the beats of another shape come on time "
            "(aberrant conduction), and the RR between all beats is irregular"
        )
    if unexplained is False:
        if not irregular_among_fibrillatory_waves(m, too_few):
            return []
        intervals = (
            "too few intervals between non-premature beats to judge apart, the whole RR decides"
            if m.rhythm.nn_irregularity is None
            else f"the intervals between non-premature beats vary by more than "
            f"{FIBRILLATORY_NN_RMSSD}"
        )
        basis = (
            f"fibrillatory waves ({FIBRILLATORY_HZ[0]:.0f}-{FIBRILLATORY_HZ[1]:.0f} Hz in II, "
            f"III, aVF and V1, not repeating before the beats) and no P wave: {intervals}"
        )
    rr_words = (
        "too few successive intervals without a ventricular premature beat: over the "
        "cycles in their sequence, each one around a PVC as half its coupling interval "
        "and the pause after it, with fibrillatory atrial activity, "
        if in_sequence
        else ""
    )
    fibrillatory = m.fibrillatory
    why_not_p = wandering_p_words(m) or irregular_beyond_sinus_arrhythmia_words(m.rhythm)
    return [
        make_statement(
            "AFIB",
            f"irregularly irregular RR ({rr_words}normalised RMSSD > {IRREGULAR_RMSSD}; {basis}) "
            "without consistent P waves before the non-premature beats"
            + (f" ({why_not_p})" if why_not_p else ""),
            rr_rmssd_normalised=irregularity,
            normal_to_normal_rmssd_normalised=m.rhythm.nn_irregularity,
            coupling_spread=m.rhythm.coupling_spread,
            fibrillatory_wave_share=fibrillatory.share if fibrillatory else None,
            heart_rate_bpm=m.values.heart_rate_bpm,
            p_wave=m.null_reasons.get("pr_ms"),
        )
    ]


def atrial_activity_unorganised(m: EcgMeasurement) -> bool:
    """FibrillatoryWaves.unorganised; where too few beats are left to judge premature
    ones apart and a "P wave" stands at a wandering PR, the repeat (judged on the 2-3
    windows of slow AF with PVCs) is not asked, as in irregular_among_fibrillatory_waves:
    the fibrillatory band alone, which a sinus P wave's harmonics (under 4 Hz at these
    rates) do not reach (docs/measurement.md 3.37)."""
    fibrillatory = m.fibrillatory
    if fibrillatory is None or m.rhythm is None:
        return False
    too_few = unexplained_irregularity(m.rhythm)[0] is None
    if too_few and has_p_waves(m) and p_timing_wanders(m):
        return fibrillatory.in_band
    return fibrillatory.unorganised


def on_time_beats_irregular(m: EcgMeasurement) -> bool:
    """No P wave, no premature beat, and beats of another shape ('X': not premature)
    among the dominant ones: the intervals between dominant beats alone leave out
    those beats' intervals, which premature beats do not explain; the whole RR (already
    found irregular) is the rhythm's. Atrial fibrillation with aberrantly conducted
    beats (LUDB 109: 7 of 16 beats of another shape, the dominant beats' 5 intervals
    read regular by chance)."""
    rhythm = m.rhythm
    if has_p_waves(m) or rhythm is None or not rhythm.count("X"):
        return False
    return not any(rhythm.count(origin) for origin in ORIGIN_WORDS)


def irregular_among_fibrillatory_waves(m: EcgMeasurement, too_few: bool = False) -> bool:
    """An irregular RR that premature beats would explain is atrial fibrillation where
    no P wave was found and fibrillatory waves are (model.measure.atrial
    FibrillatoryWaves.clear): early beats without a P wave before them are no premature
    atrial beats, and the intervals between the others need vary by no more than
    FIBRILLATORY_NN_RMSSD (where there are none to judge, the whole RR decides).
    too_few (beats to judge premature ones apart) with a "P wave" at a wandering PR:
    that already shows nothing repeats before the beats, and the repeat, judged on the
    2-3 windows of slow AF with PVCs, is not asked again (docs/measurement.md 3.35)."""
    fibrillatory = m.fibrillatory
    wandering = has_p_waves(m) and p_timing_wanders(m)
    if has_p_waves(m) and not wandering:
        return False
    if fibrillatory is None or m.rhythm is None:
        return False
    if not (fibrillatory.in_band if wandering and too_few else fibrillatory.clear):
        return False
    nn = m.rhythm.nn_irregularity
    return nn is None or nn > FIBRILLATORY_NN_RMSSD


def organised_atria(m: EcgMeasurement) -> str | None:
    """Why the atrial activity is organised, or None: some lead's strongest 3-12 Hz
    peak under the fibrillatory band (FibrillatoryWaves.peaks_below_band), and either
    the activity before the beats repeating (above MAX_FIBRILLATORY_REPEAT) or the RR
    between dominant beats grouped as Mobitz I's (RhythmAnalysis.grouped_beating).
    Mobitz I and 2:1 block with PACs read AFIB where their P waves were hidden by noise
    or kept no cycle (docs/measurement.md 3.39); atrial fibrillation's fine waves under
    noise also peak under 4 Hz, but neither repeat nor group the RR."""
    fibrillatory = m.fibrillatory
    if fibrillatory is None or m.rhythm is None or not fibrillatory.peaks_below_band:
        return None
    if fibrillatory.repeat is not None and fibrillatory.repeat > MAX_FIBRILLATORY_REPEAT:
        return (
            f"the atrial activity before the beats repeats ({fibrillatory.repeat:.1f}) and "
            f"peaks under {FIBRILLATORY_HZ[0]:.0f} Hz"
        )
    if m.rhythm.grouped_beating:
        return (
            "the RRs between dominant beats grouped (a short and a long value, the long "
            "ones single, as in Mobitz I), the atrial activity peaking under "
            f"{FIBRILLATORY_HZ[0]:.0f} Hz"
        )
    return None


def no_atrial_evidence(m: EcgMeasurement) -> bool:
    """Where too few beats leave only the whole RR to judge, no P wave found and nothing
    that shows fibrillation either: some lead's strongest 3-12 Hz peak under the
    fibrillatory band, and no "P wave" matched at a wandering PR (fibrillatory waves
    match the template at random lags, model.measure.p_timing). Slow Mobitz I with
    PACs under 0.1 mV of noise (7 beats in 10 s) read AFIB on the whole RR alone
    (docs/measurement.md 3.39)."""
    fibrillatory = m.fibrillatory
    return fibrillatory is not None and fibrillatory.peaks_below_band and not p_timing_wanders(m)


def regularly_irregular(rhythm: RhythmAnalysis) -> bool:
    """The RRs fall into MAX_RR_LEVELS distinct values or fewer (model.measure.rhythm)."""
    return rhythm.rr_levels is not None and rhythm.rr_levels <= MAX_RR_LEVELS


def sinus_p_axis(m: EcgMeasurement) -> str | None:
    """How the P wave's axis was found sinus (the words for the criterion), or None.

    Within SINUS_P_AXIS; or, on leads rescaled one by one where the fitted axis means
    little, by each limb lead's P polarity (a positive rescale keeps it; LUDB 19 and
    24, sinus rhythms whose rescaled P axes read -45 and -34), for a P wave that stands
    before MIN_P_WAVE_SHARE of the non-premature beats one by one."""
    p_axis = m.values.p_axis_deg
    if p_axis is None:
        return None
    sinus = f"with P axis {SINUS_P_AXIS[0]}..{SINUS_P_AXIS[1]} degrees"
    if SINUS_P_AXIS[0] <= p_axis <= SINUS_P_AXIS[1]:
        return sinus
    rhythm = m.rhythm
    if m.amplitudes_calibrated or rhythm is None or not rhythm.dominant_beats:
        return None
    if rhythm.p_waves < MIN_P_WAVE_SHARE * rhythm.dominant_beats:
        return None
    if not polarity_fits_axis(m.p_areas, SINUS_P_AXIS):
        return None
    return (
        f"whose polarity in each limb lead fits a P axis {SINUS_P_AXIS[0]}..{SINUS_P_AXIS[1]} "
        f"degrees (leads rescaled: the fitted axis, {p_axis} degrees, is approximate)"
    )


def flutter_at_two_to_one_not_excluded(m: EcgMeasurement) -> str | None:
    """Why the sinus-looking P wave may be a flutter wave conducted 2:1 (TWO_TO_ONE_BPM),
    in the impression's words; None where the measurements exclude it."""
    hr, qrs = m.values.heart_rate_bpm, m.values.qrs_ms
    if hr is None or not TWO_TO_ONE_BPM[0] <= hr <= TWO_TO_ONE_BPM[1]:
        return None
    if sinus_p_axis(m) is None and m.p_wave_on_t is None:
        return None  # no sinus-looking atrial wave: said as such by undetermined_rhythm
    if m.values.pr_ms is not None or (qrs is not None and qrs < FUSED_QRS_MS):
        return None
    irregularity = m.beats.irregularity() if m.beats is not None else None
    if irregularity is None or irregularity > IRREGULAR_RMSSD or m.rhythm is None:
        return None
    if any(m.rhythm.count(origin) for origin in ORIGIN_WORDS):
        return None  # premature beats' QRS complexes, not fusion, may leave it undelimited
    qrs_words = "not delimited" if qrs is None else f"measured {qrs} ms"
    return (
        f"sinus tachycardia not told from atrial flutter with 2:1 conduction (P wave onset "
        f"not delimited, QRS {qrs_words}: a flutter wave may fuse with it)"
    )


def sinus_statements(m: EcgMeasurement, limits: StatementLimits) -> list[Statement]:
    if flutter_at_two_to_one_not_excluded(m) is not None:
        return []
    p_axis, hr = m.values.p_axis_deg, m.values.heart_rate_bpm
    where, axis_words = "before each QRS", sinus_p_axis(m)
    if p_axis is None and m.p_wave_on_t is not None:
        p_axis, where = m.p_wave_on_t.axis_deg, "on the preceding T wave before each QRS"
        if SINUS_P_AXIS[0] <= p_axis <= SINUS_P_AXIS[1]:
            axis_words = f"with P axis {SINUS_P_AXIS[0]}..{SINUS_P_AXIS[1]} degrees"
    if axis_words is None:
        return []
    found = []
    sinus = f"P wave {where} {axis_words}"
    p_waves = _p_wave_counts(m.rhythm)
    sinus_rate = sinus_rate_bpm(m)
    if sinus_rate != hr:
        p_waves["sinus_rate_bpm"] = sinus_rate
    rate = sinus_rate_code(sinus_rate, limits)
    if rate is not None:
        code, limit = rate
        found.append(
            make_statement(
                code,
                f"{sinus}, {_rate_words(sinus_rate, hr)} {limit}/min",
                heart_rate_bpm=hr,
                p_axis_deg=p_axis,
                **p_waves,
            )
        )
    nn = normal_to_normal_rr_ms(m)
    if len(nn) >= 3:
        spread = max(nn) - min(nn)
        if spread > SINUS_ARRHYTHMIA_MS and spread > SINUS_ARRHYTHMIA_SPREAD * sum(nn) / len(nn):
            found.append(
                make_statement(
                    "SARRH",
                    f"{sinus}, normal-to-normal RR varies by > {SINUS_ARRHYTHMIA_MS} ms "
                    f"and > {SINUS_ARRHYTHMIA_SPREAD:.0%} of its mean",
                    rr_min_ms=min(nn),
                    rr_max_ms=max(nn),
                    heart_rate_bpm=hr,
                )
            )
    if not found:
        found.append(
            make_statement(
                "SR",
                f"{sinus}, {_rate_words(sinus_rate, hr)} "
                f"{limits.bradycardia_bpm}-{limits.tachycardia_bpm}/min",
                heart_rate_bpm=hr,
                p_axis_deg=p_axis,
                **p_waves,
            )
        )
    return found


def sinus_rate_bpm(m: EcgMeasurement) -> int:
    """The rate the sinus rate code is judged by: the heart rate, or where premature
    beats make the mean RR misstate it, the underlying cycle's
    (model.measure.rhythm.underlying_cycle)."""
    hr = m.values.heart_rate_bpm
    cycle = m.rhythm.sinus_cycle if m.rhythm is not None else None
    if cycle is None or hr is None:
        return hr
    return round(60.0 * FS / cycle)


def _rate_words(sinus_rate: int, hr: int) -> str:
    """'rate' where the heart rate is the sinus rate, else what the code was judged by."""
    return "rate" if sinus_rate == hr else "sinus rate between premature beats"


def _p_wave_counts(rhythm: RhythmAnalysis | None) -> dict[str, int]:
    if rhythm is None or not rhythm.dominant_beats:
        return {}
    return {"beats_with_p_wave": rhythm.p_waves, "non_premature_beats": rhythm.dominant_beats}


def sinus_rate_code(hr: float, limits: StatementLimits) -> tuple[str, str] | None:
    """SBRAD or STACH with the limit the rate passed ('< 50'), or None within the limits.

    The limits are site settings (model.statement_limits). The default sinus
    bradycardia is below 50/min, as the 2018 ACC/AHA/HRS bradycardia guideline defines
    it and as PTB-XL's cardiologists code it: of the 3,018 PTB-XL rows in ptbxl-reports
    (not the 400 benchmark records) 2.7 % of the non-AF ECGs are SBRAD, about the share
    of resting ECGs under 50/min, far below that under 60/min; its CinC 2021 copies code
    53 and 56/min as plain sinus rhythm. LUDB's and Georgia's cardiologists use the
    AHA/ACCF/HRS 2009 limit, 60/min. Tachycardia above 100/min.
    """
    if hr < limits.bradycardia_bpm:
        return "SBRAD", f"< {limits.bradycardia_bpm}"
    if hr > limits.tachycardia_bpm:
        return "STACH", f"> {limits.tachycardia_bpm}"
    return None


def undetermined_rhythm(m: EcgMeasurement) -> str:
    """Why no rhythm was named, in the words the impression gives the physician: what
    the rhythm is seen to be (regular or not, its rate, narrow or wide QRS) and which
    step of the reasoning (rhythm_statements) found too little to name it."""
    hr, qrs = m.values.heart_rate_bpm, m.values.qrs_ms
    if m.beats is None or hr is None:
        return m.null_reasons.get("heart_rate_bpm", "no beats detected")
    irregularity = m.beats.irregularity()
    regular = irregularity is not None and irregularity <= IRREGULAR_RMSSD
    # Too few intervals without a ventricular beat (bigeminy) leave regularity unjudged.
    pace = "" if irregularity is None else ("regular " if regular else "irregular ")
    width = "" if qrs is None else ("wide-complex " if qrs >= WIDE_QRS_MS else "narrow-complex ")
    seen = f"{pace}{width}rhythm at {hr}/min"
    two_to_one = flutter_at_two_to_one_not_excluded(m)
    if two_to_one is not None:
        return f"{seen}, {two_to_one}"
    p_axis = m.values.p_axis_deg
    if p_axis is not None and sinus_p_axis(m) is None:
        approximate = "" if m.amplitudes_calibrated else " (approximate: leads rescaled)"
        return (
            f"{seen}, P wave axis {p_axis} degrees{approximate}, outside the sinus range "
            f"{SINUS_P_AXIS[0]}..{SINUS_P_AXIS[1]} degrees"
        )
    if not has_p_waves(m):
        why = m.null_reasons.get("p_axis_deg") or m.null_reasons.get("pr_ms")
        # A wave found and then rejected was seen but not measured as a P wave.
        measured = f"{seen}, no P wave measured" + (f" ({why})" if why else "")
        organised = None if regular else organised_atria(m)
        too_few = m.rhythm is not None and unexplained_irregularity(m.rhythm)[0] is None
        if not regular and too_few and no_atrial_evidence(m):
            organised = organised or (
                "too few beats to judge premature beats apart, and no fibrillatory "
                f"waves (a lead's strongest peak under {FIBRILLATORY_HZ[0]:.0f} Hz)"
            )
        not_af = f"; not atrial fibrillation: {organised}" if organised else ""
        return measured + (regular_atrial_words(m) or not_af)
    if p_axis is None:
        why = m.null_reasons.get("p_axis_deg", "not measured")
        return f"{seen}, P wave axis not measured ({why})"
    not_judged = sinus_not_judged(m)
    if not_judged is not None and consistent_p_waves(m):
        return f"{seen}, {not_judged}"
    if regular or m.rhythm is None:
        return f"{seen}, P waves not consistent before the QRS complexes"
    if regular_atrial_rhythm(m):
        words = regular_atrial_words(m)
        return f"{seen}, P waves not consistent before the non-premature beats{words}"
    if irregularity is None:
        basis = "too few intervals without a ventricular premature beat to judge the RR"
    elif regularly_irregular(m.rhythm):
        basis = f"the RRs take only {m.rhythm.rr_levels} distinct values (grouped beating)"
    elif organised_atria(m) is not None:
        basis = f"organised atrial activity: {organised_atria(m)}"
    else:
        basis = unexplained_irregularity(m.rhythm)[1]
    p_waves = wandering_p_words(m) or "P waves not consistent before the non-premature beats"
    return f"{seen}, {p_waves}; not atrial fibrillation: {basis}"


def regular_atrial_words(m: EcgMeasurement) -> str:
    """Where the P waves along the recording keep a regular atrial cycle that the
    median beat did not show (regular_atrial_rhythm): why AF was not named."""
    if not regular_atrial_rhythm(m):
        return ""
    atrial = m.atrial
    return (
        f"; P waves along the recording at a regular {atrial.atrial_rate_per_min:.0f}/min, "
        f"{atrial.blocked} not conducted: not atrial fibrillation"
    )


def wandering_p_words(m: EcgMeasurement) -> str | None:
    """The P waves' wandering timing in the words of an undetermined rhythm's reason;
    None where p_timing_wanders does not hold."""
    if not p_timing_wanders(m):
        return None
    return (
        f"P waves at a PR that varies by {pr_spread_ms(m):.0f} ms (SD) from beat to beat "
        "and keep no regular atrial cycle (not conducted sinus P waves)"
    )
