"""The P wave's timing beat by beat: a conducted sinus P wave stands before each
non-premature beat at one PR; a "P wave" made up from fibrillatory waves does not
(docs/measurement.md 3.29).

model.measure.av_conduction finds the P waves along the whole recording (the QRS-T
complexes cancelled, the median beat's P wave matched) and gives each beat the PR of
the last one before it. Where the RR is irregular, a PR that wanders from beat to beat
among the non-premature beats, with P waves that keep no regular atrial cycle, shows
the "P wave" to be fibrillatory waves that resemble it at random lags: then the P wave
is not consistent (model.rhythm_statements), the fibrillatory waves are looked for
(model.measure.atrial_waves), and the atrial fibrillation reasoning (or "rhythm
undetermined") decides. A regular atrial cycle with a changing PR is AV block
(Mobitz I lengthens the PR by design), not fibrillation, and is left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from model.beats import IRREGULAR_RMSSD
from model.measure.av_conduction import MAX_ATRIAL_RATE

if TYPE_CHECKING:
    from model.measure.result import EcgMeasurement

# The PR's standard deviation among the non-premature beats whose P wave conducts
# (model.measure.av_conduction.PR_RANGE_MS) above which it wanders. Tuning sets: 454
# records named sinus that are not Mobitz I (synthetic tuning seeds 1 and 3-7, 180
# slow sinus rhythms with 10-40 % PACs, 1AVB, noise up to 0.1 mV; LUDB 1-160; CinC
# 2021's 30) at most 6.1 ms, except LUDB 17 (51 ms, a regular rhythm, not judged here);
# 890 synthetic AF strips with P waves found along the recording (own sweep, tuning
# seeds) 10.6 ms and more, 20 ms and more in all but 5, and 54-98 ms in the 5 read as
# sinus. 20 ms: three times the sinus rhythms' largest under noise.
PR_SPREAD_MS = 20.0
# At least this many non-premature beats with a conducted P wave to judge the spread
# (one under the fewest of the tuning sweep's AF strips read as sinus: 5), and at least this
# share of the non-premature beats: fibrillatory waves run on through the whole
# recording, so a template matched along it finds a "P wave" before nearly every beat;
# where P waves are found before only a few, the search missed the others (a sinus
# P wave on the T wave at 138-160/min: PRs found before 6 of 18 beats, spread 29-85 ms
# by a few stray matches, synthetic tuning seeds 1 and 3; these read no rhythm with the
# spread alone). The share as the P wave's own (model.rhythm_few_beats.MIN_P_WAVE_SHARE).
MIN_TIMED_BEATS = 4
MIN_TIMED_SHARE = 0.75


def pr_spread_ms(m: EcgMeasurement, steady_only: bool = False) -> float | None:
    """The PR's standard deviation (ms) among the non-premature beats whose P wave
    conducts; None where those are fewer than MIN_TIMED_BEATS or MIN_TIMED_SHARE of
    the non-premature beats, or without the P waves found. steady_only: only the beats
    after a non-premature beat, where the P wave stands on the previous beat's T wave
    (model.rhythm_statements.p_wave_on_the_t_wave): a premature beat's T wave is not
    the one the median beat cancels, and what is left of it was matched as the next
    beat's P wave (sinus tachycardia at 159/min in junctional bigeminy, synthetic
    tuning seed 7: PR 142-150 after sinus beats, 246-286 after premature ones)."""
    atrial, rhythm = m.atrial, m.rhythm
    if atrial is None or rhythm is None:
        return None
    classes = rhythm.classes
    timed = [
        i
        for i in range(len(classes))
        if classes[i] == "N" and (not steady_only or (i > 0 and classes[i - 1] == "N"))
    ]
    prs = [atrial.pr_ms[i] for i in timed if atrial.conducted[i] and atrial.pr_ms[i] is not None]
    if len(prs) < max(MIN_TIMED_BEATS, MIN_TIMED_SHARE * len(timed)):
        return None
    return float(np.std(prs))


def p_timing_wanders(m: EcgMeasurement, steady_only: bool = False) -> bool:
    """An RR not found regular (irregular, or too few intervals between beats of the
    dominant shape to judge: ventricular premature beats), P waves found along the
    recording that keep no regular atrial cycle, and a PR that varies by more than
    PR_SPREAD_MS among the non-premature beats (pr_spread_ms): a sinus P wave is
    conducted at a fixed PR, and the sinus node's cycle changes gradually; fibrillatory
    waves match the P-wave template at any lag (own AF sweep, tuning seed 7 draw 49: AF
    at 41/min with a PVC, PRs 174-402 ms, read as sinus bradycardia)."""
    if m.beats is None:
        return False
    irregularity = m.beats.irregularity()
    if irregularity is not None and irregularity <= IRREGULAR_RMSSD:
        return False
    if m.atrial is None or m.atrial.atrial_cycle_ms is not None:
        return False
    spread = pr_spread_ms(m, steady_only)
    return spread is not None and spread > PR_SPREAD_MS


def regular_atrial_rhythm(m: EcgMeasurement) -> bool:
    """P waves found along the recording (model.measure.av_conduction) that keep one
    atrial cycle at MAX_ATRIAL_RATE or slower: discrete atrial beats at a sinus rhythm's
    steady rate, which fibrillation never shows. An irregular RR under them is AV
    conduction's (Mobitz I, blocked P waves), not fibrillation's: a guard sweep of 180
    Mobitz I strips (tuning seeds 1, 3-7; docs/measurement.md 3.31) read AFIB in 15, 8
    of them with such a cycle (63-107/min); on 1,200 AF strips of the tuning seeds the
    cycles found were 173-224/min (every second fibrillatory wave)."""
    atrial = m.atrial
    if atrial is None or atrial.atrial_cycle_ms is None:
        return False
    return atrial.atrial_rate_per_min <= MAX_ATRIAL_RATE
