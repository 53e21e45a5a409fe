"""Synthetic 12-lead ECGs with exactly known intervals and axes.

Tests use them to check each measurement against the truth, and the demo uses
one when no real recording is at hand. The heart is a single dipole: every wave
is a sequence of half-sine lobes of the heart vector in a fixed direction, each
starting and ending exactly where the spec says, projected onto the standard
leads (Einthoven/Goldberger for the limb leads, a simple torso-free geometry for
V1-V6). So the P, QRS and T onsets and offsets, and the frontal P, QRS and T
axes (the directions of the waves' net areas) are known by construction.

The QRS is a small septal q lobe, the main R lobe and a terminal s lobe; the q
and s lobes point straight front and back, so they leave the frontal QRS axis
exactly that of the R lobe.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
from scipy.signal import resample_poly

from model.ecg import STANDARD_LEADS, Ecg, EcgMetadata, derive_limb_leads

_DRAWING_RATE = 2000.0

# Unit lead vectors (x: to the patient's left, y: downwards, z: to the front).
_PRECORDIAL_DIRECTIONS = {
    "V1": (-0.55, 0.10, 0.83),
    "V2": (-0.20, 0.10, 0.97),
    "V3": (0.25, 0.10, 0.96),
    "V4": (0.60, 0.15, 0.79),
    "V5": (0.85, 0.15, 0.50),
    "V6": (0.97, 0.15, 0.20),
}


@dataclass(frozen=True)
class SyntheticSpec:
    """What the synthetic ECG should measure. Times in ms, axes in degrees, amplitudes in mV."""

    heart_rate_bpm: float = 70.0
    pr_ms: float = 160.0
    p_duration_ms: float = 100.0
    qrs_ms: float = 90.0
    qt_ms: float = 400.0
    p_axis_deg: float = 60.0
    qrs_axis_deg: float = 45.0
    t_axis_deg: float = 40.0
    p_mv: float = 0.15
    r_mv: float = 1.4
    t_mv: float = 0.35
    # A U wave: a lobe from the T wave's end lasting u_ms (none at 0 mV), pointing at
    # u_axis_deg in the frontal plane; one pointing away from the P wave that returns to
    # the line as the P wave starts is a trap for the P onset (model/measure/waves.py).
    u_mv: float = 0.0
    u_ms: float = 200.0
    u_axis_deg: float = 40.0
    rhythm: Literal["sinus", "atrial_fibrillation"] = "sinus"
    # Indexes of beats replaced by premature ventricular complexes.
    pvc_beats: tuple[int, ...] = ()
    noise_mv: float = 0.0
    seed: int = 0
    sex: str | None = None


def direction(frontal_deg: float, z: float = 0.0) -> np.ndarray:
    """A unit 3-D vector with the given frontal-plane angle and front-back component."""
    a = np.radians(frontal_deg)
    v = np.array([np.cos(a), np.sin(a), z])
    return v / np.linalg.norm(v)


def lobe(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """0 outside [start, start + duration], a sine-squared arch inside.

    Like a real wave it leaves and rejoins the baseline smoothly (zero slope at the
    edges), yet its support, and so its onset and offset, is exact.
    """
    inside = (t >= start) & (t <= start + duration)
    return np.where(inside, np.sin(np.pi * (t - start) / duration) ** 2, 0.0)


def _t_wave(t: np.ndarray, start: float, duration: float, peak_at: float) -> np.ndarray:
    """A T-like arch: slow rise to the peak at `peak_at` (fraction of the duration), faster
    fall, both sine-squared, so it rejoins the baseline smoothly at exactly start + duration."""
    rise = duration * peak_at
    fall = duration - rise
    up = np.sin(0.5 * np.pi * (t - start) / rise) ** 2
    down = np.cos(0.5 * np.pi * (t - start - rise) / fall) ** 2
    wave = np.where(t <= start + rise, up, down)
    return np.where((t >= start) & (t <= start + duration), wave, 0.0)


def p_wave_vector(t: np.ndarray, spec: SyntheticSpec, p_on: float, axis_deg: float) -> np.ndarray:
    """(3, n) heart vector of one P wave starting at p_on (ms) with the given frontal axis."""
    return spec.p_mv * np.outer(direction(axis_deg, 0.2), lobe(t, p_on, spec.p_duration_ms))


def ventricular_vector(
    t: np.ndarray, spec: SyntheticSpec, qrs_on: float, qt_ms: float | None = None
) -> np.ndarray:
    """(3, n) heart vector of one conducted QRS-T complex whose QRS starts at qrs_on (ms)."""
    qt = spec.qt_ms if qt_ms is None else qt_ms
    q_d, s_d = 0.2 * spec.qrs_ms, 0.25 * spec.qrs_ms
    r_d = spec.qrs_ms - q_d - s_d
    vector = 0.25 * spec.r_mv * np.outer([0, 0, -1.0], lobe(t, qrs_on, q_d))
    vector += spec.r_mv * np.outer(direction(spec.qrs_axis_deg), lobe(t, qrs_on + q_d, r_d))
    vector += 0.5 * spec.r_mv * np.outer([0, 0, -1.0], lobe(t, qrs_on + q_d + r_d, s_d))
    t_start = qrs_on + spec.qrs_ms + 0.25 * (qt - spec.qrs_ms)
    t_duration = qrs_on + qt - t_start
    vector += spec.t_mv * np.outer(
        direction(spec.t_axis_deg, 0.3), _t_wave(t, t_start, t_duration, 0.62)
    )
    if spec.u_mv:
        vector += spec.u_mv * np.outer(
            direction(spec.u_axis_deg, 0.3), lobe(t, qrs_on + qt, spec.u_ms)
        )
    return vector


def _beat_vector(t: np.ndarray, spec: SyntheticSpec, qrs_on: float, with_p: bool) -> np.ndarray:
    """(3, n) heart vector of one sinus beat whose QRS starts at qrs_on (ms)."""
    vector = ventricular_vector(t, spec, qrs_on)
    if with_p:
        vector += p_wave_vector(t, spec, qrs_on - spec.pr_ms, spec.p_axis_deg)
    return vector


def pvc_vector(t: np.ndarray, spec: SyntheticSpec, qrs_on: float) -> np.ndarray:
    """A wide, differently directed QRS with a discordant T: a ventricular ectopic beat."""
    width = max(150.0, spec.qrs_ms * 1.6)
    vector = (
        1.3 * spec.r_mv * np.outer(direction(spec.qrs_axis_deg + 150, -0.5), lobe(t, qrs_on, width))
    )
    vector += (
        1.2
        * spec.t_mv
        * np.outer(direction(spec.qrs_axis_deg - 30, 0.4), lobe(t, qrs_on + width + 60, 220))
    )
    return vector


def project(vector: np.ndarray) -> dict[str, np.ndarray]:
    """Lead voltages from the heart vector; limb leads obey Einthoven's law exactly."""
    x, y = vector[0], vector[1]
    lead_i = x
    lead_ii = x * np.cos(np.radians(60)) + y * np.sin(np.radians(60))
    leads = derive_limb_leads({"I": lead_i, "II": lead_ii})
    for name, direction in _PRECORDIAL_DIRECTIONS.items():
        leads[name] = np.asarray(direction) @ vector
    return leads


def qrs_onsets_ms(spec: SyntheticSpec, duration_s: float) -> list[float]:
    """QRS onset times: regular for sinus rhythm, irregularly irregular for fibrillation."""
    rr = 60000.0 / spec.heart_rate_bpm
    rng = np.random.default_rng(spec.seed)
    onsets, t = [], 300.0
    while t < duration_s * 1000.0 - 700.0:
        onsets.append(t)
        if spec.rhythm == "atrial_fibrillation":
            t += rr * rng.uniform(0.6, 1.4)
        else:
            t += rr
    return onsets


def synthetic_ecg(
    spec: SyntheticSpec | None = None, sampling_rate: float = 500.0, duration_s: float = 10.0
) -> Ecg:
    """A 12-lead ECG (mV) that measures as `spec` says.

    The waves are drawn at 2 kHz and brought to `sampling_rate` with an anti-alias
    filter, as a cart's converter would: sampling the analytic waves directly at
    250 Hz would alias, which no real recording does.
    """
    spec = spec or SyntheticSpec()
    t = drawing_times(duration_s)
    vector = np.zeros((3, t.size))
    rr = 60000.0 / spec.heart_rate_bpm
    for index, onset in enumerate(qrs_onsets_ms(spec, duration_s)):
        if index in spec.pvc_beats:
            vector += pvc_vector(t, spec, onset - 0.35 * rr)
        else:
            vector += _beat_vector(t, spec, onset, with_p=spec.rhythm == "sinus")
    rng = np.random.default_rng(spec.seed + 1)
    if spec.rhythm == "atrial_fibrillation":
        vector += fibrillatory_waves(t, rng)
    return vector_to_ecg(vector, spec, sampling_rate, rng)


def drawing_times(duration_s: float) -> np.ndarray:
    """The drawing grid (ms) at 2 kHz, on which every wave is drawn before sampling."""
    return np.arange(round(duration_s * _DRAWING_RATE)) * 1000.0 / _DRAWING_RATE


def vector_to_ecg(
    vector: np.ndarray, spec: SyntheticSpec, sampling_rate: float, rng: np.random.Generator
) -> Ecg:
    """Project the heart vector drawn at 2 kHz onto the 12 leads, sample it at
    `sampling_rate` behind an anti-alias filter, and add spec.noise_mv of white noise."""
    leads = project(vector)
    signal = np.stack([leads[name] for name in STANDARD_LEADS])
    ratio = Fraction(sampling_rate / _DRAWING_RATE).limit_denominator(1000)
    signal = resample_poly(signal, ratio.numerator, ratio.denominator, axis=1)
    if spec.noise_mv > 0:
        signal = signal + rng.normal(0.0, spec.noise_mv, signal.shape)
    return Ecg(
        signal=signal.astype(np.float32),
        sampling_rate=sampling_rate,
        lead_names=STANDARD_LEADS,
        metadata=EcgMetadata(source_format="synthetic", patient_sex=spec.sex),
    )


def fibrillatory_waves(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low, fast, ever-changing atrial activity (about 6 Hz, 0.05 mV)."""
    phase = np.cumsum(2 * np.pi * rng.uniform(4.5, 7.5, t.size) * np.gradient(t) / 1000.0)
    wave = 0.05 * np.sin(phase) * (0.6 + 0.4 * np.sin(2 * np.pi * t / 1700.0))
    return np.outer(direction(70, 0.5), wave)
