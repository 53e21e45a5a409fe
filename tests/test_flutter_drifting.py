"""Atrial flutter at variable conduction whose cycle drifts, as real flutter's does
(docs/measurement.md 3.20): the irregular RR was named atrial fibrillation; drawn with
model.rhythm_synthetic from test seeds, against the fibrillations whose residual peaks
in the flutter band (LUDB 44 and 101) and synthetic fibrillation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import model
from model.measure import measure
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import SyntheticSpec

SHAPE = ("pr_ms", "qrs_ms", "qt_ms", "p_axis_deg", "qrs_axis_deg", "t_axis_deg", "p_mv")
LUDB = Path("/work/shared/data/ludb/data")

# Drawn as docs/measurement.md 3.20's sweep draws them, with test seeds: (atrial rate,
# f_wave_mv, f_wave_axis_deg, f_cycle_variation, noise_mv, wander_mv, seed), morphology.
# Each was named atrial fibrillation before.
DRIFTING = {
    14: (
        (323.1, 0.140, None, 0.0444, 0.0192, 0.165, 754560583),
        (173, 101, 399, 51, 62, 14, 0.165),
    ),
    42: (
        (317.4, 0.160, 90.0, 0.0379, 0.0028, 0.293, 921912496),
        (173, 104, 385, 45, 21, 66, 0.164),
    ),
    73: (
        (289.3, 0.126, None, 0.0494, 0.0066, 0.0096, 288372459),
        (180, 85, 414, 60, -11, 16, 0.145),
    ),
    101: (
        (334.4, 0.140, None, 0.0337, 0.0088, 0.277, 842678394),
        (181, 91, 419, 32, 69, 51, 0.147),
    ),
}


def _drifting_flutter(seed: int) -> RhythmSpec:
    (rate, size, axis, variation, noise, wander, draw), shape = DRIFTING[seed]
    return RhythmSpec(
        rhythm="atrial_flutter",
        rate_bpm=rate,
        flutter_conduction=0,
        f_wave_mv=size,
        f_wave_axis_deg=axis,
        f_cycle_variation=variation,
        noise_mv=noise,
        wander_mv=wander,
        seed=draw,
        morphology=SyntheticSpec(**dict(zip(SHAPE, shape))),
    )


@pytest.mark.parametrize("seed", sorted(DRIFTING))
def test_drifting_flutter_at_variable_conduction_is_flutter_not_fibrillation(seed: int) -> None:
    """Every RR a whole number of flutter cycles, the cycle each holds drifting slowly,
    and the leads where flutter shows peaking at that rate: flutter with variable
    conduction, stated with its atrial rate, and no atrial fibrillation."""
    spec = _drifting_flutter(seed)
    ecg, truth = rhythm_ecg(spec)
    assert truth.rhythm == "AFLT"
    report = model.analyze(ecg)
    assert "AFLT" in report.codes and "AFIB" not in report.codes
    aflt = next(s for s in report.statements if s.code == "AFLT")
    assert aflt.text == "Atrial flutter with variable conduction"
    # The rate read from the RRs lies within the drift of the drawn atrial rate.
    rate = measure(ecg).drifting_flutter_hz * 60
    assert abs(rate - spec.rate_bpm) <= spec.f_cycle_variation * spec.rate_bpm + 6


@pytest.mark.parametrize("record", [44, 101])
def test_fibrillation_peaking_in_the_flutter_band_stays_fibrillation(record: int) -> None:
    """LUDB 44 and 101 (atrial fibrillation): the residual's four leads share a peak at
    264-329/min, but the cycle each RR would hold jumps from one RR to the next."""
    ecg = model.load(LUDB / str(record))
    assert measure(ecg).drifting_flutter_hz is None
    assert "AFIB" in model.analyze(ecg).codes


def test_synthetic_fibrillation_stays_fibrillation() -> None:
    """Fibrillation drawn as the bench draws it (test seeds 11-40), fibrillatory waves of
    0.02-0.2 mV at 350-480/min: none is taken for drifting flutter."""
    for seed in range(11, 41):
        rng = np.random.default_rng(seed)
        rate = float(rng.uniform(50, 150))
        spec = RhythmSpec(
            rhythm="atrial_fibrillation",
            rate_bpm=rate,
            f_wave_mv=float(rng.uniform(0.02, 0.2)),
            noise_mv=float(rng.uniform(0, 0.03)),
            seed=int(rng.integers(1 << 30)),
        )
        ecg, _ = rhythm_ecg(spec)
        assert measure(ecg).drifting_flutter_hz is None, seed
