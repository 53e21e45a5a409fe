"""Synthetic paced 12-lead rhythms with ground truth, beside model.rhythm_synthetic.

    paced_ecg(PacedSpec(...)) -> (Ecg, RhythmTruth)

What it draws (seeded like the other rhythms):
- VVI: ventricular stimuli at a fixed lower rate (60-80/min), each followed by the
  same wide QRS; sinus P waves march through at their own rate (complete AV block);
- AAI: atrial stimuli at the lower rate, each followed by a P wave conducted to a
  narrow QRS;
- DDD: a ventricular stimulus a fixed AV delay after each atrial event: the sinus P
  wave where the sinus rate is above the lower rate (tracking), else an atrial
  stimulus and its P wave (AV sequential pacing);
- VVI in atrial fibrillation: irregular conducted beats among fibrillatory waves, a
  paced beat wherever the next conducted beat would come later than the lower rate;
- VVI in sinus rhythm near the lower rate: conducted sinus beats and paced beats
  mixed as the sinus rate swings (irregular, yet no fibrillation).

The stimuli are drawn as the carts record them, after sampling at 500 Hz: a spike one
sample wide, or low-passed (a cart's 150 Hz filter) to 2-5 samples, of 0.2-5 mV, in
all leads or only some, and the whole ECG then resampled to 100 or 250 Hz where asked
(with an anti-alias filter, as PTB-XL's 100 Hz records were made), which smears the
spike further.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Literal

import numpy as np
from scipy.signal import resample_poly
from scipy.signal.windows import hann

from model.ecg import STANDARD_LEADS, Ecg
from model.rhythm_synthetic import (
    FIRST_P_MS,
    DrawingSpec,
    HeartVectorDrawing,
    RhythmTruth,
    baseline_wander,
    fibrillation_vector,
    rate_qt_ms,
    sinus_rate_code,
)
from model.synthetic import (
    drawing_times,
    project,
    pvc_vector,
    vector_to_ecg,
    ventricular_vector,
)

PacingMode = Literal["VVI", "AAI", "DDD", "VVI_AF", "VVI_SINUS"]
DRAWN_RATE = 500.0
# From a ventricular stimulus to the paced QRS's onset (the latency of capture).
CAPTURE_LATENCY_MS = 6.0
# From an atrial stimulus to its P wave's onset.
ATRIAL_LATENCY_MS = 20.0


@dataclass(frozen=True)
class PacedSpec(DrawingSpec):
    """A paced rhythm to draw. lower_rate_bpm: the pacemaker's lower rate;
    sinus_rate_bpm: the sinus node's rate (tracked in DDD, dissociated in VVI);
    af_rate_bpm: VVI_AF's mean conducted rate. spike_width: samples at 500 Hz (1: a
    one-sample spike; 2-5: low-passed); spike_leads: how many leads show it (12: all)."""

    mode: PacingMode = "VVI"
    lower_rate_bpm: float = 70.0
    sinus_rate_bpm: float = 75.0
    av_delay_ms: float = 160.0
    af_rate_bpm: float = 65.0
    f_wave_mv: float = 0.08
    spike_mv: float = 2.0
    spike_width: int = 1
    spike_leads: int = 12
    sampling_rate: float = 500.0


@dataclass
class _Paced(HeartVectorDrawing):
    """The heart vector, the stimuli and the beats drawn so far."""

    spec: PacedSpec
    t: np.ndarray = field(init=False)
    vector: np.ndarray = field(init=False)
    stimuli_ms: list[float] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.t = drawing_times(self.spec.duration_s)
        self.vector = np.zeros((3, self.t.size))

    def paced_qrs(self, stimulus: float) -> None:
        """A ventricular stimulus and the wide QRS it captures (the same every time)."""
        self.stimuli_ms.append(stimulus)
        at = stimulus + CAPTURE_LATENCY_MS
        self.vector += pvc_vector(self.t, self.spec.morphology, at)
        self.onsets.append(at)
        self.kinds.append("P")

    def conducted_qrs(self, at: float, rr_ms: float) -> None:
        m = self.spec.morphology
        self.vector += ventricular_vector(self.t, m, at, rate_qt_ms(rr_ms, m.qt_ms))
        self.onsets.append(at)
        self.kinds.append("N")


def draw_vvi(d: _Paced, rng: np.random.Generator) -> None:
    """Stimuli at the lower rate; sinus P waves dissociated from them."""
    spec = d.spec
    interval = 60000.0 / spec.lower_rate_bpm
    at = FIRST_P_MS + rng.uniform(0, interval / 2)
    while at <= d.end_ms:
        d.paced_qrs(at)
        at += interval
    p_at = FIRST_P_MS + rng.uniform(0, 400)
    while p_at < spec.duration_s * 1000.0 - 150.0:
        d.p_wave(p_at)
        p_at += 60000.0 / spec.sinus_rate_bpm * (1 + rng.normal(0, 0.01))


def draw_aai(d: _Paced, rng: np.random.Generator) -> None:
    """Atrial stimuli at the lower rate, each P wave conducted to a narrow QRS."""
    spec, m = d.spec, d.spec.morphology
    interval = 60000.0 / spec.lower_rate_bpm
    at = FIRST_P_MS + rng.uniform(0, interval / 2)
    while at + ATRIAL_LATENCY_MS + m.pr_ms <= d.end_ms:
        d.stimuli_ms.append(at)
        d.p_wave(at + ATRIAL_LATENCY_MS)
        d.conducted_qrs(at + ATRIAL_LATENCY_MS + m.pr_ms, interval)
        at += interval


def draw_ddd(d: _Paced, rng: np.random.Generator) -> None:
    """A ventricular stimulus av_delay after each atrial event: the sinus P wave while
    the sinus rate is above the lower rate, else an atrial stimulus and its P wave."""
    spec = d.spec
    tracking = spec.sinus_rate_bpm > spec.lower_rate_bpm
    interval = 60000.0 / (spec.sinus_rate_bpm if tracking else spec.lower_rate_bpm)
    atrial = FIRST_P_MS + rng.uniform(0, interval / 2)
    while atrial + spec.av_delay_ms <= d.end_ms:
        if tracking:
            d.p_wave(atrial)
        else:
            d.stimuli_ms.append(atrial)
            d.p_wave(atrial + ATRIAL_LATENCY_MS)
        d.paced_qrs(atrial + spec.av_delay_ms)
        atrial += interval * ((1 + rng.normal(0, 0.01)) if tracking else 1.0)


def draw_vvi_af(d: _Paced, rng: np.random.Generator) -> None:
    """Atrial fibrillation conducted irregularly; the pacemaker fills every pause
    longer than its lower rate's interval with a paced beat."""
    spec = d.spec
    mean_rr = 60000.0 / spec.af_rate_bpm
    spread = rng.uniform(0.15, 0.3)
    escape = 60000.0 / spec.lower_rate_bpm
    at = FIRST_P_MS + 100.0
    d.conducted_qrs(at, mean_rr)
    while True:
        rr = max(300.0, mean_rr * rng.lognormal(0.0, spread))
        if rr >= escape:
            if d.onsets[-1] + escape - CAPTURE_LATENCY_MS > d.end_ms:
                break
            d.paced_qrs(d.onsets[-1] + escape - CAPTURE_LATENCY_MS)
            continue
        if d.onsets[-1] + rr > d.end_ms:
            break
        d.conducted_qrs(d.onsets[-1] + rr, rr)
    d.vector += fibrillation_vector(d.t, rng, spec.f_wave_mv)


def draw_vvi_sinus(d: _Paced, rng: np.random.Generator) -> None:
    """A sinus rhythm at or just above the lower rate (sinus_rate_bpm is not used),
    slowing and speeding by 5-10 %: each P
    wave conducted unless the pacemaker, at its lower rate since the last beat, fired
    first (the P wave then falls into the paced beat's refractory period)."""
    spec, m = d.spec, d.spec.morphology
    escape = 60000.0 / spec.lower_rate_bpm
    cycle = escape * rng.uniform(0.95, 1.0)
    swing, phase = rng.uniform(0.05, 0.1), rng.uniform(0, 2 * np.pi)
    p_at = FIRST_P_MS + rng.uniform(0, cycle / 2)
    while p_at + m.pr_ms <= d.end_ms:
        d.p_wave(p_at)
        due = p_at + m.pr_ms
        if d.onsets and due - d.onsets[-1] > escape:
            d.paced_qrs(d.onsets[-1] + escape - CAPTURE_LATENCY_MS)
        elif not d.onsets or due - d.onsets[-1] > 300.0:
            d.conducted_qrs(due, cycle)
        p_at += cycle * (1 + swing * np.sin(2 * np.pi * p_at / 4000.0 + phase))


DRAWERS = {
    "VVI": draw_vvi,
    "AAI": draw_aai,
    "DDD": draw_ddd,
    "VVI_AF": draw_vvi_af,
    "VVI_SINUS": draw_vvi_sinus,
}


def spike_shape(width: int) -> np.ndarray:
    """A stimulus as a cart samples it at 500 Hz, peak 1: one sample, or a pulse
    `width` samples wide (a Hann window: the shape a low-pass leaves of a spike)."""
    return np.ones(1) if width <= 1 else hann(width + 2)[1:-1] / hann(width + 2)[1:-1].max()


def stimulus_leads(spec: PacedSpec, rng: np.random.Generator) -> np.ndarray:
    """Per lead, the stimulus's size: a random dipole projected on the 12 leads, the
    largest spike_mv, zero outside spike_leads randomly chosen leads."""
    dipole = rng.normal(size=3)
    gains = np.array([project(dipole[:, None])[name][0] for name in STANDARD_LEADS])
    gains = spec.spike_mv * gains / np.abs(gains).max()
    if spec.spike_leads < len(STANDARD_LEADS):
        shown = np.zeros(len(STANDARD_LEADS), dtype=bool)
        shown[rng.choice(len(STANDARD_LEADS), spec.spike_leads, replace=False)] = True
        gains[~shown] = 0.0
        strongest = np.argmax(np.abs(gains))
        gains[strongest] = np.sign(gains[strongest] or 1.0) * spec.spike_mv
    return gains


def add_stimuli(signal: np.ndarray, spec: PacedSpec, stimuli_ms: list[float], gains: np.ndarray):
    """The stimuli added to the 500 Hz leads (mV)."""
    shape = spike_shape(spec.spike_width)
    out = signal.astype(float)
    for at in stimuli_ms:
        start = round(at * DRAWN_RATE / 1000.0) - shape.size // 2
        stop = min(start + shape.size, out.shape[1])
        out[:, start:stop] += gains[:, None] * shape[None, : stop - start]
    return out


def atrial_rhythm_drawn(spec: PacedSpec) -> frozenset[str]:
    """The code of what the drawn atria do beside PACE, as PTB-XL codes it: AFIB where
    they fibrillate (VVI_AF, whatever the number of beats conducted: the fibrillatory
    waves run between the paced beats, docs/measurement.md 3.30); the sinus rate's code
    where the sinus node drives them (VVI's dissociated P waves, VVI over a sinus rhythm
    at about the lower rate, DDD tracking above its lower rate); none where the
    pacemaker drives them (AAI, DDD at its lower rate)."""
    if spec.mode == "VVI_AF":
        return frozenset({"AFIB"})
    if spec.mode == "VVI_SINUS":
        return frozenset({sinus_rate_code(spec.lower_rate_bpm)})
    if spec.mode == "VVI" or (spec.mode == "DDD" and spec.sinus_rate_bpm > spec.lower_rate_bpm):
        return frozenset({sinus_rate_code(spec.sinus_rate_bpm)})
    return frozenset()


def paced_ecg(spec: PacedSpec) -> tuple[Ecg, RhythmTruth]:
    """Draw the paced rhythm at 500 Hz with its stimuli, resample where asked; return
    the ECG (mV) and its truth: PACE, with what the atria do (atrial_rhythm_drawn)."""
    rng = np.random.default_rng(spec.seed)
    d = _Paced(spec)
    DRAWERS[spec.mode](d, rng)
    ecg = vector_to_ecg(d.vector, spec.morphology, DRAWN_RATE, rng)
    signal = add_stimuli(ecg.signal, spec, d.stimuli_ms, stimulus_leads(spec, rng))
    if spec.noise_mv > 0:
        signal += rng.normal(0.0, spec.noise_mv, signal.shape)
    if spec.sampling_rate != DRAWN_RATE:
        ratio = Fraction(spec.sampling_rate / DRAWN_RATE).limit_denominator(1000)
        signal = resample_poly(signal, ratio.numerator, ratio.denominator, axis=1)
    ecg = replace(ecg, signal=signal.astype(np.float32), sampling_rate=spec.sampling_rate)
    if spec.wander_mv > 0:
        ecg = replace(ecg, signal=ecg.signal + baseline_wander(ecg, spec.wander_mv, rng))
    order = np.argsort(d.onsets)
    kinds = tuple(d.kinds[i] for i in order)
    return ecg, RhythmTruth(
        rhythm="PACE",
        findings=atrial_rhythm_drawn(spec),
        qrs_onsets_ms=tuple(float(d.onsets[i]) for i in order),
        beats=kinds,
    )
