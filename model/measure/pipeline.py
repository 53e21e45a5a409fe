"""measure(ecg): the whole measurement of one resting ECG, by the IEC 60601-2-25 convention.

The standard 12 leads (model.measure.leads) -> which leads can be trusted
(model.signal_quality) -> 500 Hz, 0.5-40 Hz band-pass -> beats, ectopic ones set aside,
pacemaker stimuli blanked (model.beats) -> a median beat per lead from the dominant
beats -> global fiducials and intervals (model.measure.fiducials) -> axes and
amplitudes (model.measure.amplitudes) -> flutter waves or the P wave, and the atria
beat by beat (model.measure.atrial_waves) -> the rhythm beat by beat
(model.measure.rhythm).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.signal import sosfiltfilt

from model.beats import (
    FS,
    Beats,
    beat_windows,
    blank_spikes,
    blanked_after,
    complete_windows,
    detect_qrs,
    find_beats,
    median_beat,
    paced_beats,
    pacing_spikes,
    qrs_prominence,
    qrs_slope,
    samples,
)
from model.ecg import STANDARD_LEADS, Ecg
from model.measure.amplitudes import axes_and_amplitudes
from model.measure.atrial_waves import atrial_evidence, flutter_by_size_alone, flutter_or_p_wave
from model.measure.fiducials import (
    P_WAVE_KEYS,
    fiducials_and_intervals,
    reject_implausible,
)
from model.measure.leads import (
    BANDPASS,
    INDEPENDENT_LEADS,
    LEAD_INDEX,
    MIN_DURATION_S,
    MIN_LEADS,
    MIN_USABLE_INDEPENDENT,
    POST,
    PRE,
    WIDEBAND,
    standard_twelve,
    to_internal_rate,
)
from model.measure.paced import (
    null_onsets_at_stimuli,
    pacemaker_before_other_beats,
    pacemaker_paces,
    weak_pacemaker_stimuli,
)
from model.measure.qrs import MIN_QRS_SNR, MIN_RHYTHM_SNR, qrs_to_noise
from model.measure.result import EcgMeasurement
from model.measure.rhythm import (
    MIN_BEAT_P_CORRELATION,
    STEADY_P_SHARE,
    RhythmAnalysis,
    analyse_rhythm,
    steady_beats,
)
from model.measure.waves import SINUS_P_AXIS, p_wave_correlations
from model.pacing_stimuli import (
    blank_reach,
    stimulated,
    stimuli_taken_for_beats,
    stimulus_in_window,
)
from model.report import Measurements
from model.signal_quality import (
    NOISY_RESIDUAL_MV,
    RESCALED_FLAG,
    beat_residual_noise,
    fast_residual_noise,
    leads_rescaled,
    raw_lead_problem,
)

# Detected beats' steepest slopes stand at least this far above the slope's median
# (model.beats.qrs_prominence): the real records here 10.9 and more; synthetic beats
# under 0.25 mV of white noise 5.6, under 0.33 mV 4.2-4.3 (noise peaks taken for
# beats), under 0.4 mV 1.7; 0.9 mV QRS complexes among 0.2 mV fibrillatory waves
# 6.3, 0.7 mV ones 4.8-5.0 (there fibrillatory waves were taken for beats too).
MIN_QRS_PROMINENCE = 5.5
# Slower than this the beat-to-beat residual is wander to a P wave (80-120 ms long):
# synthetic tuning seeds 1 and 3-7, 0.1-0.3 mV of wander raised the residual 4-8 fold
# and P waves of 0.11-0.19 mV at 75-110/min were lost as 'not distinguishable from
# noise'; with 200 ms it is the drawn noise again (0.006 mV read as 0.009, not 0.044).
P_NOISE_SLOW_MS = 200


def measure(ecg: Ecg) -> EcgMeasurement:
    """Measure one ECG; never raises for poor signals, it nulls with reasons instead.

    Where pacemaker stimuli too small or smoothed for the first search show up locked
    to the beats once the QRS is delimited (model.pacing_stimuli), the ECG is measured
    again with them blanked, on the beats found first (_blanked_or_first): left in,
    they were taken for QRS complexes (AAI pacing) or for the QRS onset."""
    return _measure(ecg, None)


def _measure(
    ecg: Ecg, stimuli: np.ndarray | None, positions: np.ndarray | None = None
) -> EcgMeasurement:
    result = EcgMeasurement()
    raw, present = standard_twelve(ecg)
    if int(present.sum()) < MIN_LEADS:
        result.set_null(
            Measurements.model_fields,
            f"needs at least {MIN_LEADS} leads, got {int(present.sum())} standard leads",
        )
        return result
    if ecg.duration_s < MIN_DURATION_S:
        return _fail(
            result, f"recording of {ecg.duration_s:.2f} s: at least {MIN_DURATION_S:.1f} s needed"
        )
    usable = present.copy()
    for i, name in enumerate(STANDARD_LEADS):
        problem = raw_lead_problem(raw[i]) if present[i] else "missing"
        if problem:
            usable[i] = False
            result.lead_problems[name] = problem
    result.amplitudes_calibrated = not leads_rescaled(raw, usable)
    # An unusable lead is zeroed: NaN would spread through every filter and median.
    raw[~usable] = 0.0
    raw = to_internal_rate(raw, ecg.sampling_rate)
    independent = np.array([LEAD_INDEX[n] for n in INDEPENDENT_LEADS])
    if usable[independent].sum() < MIN_USABLE_INDEPENDENT:
        return _fail(result, "too few usable leads")
    raw, sig, slope, beats = _filtered_beats(
        result, raw, usable, ecg.sampling_rate, stimuli, positions
    )
    if beats is None:
        return _fail(result, "fewer than 3 QRS complexes detected")
    # Three QRS complexes that stand out of the noise give a rate, whatever else the
    # signal allows to be measured.
    prominence = qrs_prominence(slope, beats.positions)
    if prominence < MIN_QRS_PROMINENCE:
        return _fail(
            result,
            f"no QRS complexes distinguishable from noise (prominence {prominence:.1f}, "
            f"needs {MIN_QRS_PROMINENCE})",
        )
    _rate(result, beats)
    _measure_beats(result, raw, sig, beats, usable, independent, ecg.sampling_rate)
    if stimuli is not None and result.fiducials is not None:
        null_onsets_at_stimuli(result, stimuli, ecg.sampling_rate)
    if stimuli is None and result.fiducials is not None and not result.paced_beats:
        found = weak_pacemaker_stimuli(
            result, raw, beats, np.flatnonzero(usable), ecg.sampling_rate
        )
        if found.size:
            return _blanked_or_first(result, ecg, found, raw[np.flatnonzero(usable)])
    return result


def _blanked_or_first(
    first: EcgMeasurement, ecg: Ecg, stimuli: np.ndarray, raw: np.ndarray
) -> EcgMeasurement:
    """Measured again with the stimuli blanked, on the QRS complexes the first pass
    found less those that were stimuli taken for one (model.pacing_stimuli.
    stimuli_taken_for_beats; synthetic AAI at 100 Hz: 20 beats for 10, read as
    bigeminy). Where that measurement fails (at 100 Hz a spike's smear past the
    blanked span differs from beat to beat, as the spike falls between samples, and
    can leave the beats too unlike to measure: synthetic AAI and VVI in sinus rhythm,
    QRS-to-noise 2.9-4.9; or the "stimuli" were the conducted beats' R apexes, 3.19),
    the stimuli before the beats of another shape alone are tried. Where that fails
    too, the first pass's rate and rhythm are kept, its intervals and amplitudes
    nulled, and pacing is not stated (stating it there read PACE on 10 non-paced
    synthetic rhythms at 100 or 250 Hz, tuning seeds 1 and 3, the "stimuli" a part of
    each QRS), nor excluded. Where the first counted stimuli as beats, neither gives a
    true rate, and the ECG is not measured, with why."""
    blanked, taken = _blanked(first, ecg, stimuli, raw)
    beside = pacemaker_before_other_beats(first, raw, ecg.sampling_rate)
    if blanked.fiducials is None and not taken.any() and beside.size:
        retry = _blanked(first, ecg, beside, raw)[0]
        blanked = retry if retry.fiducials is not None else blanked
    if blanked.fiducials is not None:
        return blanked
    left_in = (
        "pacemaker stimuli found; with them blanked the ECG was not measurable "
        f"({blanked.null_reasons.get('qrs_ms', 'QRS not delimited')})"
    )
    if taken.any():
        kept = EcgMeasurement(
            lead_problems=first.lead_problems, amplitudes_calibrated=first.amplitudes_calibrated
        )
        return _fail(kept, f"{left_in}; {int(taken.sum())} stimuli were taken for QRS complexes")
    # The first pass's intervals hold the stimuli's smear (a QRS of 186 ms and a PR of
    # 98 ms read as pre-excitation on a synthetic VVI at 100 Hz): only the rhythm is
    # kept, and the report says pacing is not excluded beside it.
    _rhythm_only(
        first,
        f"{left_in}: no pacing stated; the rhythm alone is judged",
        "pacing not excluded (pulses locked to the QRS complexes, possibly pacemaker "
        "stimuli, could not be set apart from them)",
    )
    return first


def _blanked(
    first: EcgMeasurement, ecg: Ecg, stimuli: np.ndarray, raw: np.ndarray
) -> tuple[EcgMeasurement, np.ndarray]:
    """The ECG measured again with `stimuli` blanked, on the first pass's beats less
    the stimuli taken for beats (returned as a mask over those beats)."""
    positions = first.beats.positions
    before = blank_reach(ecg.sampling_rate)
    after = blanked_after(before)
    left = blank_spikes(raw, stimuli, before, hold=True)
    taken = stimuli_taken_for_beats(stimuli, positions, before, after, left)
    return _measure(ecg, stimuli, positions[~taken]), taken


def _filtered_beats(
    result: EcgMeasurement,
    raw: np.ndarray,
    usable: np.ndarray,
    source_fs: float,
    stimuli: np.ndarray | None,
    positions: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Beats | None]:
    """Band-pass and find beats; with a pacemaker, blank its stimuli first and search again.
    Returns the raw signal (stimuli blanked), the band-passed one, its QRS slope
    (model.beats.qrs_slope, computed once for detection and prominence) and the beats.

    A stimulus left in the signal would be smeared by the filter into a deflection
    that the QRS onset search takes for the start of the QRS. `stimuli`: those the
    beat-locked search found on a first pass, blanked before anything else, and
    `positions` the QRS complexes that pass found, less the stimuli it took for
    beats: detected again on the blanked signal, a paced QRS whose start was blanked
    could be missed (synthetic VVI in sinus rhythm at 100 Hz: 11 beats found, 5
    once blanked), and a large spike's smear past the blanked span taken for beats.
    """
    if stimuli is not None:
        raw = blank_spikes(raw, stimuli, blank_reach(source_fs), hold=True)
        result.stimuli = stimuli
        result.pacemaker = True
        sig = sosfiltfilt(BANDPASS, raw, axis=1)
        slope = qrs_slope(sig, usable)
        beats = find_beats(sig, usable, positions)
        # Each was found at its fixed delay before a beat on the first pass: the beats
        # with one after them are paced (paced_beats()' 40 ms is too tight once they
        # are blanked: a wide paced QRS's detected position then wanders by up to 70
        # ms, synthetic VVI in atrial fibrillation).
        if beats is not None:
            result.paced_mask = stimulated(stimuli, beats.positions)
            result.paced_beats = int(result.paced_mask.sum())
        return raw, sig, slope, beats
    sig = sosfiltfilt(BANDPASS, raw, axis=1)
    slope = qrs_slope(sig, usable)
    beats = find_beats(sig, usable, detect_qrs(slope))
    spikes = pacing_spikes(raw, usable)
    if beats is None or spikes.size == 0:
        return raw, sig, slope, beats
    paced = paced_beats(spikes, beats.positions)
    if not pacemaker_paces(paced, beats.labels):
        return raw, sig, slope, beats
    raw = blank_spikes(raw, spikes)
    result.stimuli = spikes
    result.pacemaker = True
    sig = sosfiltfilt(BANDPASS, raw, axis=1)
    beats = find_beats(sig, usable, beats.positions)
    if beats is not None:
        result.paced_mask = paced_beats(spikes, beats.positions)
        result.paced_beats = int(result.paced_mask.sum())
    return raw, sig, qrs_slope(sig, usable), beats


def _measure_beats(
    result: EcgMeasurement,
    raw: np.ndarray,
    sig: np.ndarray,
    beats: Beats,
    usable: np.ndarray,
    independent: np.ndarray,
    source_fs: float,
) -> EcgMeasurement:
    result.beats = beats
    dominant = beats.dominant
    if dominant.size < 2:
        return _fail(result, "no repeating QRS shape (fewer than 2 dominant beats)")
    windows = complete_windows(beat_windows(sig, dominant, -PRE, POST))
    median = median_beat(windows)
    noise = beat_residual_noise(windows, median)
    _drop_noisy_leads(result, usable, noise)
    leads = independent[usable[independent]]
    if leads.size < MIN_USABLE_INDEPENDENT:
        return _fail(result, "signal too noisy to measure")
    snr = qrs_to_noise(median, noise, leads)
    if snr < MIN_RHYTHM_SNR:
        return _fail(
            result,
            f"signal too noisy to measure (QRS-to-noise ratio {snr:.1f}, needs {MIN_RHYTHM_SNR:.0f})",
        )
    before = (result.values.model_copy(), dict(result.null_reasons))
    _fiducials_and_axes(result, raw, sig, dominant, windows, median, leads, usable, source_fs)
    if result.fiducials is not None:
        flutter_or_p_wave(result, sig, leads, beats, median)
    if result.fiducials is not None and (
        not result.has_flutter_waves or flutter_by_size_alone(result)
    ):
        steady = _p_wave_from_steady_beats(result, before, raw, sig, leads, usable, source_fs)
        if steady is not None and result.has_flutter_waves:
            # Judged again with the steady beats' sinus P wave cancelled (3.18).
            flutter_or_p_wave(result, sig, leads, beats, steady)
            steady = None if result.has_flutter_waves else steady
        median = median if steady is None else steady
    reject_implausible(result)
    result.rhythm = _rhythm(result, sig, leads, median)
    if result.fiducials is not None and not result.has_flutter_waves:
        atrial_evidence(result, sig, leads, beats, median)
    if snr < MIN_QRS_SNR:
        _rhythm_only(
            result,
            f"signal too noisy to measure (QRS-to-noise ratio {snr:.1f}, needs "
            f"{MIN_QRS_SNR:.0f}); the rhythm alone is judged",
            "the signal is too noisy",
        )
    return result


def _fiducials_and_axes(
    result: EcgMeasurement,
    raw: np.ndarray,
    sig: np.ndarray,
    positions: np.ndarray,
    windows: np.ndarray,
    median: np.ndarray,
    leads: np.ndarray,
    usable: np.ndarray,
    source_fs: float,
) -> None:
    """Fiducials, intervals, axes and amplitudes from the median of the beats at
    `positions` (`windows` their band-passed windows, `median` its median)."""
    wide = median_beat(
        complete_windows(beat_windows(sosfiltfilt(WIDEBAND, raw, axis=1), positions, -PRE, POST))
    )
    result.median = wide
    # Baseline wander is no noise to the P wave, measured against a line between its ends.
    p_noise = fast_residual_noise(windows[leads], median[leads], samples(P_NOISE_SLOW_MS))
    median_noise = float(np.sqrt((p_noise**2).sum() / positions.size))
    stimulus_at = None
    if result.stimuli is not None:
        stimulus_at = stimulus_in_window(result.stimuli, positions, PRE)
    fiducials_and_intervals(result, sig, leads, median, wide, median_noise, source_fs, stimulus_at)
    if result.fiducials is not None:
        axes_and_amplitudes(result, wide, usable)


def _p_wave_from_steady_beats(
    result: EcgMeasurement,
    before: tuple[Measurements, dict[str, str]],
    raw: np.ndarray,
    sig: np.ndarray,
    leads: np.ndarray,
    usable: np.ndarray,
    source_fs: float,
) -> np.ndarray | None:
    """Where premature beats are present and the median of all dominant beats shows no
    sinus P wave, the P wave measured on the median of one group of steady beats
    (model.measure.rhythm.steady_beats): a dominant beat after a premature one has a
    ventricular beat's T wave or a long pause where the others have the previous
    dominant beat's T wave, and their median smears the P wave or makes one up. The
    previous T wave is taken one dominant RR back, then one RR before the group's
    beats (after a PVC, its pause). Only the P wave (its fiducials, PR, P duration, P
    axis) is taken, and only where it has a sinus axis; the QRS and T wave stay the
    median of all dominant beats'. Returns that group's median (band-passed), else None."""
    if result.fiducials is None or _sinus_p_wave(result):
        return None
    beats = result.beats
    for steady in steady_beats(beats):
        windows = complete_windows(beat_windows(sig, steady, -PRE, POST))
        median = median_beat(windows)
        preceding = float(np.median(beats.rr[np.searchsorted(beats.positions, steady) - 1]))
        for rr in dict.fromkeys((beats.dominant_rr, preceding)):
            retry = replace(
                result,
                values=before[0].model_copy(),
                null_reasons=dict(before[1]),
                beats=replace(beats, dominant_rr=rr),
            )
            _fiducials_and_axes(retry, raw, sig, steady, windows, median, leads, usable, source_fs)
            if _sinus_p_wave_before(retry, sig, leads, steady, median):
                _take_p_wave(result, retry)
                return median
    return None


def _sinus_p_wave_before(
    retry: EcgMeasurement, sig: np.ndarray, leads: np.ndarray, group: np.ndarray, median: np.ndarray
) -> bool:
    """A sinus P wave found in the group's median that stands before STEADY_P_SHARE of
    the group's beats one by one."""
    fid = retry.fiducials
    if fid is None or not _sinus_p_wave(retry) or fid.p_off is None:
        return False
    correlations = p_wave_correlations(sig, leads, group, median, fid.p_on, fid.p_off)
    return bool(np.mean(correlations >= MIN_BEAT_P_CORRELATION) >= STEADY_P_SHARE)


def _take_p_wave(result: EcgMeasurement, retry: EcgMeasurement) -> None:
    """The P wave's fiducials, measurements and null reasons from `retry`."""
    found = retry.fiducials
    result.fiducials = replace(
        result.fiducials, p_on=found.p_on, p_off=found.p_off, p_on_clear=found.p_on_clear
    )
    result.p_areas = retry.p_areas
    for key in P_WAVE_KEYS:
        setattr(result.values, key, getattr(retry.values, key))
        result.null_reasons.pop(key, None)
        if key in retry.null_reasons:
            result.null_reasons[key] = retry.null_reasons[key]


def _sinus_p_wave(result: EcgMeasurement) -> bool:
    p_axis = result.values.p_axis_deg
    return (
        result.fiducials.p_on is not None
        and p_axis is not None
        and SINUS_P_AXIS[0] <= p_axis <= SINUS_P_AXIS[1]
    )


def _drop_noisy_leads(result: EcgMeasurement, usable: np.ndarray, noise: np.ndarray) -> None:
    """Leads whose beats differ from their median beat by more than NOISY_RESIDUAL_MV
    measure nothing, and the report names them."""
    for i, name in enumerate(STANDARD_LEADS):
        if usable[i] and noise[i] > NOISY_RESIDUAL_MV:
            usable[i] = False
            result.lead_problems[name] = f"too noisy (beat-to-beat residual {noise[i]:.2f} mV)"
    result.quality_flags = _lead_flags(result)


def _rhythm_only(result: EcgMeasurement, reason: str, summary: str) -> None:
    """Not fit for intervals, axes and amplitudes, clear enough for the rhythm: keep
    the rate, the beats and the P wave's presence and axis (the sinus criterion), and
    null everything else with the reason; the summary is the report's few words."""
    kept = ("heart_rate_bpm", "rr_ms", "p_axis_deg")
    for key in Measurements.model_fields:
        if key not in kept:
            setattr(result.values, key, None)
            result.null_reasons[key] = reason
    result.amplitudes = {}
    result.rhythm_only = summary
    result.quality_flags = [*result.quality_flags, reason]


def _rhythm(
    result: EcgMeasurement, sig: np.ndarray, leads: np.ndarray, median: np.ndarray
) -> RhythmAnalysis:
    """The beat-by-beat analysis, with each dominant beat's P wave against the median's."""
    fid, beats = result.fiducials, result.beats
    correlations = None
    if fid is not None and fid.p_on is not None and fid.p_off is not None:
        correlations = p_wave_correlations(sig, leads, beats.dominant, median, fid.p_on, fid.p_off)
    return analyse_rhythm(sig, leads, beats, median, fid, correlations)


def _lead_flags(result: EcgMeasurement) -> list[str]:
    rescaled = [] if result.amplitudes_calibrated else [RESCALED_FLAG]
    return rescaled + [f"{name}: {why}" for name, why in result.lead_problems.items()]


def _fail(result: EcgMeasurement, reason: str) -> EcgMeasurement:
    result.quality_flags = [*_lead_flags(result), reason]
    result.set_null(list(Measurements.model_fields), reason)
    return result


def _rate(result: EcgMeasurement, beats: Beats) -> None:
    rr_ms = float(np.mean(beats.rr)) * 1000.0 / FS
    result.values.rr_ms = round(rr_ms)
    result.values.heart_rate_bpm = round(60000.0 / rr_ms)
