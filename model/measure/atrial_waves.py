"""Which atrial activity the median beat shows: flutter waves (by each test in turn) or
a P wave, and, in an irregular rhythm, a flutter whose cycle drifts or fibrillatory
waves; then what the atria do beat by beat (model.measure.av_conduction). Called by
model.measure.pipeline once the fiducials are found."""

from __future__ import annotations

import numpy as np

from model.beats import IRREGULAR_RMSSD, Beats
from model.measure.atrial import (
    atrial_residual,
    drifting_flutter_hz,
    fibrillatory_waves,
    flutter_in_rr_cycles,
    locked_flutter,
    residual_after_dominant_mv,
)
from model.measure.av_conduction import atrial_activity
from model.measure.conducted_flutter import conducted_flutter
from model.measure.fiducials import drop_p_wave
from model.measure.p_on_t import p_wave_on_t_wave
from model.measure.p_timing import p_timing_wanders
from model.measure.paced_atrial import paced_atrial_evidence
from model.measure.result import FLUTTER_MIN_MV, EcgMeasurement
from model.measure.rhythm import MIN_BEAT_P_CORRELATION
from model.measure.waves import SINUS_P_AXIS, p_wave_correlations

# The median beat's P wave is locked to the QRS where it precedes this share of the
# dominant beats one by one (model.measure.rhythm.MIN_BEAT_P_CORRELATION): synthetic
# tuning seeds 1, 3, 4 and 6, sinus rhythms 0.62 and more (the lowest with the P wave
# on the T wave), Mobitz I and complete blocks whose median beat holds a P wave
# 0.44-0.67, and their P waves are then better found without it (av_conduction).
LOCKED_P_SHARE = 0.7
# In an irregular rhythm with a sinus-axis P wave before most dominant beats, flutter
# waves found by the residual's size alone are the premature beats' P waves where the
# dominant beats that follow a dominant beat hold under this share of the residual
# (docs/measurement.md 3.15): synthetic tuning seed 5, sinus tachycardia at 149/min
# with 20 % PACs, 0.08 (was flutter); LUDB 35 and 103 (typical flutter, rescaled
# leads, with and without 0.3 mV of wander) 0.93-1.19.
PAC_RESIDUAL_SHARE = 0.5


def flutter_or_p_wave(
    result: EcgMeasurement, sig: np.ndarray, leads: np.ndarray, beats: Beats, median: np.ndarray
) -> None:
    """Flutter waves by each test in turn (the residual once the QRS-T complexes are
    cancelled, a wave locked to the beats, one conducted at a fixed ratio); where
    found they replace the P wave, else a P wave hidden on the T wave is looked for."""
    p_axis = result.values.p_axis_deg
    sinus_p = p_axis is not None and SINUS_P_AXIS[0] <= p_axis <= SINUS_P_AXIS[1]
    found = atrial_residual(sig, beats, median, result.fiducials, cancel_p=sinus_p)
    result.flutter_hz, result.atrial_residual_mv, result.flutter_organised = found
    if result.flutter_hz is None:
        result.flutter_hz = flutter_in_rr_cycles(sig, beats, median, result.fiducials, sinus_p)
        result.flutter_organised = result.flutter_by_rr = result.flutter_hz is not None
    if sinus_p and _sinus_p_wave_explains(result, sig, leads, beats, median):
        result.flutter_hz = None
    if not result.has_flutter_waves:
        locked = locked_flutter(sig, beats, result.fiducials)
        if locked[0] is not None:
            result.flutter_hz, result.atrial_residual_mv = locked
    if not result.has_flutter_waves:
        _conducted_flutter(result, sig, beats)
    if result.has_flutter_waves:
        drop_p_wave(
            result,
            f"atrial flutter waves ({result.flutter_hz * 60:.0f}/min) instead of P waves",
        )
    elif result.fiducials.p_on is None:
        result.p_wave_on_t = p_wave_on_t_wave(sig, beats, result.fiducials)


def atrial_evidence(
    result: EcgMeasurement, sig: np.ndarray, leads: np.ndarray, beats: Beats, median: np.ndarray
) -> None:
    """What the atria do beat by beat (AV conduction), and, only where the RR is
    irregular, flutter with a drifting cycle (which withholds atrial fibrillation) and,
    where no P wave was found or the P waves found stand at a wandering PR
    (model.measure.p_timing), the fibrillatory waves: the only rule that evidence serves
    (rhythm_statements.irregular_among_fibrillatory_waves) asks for no conducted P wave."""
    rhythm = result.rhythm
    locked = rhythm.p_waves >= LOCKED_P_SHARE * rhythm.dominant_beats
    result.atrial = atrial_activity(
        sig, leads, beats, median, result.fiducials, locked, noise_retry=not result.pacemaker
    )
    irregularity = beats.irregularity(in_sequence=True)
    if irregularity is not None and irregularity > IRREGULAR_RMSSD:
        fid = result.fiducials
        result.drifting_flutter_hz = drifting_flutter_hz(sig, beats, median, fid)
        if fid.p_on is None or p_timing_wanders(result):
            result.fibrillatory = fibrillatory_waves(sig, leads, beats, median, fid)
    paced_atrial_evidence(result, sig, leads, beats, median)


def _sinus_p_wave_explains(
    result: EcgMeasurement, sig: np.ndarray, leads: np.ndarray, beats: Beats, median: np.ndarray
) -> bool:
    """Whether flutter waves found by the residual's size alone are a sinus P wave's
    harmonics: the rhythm is regular, the median beat's sinus-axis P wave precedes
    at least LOCKED_P_SHARE of the dominant beats one by one
    (model.measure.rhythm.MIN_BEAT_P_CORRELATION), and the residual left in the
    dominant beats after a dominant beat, whose P wave the median beat cancels, stays
    under FLUTTER_MIN_MV (or too little of it is left to judge). Synthetic tuning seed 6,
    sinus rhythm at 127/min with PVCs: its P wave's second harmonic, 0.066 mV at
    254/min, was called flutter; the residual lies in the beats read as premature.
    Flutter waves run on through every beat: flutter whose waves before the QRS pass
    for a P wave (upright in the inferior leads) and whose cycle drifts a little, as
    real flutter's does, kept a residual of flutter size there and was named sinus
    rhythm (docs/measurement.md 3.15). Fixed conduction is judged by the tests that
    look for the wave's repeats (locked_flutter, conducted_flutter)."""
    fid = result.fiducials
    if result.flutter_hz is None or result.flutter_organised or fid.p_on is None:
        return False
    if fid.p_off is None:
        return False
    correlations = p_wave_correlations(sig, leads, beats.dominant, median, fid.p_on, fid.p_off)
    locked = np.count_nonzero(correlations >= MIN_BEAT_P_CORRELATION)
    if not correlations.size or locked < LOCKED_P_SHARE * correlations.size:
        return False
    # Flutter waves run on through the beats whose "P wave" the median beat cancels.
    after_dominant = residual_after_dominant_mv(sig, beats, median, fid)
    irregularity = beats.irregularity()
    if irregularity is not None and irregularity <= IRREGULAR_RMSSD:
        return after_dominant is None or after_dominant < FLUTTER_MIN_MV
    # Irregular: only where those beats are enough to judge, and hold under
    # PAC_RESIDUAL_SHARE of the whole residual (the premature beats' P waves left it).
    return (
        after_dominant is not None
        and after_dominant < PAC_RESIDUAL_SHARE * result.atrial_residual_mv
    )


def flutter_by_size_alone(result: EcgMeasurement) -> bool:
    """Flutter by the residual's size alone (not regular, not by the RRs or a fixed ratio)
    amid premature beats: the median of all dominant beats can smear a sinus P wave,
    which is then neither found nor cancelled, and its harmonics fill the residual
    (sinus tachycardia with 30-36 % PVCs, tuning seeds 3001, 3003; measurement.md 3.18)."""
    return (
        result.has_flutter_waves
        and not result.flutter_organised
        and result.flutter_ratio is None
        and bool(np.isin(result.beats.labels, ("V", "S")).any())
    )


def _conducted_flutter(result: EcgMeasurement, sig: np.ndarray, beats: Beats) -> None:
    """Flutter waves locked at 2:1-4:1 conduction, where no wave was left to find."""
    found = conducted_flutter(sig, beats, result.fiducials)
    if found is not None:
        result.flutter_hz, result.atrial_residual_mv = found.hz, found.rms_mv
        result.flutter_ratio, result.flutter_fused_qrs = found.ratio, found.fused
