"""Few non-premature beats: when a P wave before some of them is no evidence of a
sinus rhythm (docs/measurement.md 3.27).

Where premature beats leave fewer than MIN_BEATS_FOR_P_SHARE non-premature beats, the
P wave's share cannot be judged, and fibrillatory waves can make up a median "P wave"
that a few beats resemble by chance. Then the intervals between those beats decide:
changing beat to beat beyond any sinus arrhythmia, they are atrial fibrillation's
(model.rhythm_statements.consistent_p_waves); too few to show any rhythm, neither sinus
nor fibrillation is named, unless the cycles after the premature beats return alike.
"""

from __future__ import annotations

import numpy as np

from model.beats import IRREGULAR_RMSSD
from model.measure import EcgMeasurement
from model.measure.rhythm import MIN_NN_INTERVALS, RhythmAnalysis

# In an irregular rhythm, the P wave must precede this share of the non-premature beats,
# where there are enough of them to judge a share (PTB-XL 191, sinus bradycardia at
# 31/min with a first-degree AV block: P waves before 3 of its 5 beats).
MIN_P_WAVE_SHARE = 0.75
MIN_BEATS_FOR_P_SHARE = 8
# With fewer beats than that, the intervals between the non-premature beats decide:
# a sinus arrhythmia changes the cycle gradually with breathing, and on the tuning sets
# no rhythm named sinus on a consistent P wave changes it beat to beat by more than
# 0.14 (normalised RMSSD; LUDB's sinus arrhythmias 0.08-0.14). Above SINUS_NN_RMSSD,
# a P wave missing before any one non-premature beat leaves them atrial fibrillation's
# (synthetic tuning seed 4, AF at 63 and 66/min with "P waves" from fibrillatory waves
# before 4 and 5 of 7 beats: 0.25 and 0.19; LUDB 83, AF with a PVC couplet, 6 of 7
# beats: 0.27), all three read as sinus arrhythmia with PACs.
SINUS_NN_RMSSD = 0.16
# Return cycles after premature atrial or junctional beats that vary by no more than
# this show the sinus node reset by each and firing a cycle later: the same bound as
# one ectopic focus's coupling (model.rhythm_statements.COUPLING_SPREAD).
RETURN_CYCLE_SPREAD = 0.1


def irregular_beyond_sinus_arrhythmia(rhythm: RhythmAnalysis) -> bool:
    """Too few non-premature beats to judge the P wave's share, but the intervals
    between them change beat to beat by more than SINUS_NN_RMSSD and the P wave is
    missing before at least one: a sinus P wave precedes every sinus beat, and no sinus
    arrhythmia changes the cycle so abruptly; fibrillatory waves resemble a median
    "P wave" before some beats by chance."""
    nn = rhythm.nn_irregularity
    return nn is not None and nn > SINUS_NN_RMSSD and rhythm.p_waves < rhythm.dominant_beats


def irregular_beyond_sinus_arrhythmia_words(rhythm: RhythmAnalysis) -> str | None:
    """Why irregular_beyond_sinus_arrhythmia holds, in the words of an AF statement's
    criterion; None where it does not."""
    if rhythm.dominant_beats >= MIN_BEATS_FOR_P_SHARE or not irregular_beyond_sinus_arrhythmia(
        rhythm
    ):
        return None
    return (
        f"a P wave before only {rhythm.p_waves} of {rhythm.dominant_beats} non-premature "
        f"beats, whose intervals change beat to beat by {rhythm.nn_irregularity:.2f} "
        f"(normalised RMSSD; no sinus arrhythmia above {SINUS_NN_RMSSD})"
    )


def sinus_not_judged(m: EcgMeasurement) -> str | None:
    """Why a sinus rhythm is not named on a consistent P wave, in the impression's
    words; None where it may be. Premature beats said to explain an irregular RR, but
    so many that fewer than MIN_NN_INTERVALS intervals between non-premature beats are
    left to show a regular rhythm under them, and the P wave missing before one of
    those few beats: nothing shows the sinus node firing (synthetic tuning seed 6, AF
    at 42/min, 3 of 7 beats read as PACs, a "P wave" with a PR of 292 ms before 3 of
    the other 4, read as sinus bradycardia). Neither sinus nor AF can be named."""
    rhythm = m.rhythm
    if rhythm is None or rhythm.nn_irregularity is not None or not rhythm.p_waves:
        return None
    if rhythm.dominant_beats >= MIN_BEATS_FOR_P_SHARE or rhythm.p_waves >= rhythm.dominant_beats:
        return None
    irregularity = m.beats.irregularity()
    if irregularity is None or irregularity <= IRREGULAR_RMSSD or sinus_reset_regular(m):
        return None
    return (
        f"P wave before only {rhythm.p_waves} of {rhythm.dominant_beats} non-premature "
        f"beats, with {rhythm.nn_intervals} interval(s) between them, too few to show a "
        "regular rhythm under the premature beats"
    )


def sinus_reset_regular(m: EcgMeasurement) -> bool:
    """MIN_NN_INTERVALS or more premature atrial or junctional beats followed by a
    non-premature beat after return cycles that vary by at most RETURN_CYCLE_SPREAD: the
    premature beat resets the sinus node, which fires a cycle later each time, so these
    show the sinus rhythm under the premature beats as intervals between non-premature
    beats would (own sweep, tuning seeds 1 and 3-7, 180 sinus rhythms at 40-75/min with
    10-40 % PACs under 0.02-0.1 mV noise: two atrial bigeminies with a P wave missed by
    the noise before one beat, return cycles spread 0.02). In atrial fibrillation the RR
    after an early beat is as random as any."""
    classes, rr = m.rhythm.classes, m.beats.rr
    returns = [
        float(rr[i])
        for i in range(len(classes) - 1)
        if classes[i] in ("A", "J") and classes[i + 1] == "N"
    ]
    if len(returns) < MIN_NN_INTERVALS:
        return False
    return float(np.std(returns) / np.mean(returns)) <= RETURN_CYCLE_SPREAD
