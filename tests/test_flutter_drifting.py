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


DRAWN = ("rate_bpm", "f_wave_mv", "f_wave_axis_deg", "f_cycle_variation", "noise_mv")


def _drifting_flutter(seed: int) -> RhythmSpec:
    drawn, shape = DRIFTING[seed]
    kind = {"rhythm": "atrial_flutter", "flutter_conduction": 0}
    wander, draw = drawn[-2:]
    morphology = SyntheticSpec(**dict(zip(SHAPE, shape)))
    return RhythmSpec(
        **kind, **dict(zip(DRAWN, drawn)), wander_mv=wander, seed=draw, morphology=morphology
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
        drawn = [rng.uniform(50, 150), rng.uniform(0.02, 0.2), rng.uniform(0, 0.03)]
        rate, size, noise = (float(x) for x in drawn)
        draw = int(rng.integers(1 << 30))
        kind = {"rhythm": "atrial_fibrillation", "rate_bpm": rate}
        spec = RhythmSpec(**kind, f_wave_mv=size, noise_mv=noise, seed=draw)
        ecg, _ = rhythm_ecg(spec)
        assert measure(ecg).drifting_flutter_hz is None, seed


def test_one_premature_atrial_beat_at_two_cycles_of_a_harmonic_is_no_flutter() -> None:
    """Sinus tachycardia at 107/min with one premature atrial beat (test seed 30): its
    coupling is two cycles of the P wave's third harmonic where the sinus RRs are
    three, and the RRs read as flutter at variable conduction; a single RR shorter
    than the commonest number is one premature beat, not a conducted flutter wave."""
    # The draw's own values, to the last digit: rounded, it draws other PAC timing.
    drawn = (107.33668447548804, 0.05, 0.002301343544835479, 0.1305209051083835, 214751008)
    shape = SyntheticSpec(**dict(zip(SHAPE, (158, 86, 410, 39, 3, 45, 0.18388305650623116))))
    names = ("rate_bpm", "pac_fraction", "noise_mv", "wander_mv", "seed")
    spec = RhythmSpec(**dict(zip(names, drawn)), morphology=shape)
    ecg, truth = rhythm_ecg(spec)
    assert truth.rhythm == "STACH" and truth.count("A") == 1
    codes = model.analyze(ecg).codes
    assert "STACH" in codes and not {"AFLT", "AFIB"} & set(codes)
