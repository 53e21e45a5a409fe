"""The paced group of the synthetic rhythm rows (bench/measure_rhythm.py): how each
paced rhythm is drawn, and the stimulus shapes its PACE recall is reported by."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from model.rhythm_paced import PacedSpec
from model.synthetic import SyntheticSpec

PACED_GROUP = "paced: VVI, AAI, DDD, VVI in AF or sinus; spikes 1-5 samples, 0.2-5 mV, 3-12 leads"


def paced_spec(rng: np.random.Generator, morphology: SyntheticSpec) -> PacedSpec:
    """A paced rhythm with its stimulus as a cart may record it: one sample or
    low-passed to 2-5 samples, 0.2-5 mV (log-uniform), in all leads or 3-6 of them,
    at 500 Hz or resampled to 250 or 100 Hz."""
    return PacedSpec(
        mode=str(rng.choice(["VVI", "AAI", "DDD", "VVI_AF", "VVI_SINUS"])),
        lower_rate_bpm=float(rng.uniform(60, 80)),
        sinus_rate_bpm=float(rng.uniform(50, 110)),
        av_delay_ms=float(rng.uniform(120, 200)),
        af_rate_bpm=float(rng.uniform(55, 80)),
        f_wave_mv=float(rng.uniform(0.05, 0.2)),
        spike_mv=float(10 ** rng.uniform(np.log10(0.2), np.log10(5))),
        spike_width=int(rng.integers(1, 6)),
        spike_leads=int(rng.choice([12, 12, 6, 3])),
        sampling_rate=float(rng.choice([500.0, 500.0, 250.0, 100.0])),
        noise_mv=float(rng.uniform(0, 0.03)),
        wander_mv=float(rng.uniform(0, 0.3)),
        seed=int(rng.integers(1 << 30)),
        morphology=morphology,
    )


STIMULUS_SHAPES: dict[str, Callable[[PacedSpec], bool]] = {
    "1-sample spikes at 500 Hz": lambda s: s.spike_width == 1 and s.sampling_rate == 500,
    "low-passed spikes (2-5 samples) at 500 Hz": lambda s: (
        s.spike_width > 1 and s.sampling_rate == 500
    ),
    "spikes 0.2-0.5 mV": lambda s: s.spike_mv < 0.5,
    "spikes in 3-6 leads only": lambda s: s.spike_leads < 12,
    "resampled to 250 Hz": lambda s: s.sampling_rate == 250,
    "resampled to 100 Hz": lambda s: s.sampling_rate == 100,
    "all": lambda s: True,
}
