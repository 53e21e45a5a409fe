"""Sinus tachycardia with frequent PVCs is not atrial flutter (docs/measurement.md 3.18):
the median of all dominant beats smeared the sinus P wave, which was then neither found
nor cancelled, and its second harmonic, left in the residual, was read as flutter
waves by their size alone."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import model
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg

sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))

from synthetic_rhythm_set import bench_morphology


def _sinus_tachycardias_with_pvcs(seed: int) -> list[RhythmSpec]:
    """Four sinus rhythms at 110-150/min with 20-40 % PVCs (and 10 % PACs in some),
    drawn like the bench's synthetic group."""
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(4):
        rate = float(rng.uniform(110, 150))
        specs.append(
            RhythmSpec(
                rate_bpm=rate,
                pvc_fraction=float(rng.uniform(0.2, 0.4)),
                pac_fraction=float(rng.choice([0.0, 0.0, 0.1])),
                noise_mv=float(rng.uniform(0, 0.03)),
                wander_mv=float(rng.uniform(0, 0.3)),
                seed=int(rng.integers(1 << 30)),
                morphology=bench_morphology(rng, rate),
            )
        )
    return specs


@pytest.mark.parametrize("seed", [27, 28])
def test_sinus_tachycardia_with_frequent_pvcs_is_not_flutter(seed: int) -> None:
    for spec in _sinus_tachycardias_with_pvcs(seed):
        codes = model.analyze(rhythm_ecg(spec)[0]).codes
        assert "AFLT" not in codes and "AFIB" not in codes, (spec.rate_bpm, sorted(codes))
        assert "PVC" in codes
