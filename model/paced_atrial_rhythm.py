"""The atrial rhythm under a pacemaker that drives most beats: atrial pacing (atrial
stimuli before the QRS complexes, with or without ventricular ones: AAI, or AV
sequential DDD pacing), or a sinus rhythm the pacemaker tracks (VDD/DDD: a sinus P
wave before each ventricular-paced QRS at the same delay), or one it does not track
(VVI: sinus P waves regular through the paced beats), or fibrillatory waves between
the paced beats. model.paced_statements names the pacing and the atrial fibrillation
beside it; this module the evidence of the atria (docs/measurement.md 3.28, 3.30).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.beats import FS
from model.measure import EcgMeasurement
from model.measure.atrial import FIBRILLATORY_HZ
from model.measure.av_conduction import PR_RANGE_MS
from model.measure.leads import PRE
from model.measure.waves import SINUS_P_AXIS
from model.report import Statement
from model.rhythm_statements import sinus_p_axis, sinus_rate_code
from model.statement_limits import StatementLimits
from model.statement_text import make_statement

# A ventricular stimulus lies this close before the QRS onset it captured or closer
# (latency about 6 ms; the onset estimated from the median beat, smeared stimuli at
# 100 Hz: synthetic VVI and DDD, tuning seeds 1 and 3, -64..44 ms, 95 % under 28 ms;
# a negative delay: the stimulus after the onset estimated).
VENTRICULAR_MAX_MS = 60.0
# An atrial stimulus precedes its QRS onset by the atrial latency and the PR or the
# programmed AV delay (synthetic AAI and DDD, tuning seeds 1 and 3: 130-204 ms;
# pacemakers' AV delays 100-300 ms, atrial latency and conduction added).
ATRIAL_DELAY_MS = (90.0, 400.0)
# Of the paced beats, at least this share show the evidence, one by one (the share the
# sinus rules ask of P waves, model.rhythm_statements.MIN_P_WAVE_SHARE).
MIN_EVIDENCE_SHARE = 0.75
# A tracked P wave: its onset before the QRS onset within a pacemaker's programmable
# AV delay (sensed AV delays 80-300 ms), the same before the paced beats within this
# of their median: the pacemaker times its stimulus from the sensed P wave. On the
# synthetic tracking DDD (tuning seeds 1, 3-7) the PRs of a strip lie within 0-11 ms
# of their median but for one P wave missed or misplaced in some strips (spread up to
# 1756 ms: hence the median, not the whole spread); under VVI pacing (dissociated P
# waves, fibrillatory waves taken for P waves) at most 60 % of the paced beats have
# one there (3 of 5, VVI in AF, seed 4 draw 320).
TRACKED_PR_MS = (80.0, 300.0)
MAX_TRACKED_PR_DEVIATION_MS = 12.0
# A QRS this narrow after an atrial stimulus is conducted (AAI), not ventricular-paced.
NARROW_QRS_MS = 120
# AV sequential pacing: ventricular stimuli found before at least this share of the
# paced beats (the search misses some low-passed ones after the atrial spike's own
# blanking: synthetic DDD at 250 Hz, tuning seeds, 5-8 of 9-12).
MIN_VENTRICULAR_SHARE = 0.5
# A sinus rhythm beside VVI pacing: its P waves found along the recording
# (EcgMeasurement.paced_atrial, every beat class cancelled) keep one atrial cycle at a
# sinus rate (the sinus node's range a pacemaker strip shows: the synthetic draws
# 50-110/min) and a sinus P axis (SINUS_P_AXIS).
SINUS_ATRIAL_RATE = (40.0, 150.0)
# Not tracked (VVI), by either of two signs, on the synthetic strips of tuning seeds 1
# and 3-7 (the P waves found within one atrial cycle before each paced beat):
# - their delays before the paced beats span this much or more: VVI with dissociated
#   P waves 150-1000 ms (but two near the lower rate, 50 and 54 ms); tracking DDD 0-46
#   ms (a P wave misplaced now and then);
# - or at least MIN_CONDUCTED_BEATS beats no stimulus drove conducted at one PR (all
#   within MAX_CONDUCTED_PR_DEVIATION_MS of their median, in PR_RANGE_MS), every
#   paced beat's P wave at least PACED_BEFORE_CONDUCTION_MS closer to its QRS than
#   that PR (the pacemaker fired before the sinus beat was conducted: VVI over sinus
#   rhythm, 26-80 ms closer; tracking DDD with stimuli missed: the same delay, or 2
#   beats at 34 ms longer), and those P waves not at one delay (fewer than
#   MIN_EVIDENCE_SHARE within MAX_TRACKED_PR_DEVIATION_MS of their median: the
#   sinus rate swings against the fixed escape interval).
DISSOCIATED_SPREAD_MS = 120.0
MIN_DISSOCIATED_P_WAVES = 3
MIN_CONDUCTED_BEATS = 3
MAX_CONDUCTED_PR_DEVIATION_MS = 20.0
PACED_BEFORE_CONDUCTION_MS = 20.0
# Fibrillatory-looking waves under ventricular pacing, reported without a rhythm code
# (atrial_rhythm_unclear_under_pacing), where the P waves found keep no atrial cycle
# and the residual between the paced beats has this share of its 1-40 Hz power at
# 4-9 Hz (EcgMeasurement.paced_fibrillatory_share) or more.
# Synthetic paced strips of tuning seeds 1 and 3-7 (paced 40 % or more): VVI in AF
# 0.24-0.71 (median 0.55; 23 of 31 at 0.5 or more), every other mode 0.06-0.43 (AAI,
# whose P waves keep a cycle), those whose P waves keep no cycle 0.09-0.37. The
# unpaced rule asks 0.45 (model.measure.atrial.MIN_FIBRILLATORY_SHARE) beside an
# irregular RR, which a paced rhythm does not give.
MIN_PACED_FIBRILLATORY_SHARE = 0.5

FIBRILLATORY_BAND = f"the share at {FIBRILLATORY_HZ[0]:.0f}-{FIBRILLATORY_HZ[1]:.0f} Hz"
ATRIAL_PACING = "Atrial-paced rhythm"
AV_SEQUENTIAL = "AV sequential pacing"
ATRIAL_SENSED = "Atrial-sensed ventricular pacing"
VENTRICULAR_PACING = "Ventricular pacing"
NOT_TRACKED = f"{VENTRICULAR_PACING} (P waves not tracked)"
UNCLEAR_ATRIAL_RHYTHM = (
    f"{VENTRICULAR_PACING}; atrial rhythm undetermined (fibrillatory waves or tremor)"
)


@dataclass(frozen=True)
class StimulusTiming:
    """Per paced beat, whether an atrial stimulus (ATRIAL_DELAY_MS before its QRS
    onset) and a ventricular one (VENTRICULAR_MAX_MS or closer) precede it."""

    atrial: np.ndarray
    ventricular: np.ndarray
    atrial_delay_ms: float | None


def stimulus_timing(m: EcgMeasurement) -> StimulusTiming | None:
    """Where each paced beat's stimuli lie against its QRS onset (the beat's position
    less the median beat's QRS onset offset), or None without stimuli."""
    if m.stimuli is None or m.paced_mask is None or m.fiducials is None:
        return None
    if m.fiducials.qrs_on is None or not m.stimuli.size:
        return None
    positions = m.beats.positions
    onsets = positions - PRE + m.fiducials.qrs_on
    previous = np.concatenate([[-np.inf], positions[:-1]])
    paced = np.flatnonzero(m.paced_mask)
    atrial = np.zeros(paced.size, dtype=bool)
    ventricular = np.zeros(paced.size, dtype=bool)
    delays = []
    for k, i in enumerate(paced):
        before = m.stimuli[(m.stimuli > previous[i]) & (m.stimuli <= positions[i])]
        lead_ms = (onsets[i] - before) * 1000.0 / FS
        ventricular[k] = bool((lead_ms <= VENTRICULAR_MAX_MS).any())
        far = lead_ms[(lead_ms >= ATRIAL_DELAY_MS[0]) & (lead_ms <= ATRIAL_DELAY_MS[1])]
        atrial[k] = bool(far.size)
        delays.extend(far)
    return StimulusTiming(atrial, ventricular, float(np.median(delays)) if delays else None)


def atrial_pacing(m: EcgMeasurement, pacing: Statement, timing: StimulusTiming) -> Statement | None:
    """`pacing` (the PACE statement) worded for atrial pacing where an atrial stimulus
    precedes MIN_EVIDENCE_SHARE of the paced beats and of all beats: "Atrial-paced
    rhythm" where the QRS is narrow (under NARROW_QRS_MS: conducted, whatever
    ventricular stimulus a pseudo-fusion shows), "AV sequential pacing" where it is not
    and a ventricular stimulus precedes MIN_VENTRICULAR_SHARE of the paced beats too;
    else None."""
    atrial = int(timing.atrial.sum())
    if atrial < MIN_EVIDENCE_SHARE * max(timing.atrial.size, m.beats.positions.size):
        return None
    qrs = m.values.qrs_ms
    ventricular = int(timing.ventricular.sum())
    if qrs is not None and qrs < NARROW_QRS_MS:
        text, chambers = ATRIAL_PACING, f"the QRS narrow ({qrs} ms < {NARROW_QRS_MS} ms)"
    elif ventricular >= MIN_VENTRICULAR_SHARE * timing.ventricular.size:
        text = AV_SEQUENTIAL
        chambers = f"and a ventricular stimulus before at least {MIN_VENTRICULAR_SHARE:.0%}"
    else:
        return None
    return worded(
        pacing,
        text,
        f"an atrial stimulus {ATRIAL_DELAY_MS[0]:.0f}-{ATRIAL_DELAY_MS[1]:.0f} ms before the "
        f"QRS onset of at least {MIN_EVIDENCE_SHARE:.0%} of the beats, {chambers}",
        atrial_paced_beats=atrial,
        ventricular_stimuli=ventricular,
        stimulus_to_qrs_ms=round(timing.atrial_delay_ms),
    )


def ventricular_pacing(m: EcgMeasurement, pacing: Statement) -> Statement | None:
    """`pacing` worded "Ventricular pacing" where a ventricular and no atrial stimulus
    precedes MIN_EVIDENCE_SHARE of the paced beats (beside atrial fibrillation: the
    atria are not paced); else None."""
    timing = stimulus_timing(m)
    if timing is None or timing.atrial.any():
        return None
    ventricular = int(timing.ventricular.sum())
    if ventricular < MIN_EVIDENCE_SHARE * timing.ventricular.size:
        return None
    return worded(
        pacing,
        VENTRICULAR_PACING,
        f"a ventricular stimulus at most {VENTRICULAR_MAX_MS:.0f} ms before the QRS onset "
        f"of at least {MIN_EVIDENCE_SHARE:.0%} of the paced beats, no atrial stimulus",
        ventricular_stimuli=ventricular,
    )


def atrial_rhythm_unclear_under_pacing(
    m: EcgMeasurement, ventricular: Statement
) -> Statement | None:
    """`ventricular` worded "atrial rhythm undetermined" where the residual between the
    paced beats, every beat class cancelled, holds fibrillatory-looking waves
    (MIN_PACED_FIBRILLATORY_SHARE) and no P waves that keep a cycle, without flutter
    waves; else None. Not coded AFIB: with no ventricular response to judge, the 4-9 Hz
    share is the only sign, and limb tremor at 4-6 Hz gives it as well (a review's
    sweep, test seeds 11-20: 0.06 mV of arm tremor on VVI strips in sinus rhythm read
    AFIB in 8 of 10, docs/measurement.md 3.30), so the report says what was seen and
    leaves the rhythm to the physician."""
    share = m.paced_fibrillatory_share
    if share is None or share < MIN_PACED_FIBRILLATORY_SHARE or m.has_flutter_waves:
        return None
    if m.paced_atrial is not None and m.paced_atrial.atrial_cycle_ms is not None:
        return None
    return worded(
        ventricular,
        UNCLEAR_ATRIAL_RHYTHM,
        f"{FIBRILLATORY_BAND} of the residual's 1-40 Hz power between the paced beats at "
        f"least {MIN_PACED_FIBRILLATORY_SHARE:.0%} once every beat's QRS-T complex is "
        "cancelled, no P waves at a regular rate: atrial fibrillation or muscle tremor, "
        "which this evidence does not tell apart",
        fibrillatory_wave_share=round(share, 2),
    )


def worded(pacing: Statement, text: str, criterion: str, **values: float) -> Statement:
    """The PACE statement with the pacing mode's text, its criterion and values added."""
    evidence = pacing.evidence.model_copy(
        update={
            "criterion": f"{pacing.evidence.criterion}; {criterion}",
            "values": {**pacing.evidence.values, **values},
        }
    )
    return pacing.model_copy(update={"text": text, "evidence": evidence})


def tracked_sinus(
    m: EcgMeasurement, pacing: Statement, timing: StimulusTiming, limits: StatementLimits
) -> list[Statement]:
    """The PACE statement worded "Atrial-sensed ventricular pacing" where the
    pacemaker tracks the P waves: a ventricular and no atrial stimulus before
    MIN_EVIDENCE_SHARE of the paced beats, a P wave before as many at the same delay
    (TRACKED_PR_MS, MAX_TRACKED_PR_DEVIATION_MS), a regular atrial rhythm and a sinus
    P axis; the sinus rhythm (SR, SBRAD or STACH by the rate) before it. Else
    nothing."""
    a, mask = m.atrial, m.paced_mask
    hr = m.values.heart_rate_bpm
    if a is None or hr is None or a.atrial_cycle_ms is None or len(a.pr_ms) != mask.size:
        return []
    share = MIN_EVIDENCE_SHARE * timing.atrial.size
    if timing.atrial.any() or timing.ventricular.sum() < share:
        return []
    prs = np.array([p for p, paced in zip(a.pr_ms, mask) if paced and p is not None])
    prs = prs[(prs >= TRACKED_PR_MS[0]) & (prs <= TRACKED_PR_MS[1])]
    if not prs.size:
        return []
    prs = prs[np.abs(prs - np.median(prs)) <= MAX_TRACKED_PR_DEVIATION_MS]
    if prs.size < share:
        return []
    axis_words = sinus_p_axis(m)
    if axis_words is None:
        # P waves at one delay before the paced beats whose axis is not shown sinus
        # may be paced ones whose stimuli were not found: LUDB 45, labelled atrial and
        # ventricular pacing, no atrial stimulus found, P waves 218-228 ms before all
        # 8 paced beats, P axis 178 degrees (LUDB 72, P-synchronous pacing, P axis 142
        # degrees, its leads rescaled, is left unnamed with it).
        return []
    tracked = (
        f"a P wave {axis_words} before at least "
        f"{MIN_EVIDENCE_SHARE:.0%} of the ventricular-paced beats at one delay "
        f"({TRACKED_PR_MS[0]:.0f}-{TRACKED_PR_MS[1]:.0f} ms, within "
        f"{MAX_TRACKED_PR_DEVIATION_MS:.0f} ms of the median), no atrial stimulus"
    )
    evidence = {
        "tracked_p_waves": int(prs.size),
        "p_to_qrs_ms": round(float(np.median(prs))),
        "p_to_qrs_spread_ms": round(float(np.ptp(prs))),
    }
    sensed = worded(pacing, ATRIAL_SENSED, f"the ventricular stimuli track {tracked}", **evidence)
    rate = sinus_rate_code(hr, limits)
    code, limit = rate if rate is not None else ("SR", "")
    rate_words = f", rate {limit}/min" if limit else ""
    sinus = make_statement(
        code,
        f"{tracked[0].upper()}{tracked[1:]}{rate_words}",
        heart_rate_bpm=hr,
        p_axis_deg=m.values.p_axis_deg,
        **evidence,
    )
    return [sinus, sensed]


def dissociated_sinus(
    m: EcgMeasurement, pacing: Statement, timing: StimulusTiming, limits: StatementLimits
) -> list[Statement]:
    """A sinus rhythm beside ventricular pacing that does not track it (VVI): a
    ventricular and no atrial stimulus before MIN_EVIDENCE_SHARE of the paced beats,
    the P waves found along the recording (m.paced_atrial) regular at a sinus rate
    (SINUS_ATRIAL_RATE) with a sinus P axis, and not tracked (not_tracked): SR, SBRAD or STACH by the atrial rate, and
    the PACE statement worded NOT_TRACKED. Else nothing."""
    a, mask = m.paced_atrial, m.paced_mask
    if a is None or a.atrial_rate_per_min is None or a.p_axis_deg is None:
        return []
    rate = a.atrial_rate_per_min
    if not SINUS_ATRIAL_RATE[0] <= rate <= SINUS_ATRIAL_RATE[1]:
        return []
    if not SINUS_P_AXIS[0] <= a.p_axis_deg <= SINUS_P_AXIS[1]:
        return []
    share = MIN_EVIDENCE_SHARE * timing.atrial.size
    if timing.atrial.any() or timing.ventricular.sum() < share or len(a.pr_ms) != mask.size:
        return []
    untracked = not_tracked(a.pr_ms, mask, a.atrial_cycle_ms)
    if untracked is None:
        return []
    words, evidence = untracked
    found = (
        f"P waves regular at {rate:.0f}/min (atrial cycle {a.atrial_cycle_ms:.0f} ms, "
        f"{len(a.p_onsets)} found) with P axis {SINUS_P_AXIS[0]}..{SINUS_P_AXIS[1]} "
        f"degrees, {words}"
    )
    evidence = {
        "atrial_rate_per_min": round(rate),
        "p_waves_found": len(a.p_onsets),
        "p_axis_deg": round(a.p_axis_deg),
        **evidence,
    }
    code, limit = sinus_rate_code(round(rate), limits) or ("SR", "")
    rate_words = f", atrial rate {limit}/min" if limit else ""
    sinus = make_statement(code, f"{found[0].upper()}{found[1:]}{rate_words}", **evidence)
    paced = worded(
        pacing,
        NOT_TRACKED,
        f"a ventricular stimulus before at least {MIN_EVIDENCE_SHARE:.0%} of the paced "
        f"beats, no atrial stimulus; {found}",
        **evidence,
    )
    return [sinus, paced]


def not_tracked(
    pr_ms: tuple[float | None, ...], mask: np.ndarray, cycle_ms: float
) -> tuple[str, dict[str, float]] | None:
    """How the P waves show the pacemaker does not track them (DISSOCIATED_SPREAD_MS,
    or conducted beats at one PR and the paced ones sooner after their P wave, not at
    one delay), in words and values; None where neither shows."""

    def within_cycle(paced: bool) -> np.ndarray:
        return np.array(
            [p for p, m in zip(pr_ms, mask) if m == paced and p is not None and p < cycle_ms]
        )

    paced = within_cycle(True)
    if paced.size >= MIN_DISSOCIATED_P_WAVES and np.ptp(paced) >= DISSOCIATED_SPREAD_MS:
        return (
            (
                f"found {paced.min():.0f}-{paced.max():.0f} ms before the "
                "ventricular-paced beats (not at one delay)"
            ),
            {
                "p_to_paced_qrs_min_ms": round(paced.min()),
                "p_to_paced_qrs_max_ms": round(paced.max()),
            },
        )
    conducted = within_cycle(False)
    if conducted.size < MIN_CONDUCTED_BEATS:
        return None
    pr = float(np.median(conducted))
    if not PR_RANGE_MS[0] <= conducted.min() <= conducted.max() <= PR_RANGE_MS[1]:
        return None
    if (np.abs(conducted - pr) > MAX_CONDUCTED_PR_DEVIATION_MS).any():
        return None
    if paced.size and paced.max() > pr - PACED_BEFORE_CONDUCTION_MS:
        return None
    locked = np.abs(paced - np.median(paced)) <= MAX_TRACKED_PR_DEVIATION_MS if paced.size else []
    if paced.size and np.count_nonzero(locked) >= MIN_EVIDENCE_SHARE * paced.size:
        # At one delay before the paced beats: tracked P waves whose beats without a
        # stimulus found are measured from another QRS onset (synthetic DDD tracking
        # at 93/min, test seed 12: P waves 126-128 ms before all 8 paced beats, 162-164
        # ms before the 4 others, of another shape).
        return None
    return (
        (
            f"the beats not paced conducted at PR {pr:.0f} ms, the paced ones "
            f"{PACED_BEFORE_CONDUCTION_MS:.0f} ms or more sooner after their P wave, "
            "not at one delay"
        ),
        {"conducted_pr_ms": round(pr), "conducted_beats": int(conducted.size)},
    )
