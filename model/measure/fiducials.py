"""The global fiducials of the median beats, and the intervals measured between them.

QRS (model.measure.qrs), then the T wave and the P wave before the QRS
(model.measure.waves); a measurement that cannot be trusted is nulled with its reason.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from model.beats import IRREGULAR_RMSSD, Beats, samples
from model.measure.leads import ms
from model.measure.qrs import locate_qrs, spatial_velocity, too_noisy_for_wideband
from model.measure.result import EcgMeasurement, Fiducials
from model.measure.rhythm import nn_irregularity
from model.measure.waves import (
    MIN_P_CONSISTENCY,
    P_ONSET_STALLS,
    PWave,
    TWave,
    locate_p,
    locate_t,
    p_wave_consistency,
    p_wave_correlations,
)

# Where no P wave is found before the QRS of a regular rhythm, it may sit on the T wave's
# descent and the T end found be that P wave's end, which precedes the next QRS by a PR
# segment (50-120 ms, up to about 220 with a first-degree AV block): a T end found closer
# than this to the next QRS gives no QT. In an irregular rhythm atrial activity is not
# locked to the QRS and averages out of the median beat.
T_END_ROOM_WITHOUT_P_MS = 250
T_END_MAY_BE_P_END = (
    f"no P wave found, and the T wave's end found lies within {T_END_ROOM_WITHOUT_P_MS} ms "
    "of the next QRS: it may be the end of a P wave on the T wave's descent"
)
P_ON_T_DESCENT = "a P wave on the T wave's descent cannot be separated from it"
P_ONSET_HIDDEN = "P onset not separable from the end of the preceding T wave"
P_ON_HIDDEN_T = "a P wave on the preceding T wave, whose end the next beat hides, is not separable"
# A paced QRS starts CAPTURE_LATENCY_MS after its ventricular stimulus's peak: LUDB's
# annotated onsets lie a median 4.75 samples (9.5 ms) after it over its 10 paced
# records (per record -5 to +7 samples); synthetic paced ECGs draw 6 ms
# (model.rhythm_paced). An onset found up to STIMULUS_REACH_MS before the stimulus is
# the stimulus's (its blanked line, or the first of two biventricular stimuli: LUDB
# 93, 38 ms before the second); one found earlier is the QRS's own (a fused beat).
CAPTURE_LATENCY_MS, STIMULUS_REACH_MS = 8, 50
# Values outside these ranges (ms) are measurement failures, not findings.
PLAUSIBLE_MS = {
    "pr_ms": (50, 450),
    "p_duration_ms": (30, 250),
    "qrs_ms": (40, 250),
    "qt_ms": (200, 700),
}
P_WAVE_INTERVALS = {"pr_ms": "PR", "p_duration_ms": "P duration"}
# Everything measured on the P wave, and everything that rests on the T wave's end.
P_WAVE_KEYS = (*P_WAVE_INTERVALS, "p_axis_deg")
QT_KEYS = ("qt_ms", "qtc_bazett_ms", "qtc_fridericia_ms", "t_axis_deg")


def fiducials_and_intervals(
    result: EcgMeasurement,
    sig: np.ndarray,
    leads: np.ndarray,
    median: np.ndarray,
    wide: np.ndarray,
    median_noise: float,
    source_fs: float,
    stimulus_at: int | None = None,
) -> None:
    """`stimulus_at`: where a ventricular stimulus lies in the median beat's window
    (model.pacing_stimuli.stimulus_in_window), None where no stimulus drives the QRS."""
    v_core = spatial_velocity(median, leads, smooth=3)
    v_wide = spatial_velocity(wide, leads)
    edge_signals = wide[leads]
    if too_noisy_for_wideband(v_core, v_wide):
        v_wide, edge_signals = v_core, median[leads]
    found_on, qrs_off = locate_qrs(v_core, v_wide, source_fs, edge_signals)
    qrs_on = evoked_qrs_onset(found_on, stimulus_at)
    result.values.qrs_ms = round(ms(qrs_off - qrs_on))
    t = _t_wave_and_qt(result, median, leads, qrs_on, qrs_off)
    t_peak = t.peak if t is not None else None
    t_end_found = t.end if t is not None and not t.end_hidden else None
    t_off = t_end_found
    # The P wave is searched before the onset found, the PR taken to the evoked QRS's:
    # searched up to it, the stimulus's blanked line joined the P wave (LUDB 34).
    p = _p_wave_and_pr(result, sig, leads, median, found_on, t, median_noise, qrs_on)
    if p is None and t_off is not None and _t_end_may_be_a_p_wave_end(result.beats, qrs_on, t_off):
        _drop_qt(result, T_END_MAY_BE_P_END)
        for key in P_WAVE_KEYS:
            result.null_reasons[key] += f"; {P_ON_T_DESCENT}"
        t_off = None
    p_on, p_off = (p.onset, p.offset) if p is not None else (None, None)
    p_on_clear = p is None or p.onset_clear
    result.fiducials = Fiducials(
        qrs_on, qrs_off, t_peak, t_off, p_on, p_off, p_on_clear, t_end_found
    )


def evoked_qrs_onset(qrs_on: int, stimulus_at: int | None) -> int:
    """A paced QRS starts after its stimulus: an onset found up to STIMULUS_REACH_MS
    before the stimulus, or within CAPTURE_LATENCY_MS after it, is moved to the end of
    that latency. Found there, it lay on the line that blanks the stimulus (from 4 ms
    before it: LUDB 34, 74, 104, 111, 4-8 ms early) or on a first, smaller stimulus (biventricular pacing, LUDB 93), which
    LUDB's annotators leave out of the QRS (docs/measurement.md 3.16)."""
    if stimulus_at is None:
        return qrs_on
    evoked = stimulus_at + samples(CAPTURE_LATENCY_MS)
    if evoked - samples(STIMULUS_REACH_MS + CAPTURE_LATENCY_MS) <= qrs_on < evoked:
        return evoked
    return qrs_on


def _t_wave_and_qt(
    result: EcgMeasurement, median: np.ndarray, leads: np.ndarray, qrs_on: int, qrs_off: int
) -> TWave | None:
    """Locate the T wave and set QT and QTc, or null them with the reason."""
    values = result.values
    t, reason = locate_t(median, leads, qrs_on, qrs_off, result.beats.dominant_rr)
    if t is None or t.end_hidden:
        result.set_null(QT_KEYS, reason)
        return t
    values.qt_ms = round(ms(t.end - qrs_on))
    rr_s = values.rr_ms / 1000.0
    values.qtc_bazett_ms = round(values.qt_ms / np.sqrt(rr_s))
    values.qtc_fridericia_ms = round(values.qt_ms / np.cbrt(rr_s))
    return t


def _plausible_p_duration(p: PWave) -> bool:
    return ms(p.offset - p.onset) <= PLAUSIBLE_MS["p_duration_ms"][1]


def _p_wave_and_pr(
    result: EcgMeasurement,
    sig: np.ndarray,
    leads: np.ndarray,
    median: np.ndarray,
    qrs_on: int,
    t: TWave | None,
    noise: float,
    pr_end: int,
) -> PWave | None:
    """Locate a P wave before `qrs_on` that repeats beat to beat and set P duration and
    the PR to `pr_end` (the QRS onset); returns it, or None with the P measurements
    nulled and why."""
    rr = previous_rr(result.beats)
    # Without a located T wave the previous beat's still lasts the shortest plausible
    # QT: at fast rates a P search reaching further back finds the previous QRS. A T
    # end hidden by the next beat is only the earliest the T wave can end: a P wave
    # there starts on the T wave.
    shortest_qt = samples(PLAUSIBLE_MS["qt_ms"][0])
    previous_t_end = int(t.end - rr) if t is not None else qrs_on - int(rr) + shortest_qt
    t_end_located = t is not None and not t.end_hidden
    p, reason = locate_p(median, leads, qrs_on, previous_t_end, noise, t_end_located)
    if p is None and t is not None and t.end_hidden:
        reason = f"{reason}; {P_ON_HIDDEN_T}"
    if p is not None:
        consistency = p_wave_consistency(
            p_wave_correlations(sig, leads, result.beats.dominant, median, p.onset, p.offset)
        )
        if consistency < MIN_P_CONSISTENCY:
            p = None
            reason = f"no consistent P wave (beat-to-beat P correlation {consistency:.2f})"
        elif p.onset_stalls and p.onset_clear and _plausible_p_duration(p):
            # Past the plausible range the range check below names what is wrong.
            p, reason = None, P_ONSET_STALLS
    if p is None:
        result.set_null(P_WAVE_KEYS, reason)
        return None
    if p.onset_clear:
        result.values.pr_ms = round(ms(pr_end - p.onset))
        result.values.p_duration_ms = round(ms(p.offset - p.onset))
    else:
        result.set_null(tuple(P_WAVE_INTERVALS), P_ONSET_HIDDEN)
    return p


def previous_rr(beats: Beats) -> float:
    """How far back the previous beat's T wave lies (samples): the dominant RR, or in an
    irregular rhythm (intervals between dominant beats varying beyond IRREGULAR_RMSSD)
    the shortest RR before a dominant beat. There the median beat's stretch after the
    T end at the dominant RR still holds the T waves of the beats that came early, and
    their tail passed for a P wave (LUDB 44, atrial fibrillation: 'PR 394 ms', called
    sinus arrhythmia once baseline wander no longer hid it)."""
    irregular = nn_irregularity(beats)
    if irregular is None or irregular <= IRREGULAR_RMSSD:
        return beats.dominant_rr
    before_dominant = beats.rr[beats.labels[1:] == "N"]
    return float(min(beats.dominant_rr, before_dominant.min()))


def _t_end_may_be_a_p_wave_end(beats: Beats, qrs_on: int, t_end: int) -> bool:
    """Whether, in a regular rhythm without a P wave found, the T end lies no further
    from the next QRS than a P wave's end would (T_END_ROOM_WITHOUT_P_MS)."""
    room = qrs_on + beats.dominant_rr - t_end
    irregularity = beats.irregularity()
    regular = irregularity is not None and irregularity <= IRREGULAR_RMSSD
    return regular and room < samples(T_END_ROOM_WITHOUT_P_MS)


def _drop_qt(result: EcgMeasurement, reason: str) -> None:
    """No T wave end to trust: nothing that rests on it is kept."""
    for key in QT_KEYS:
        setattr(result.values, key, None)
        result.null_reasons[key] = reason


def drop_p_wave(result: EcgMeasurement, reason: str) -> None:
    """What looked like a P wave is something else: no P measurement at all."""
    for key in P_WAVE_KEYS:
        setattr(result.values, key, None)
        result.null_reasons[key] = reason
    result.fiducials = replace(result.fiducials, p_on=None, p_off=None)


def reject_implausible(result: EcgMeasurement) -> None:
    """Null what is out of range; an implausible PR or P duration means the P wave's
    extent is wrong, so nothing measured on that P wave is kept, the P axis included;
    likewise a QT out of range takes the QTc and the T axis, which rest on the same T
    wave end."""
    for key, (low, high) in PLAUSIBLE_MS.items():
        value = getattr(result.values, key)
        if value is not None and not low <= value <= high:
            out_of_range = f"{value:.0f} ms is outside {low}-{high}"
            if key in P_WAVE_INTERVALS:
                name = P_WAVE_INTERVALS[key]
                drop_p_wave(result, f"P wave not delimited ({name} {out_of_range})")
                continue
            failed = f"measurement failed ({out_of_range})"
            if key == "qt_ms":
                _drop_qt(result, failed)
            else:
                setattr(result.values, key, None)
                result.null_reasons[key] = failed
