"""P waves that keep one atrial cycle along the recording are discrete atrial beats,
which fibrillation never shows: an irregular RR under them is AV conduction's (Mobitz I
with premature atrial beats), and no atrial fibrillation is stated
(model.measure.p_timing.regular_atrial_rhythm; docs/measurement.md 3.31). Synthetic
Mobitz I with 10 % PACs, test seeds; each case read AFIB on f3f6b2e."""

from __future__ import annotations

import pytest

import model
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg


@pytest.mark.parametrize(
    ("rate", "ratio", "seed"),
    [
        (103.367, 5, 138254644),
        (68.965, 3, 375690711),
        (107.323, 4, 846957855),
        (108.564, 4, 320740732),
    ],
)
def test_mobitz_one_with_premature_atrial_beats_is_no_atrial_fibrillation(
    rate: float, ratio: int, seed: int
) -> None:
    spec = RhythmSpec(
        rate_bpm=rate,
        av_block="mobitz1",
        av_ratio=ratio,
        pac_fraction=0.1,
        noise_mv=0.01,
        seed=seed,
    )
    report = model.analyze(rhythm_ecg(spec)[0])
    assert "AFIB" not in report.codes, report.impression
    # The block itself is named since 3.34; where it is not, the reason says why not AF.
    named = "2AVB" in report.codes
    assert named or "not conducted: not atrial fibrillation" in report.impression
    assert not named or "Mobitz I (Wenckebach)" in report.impression, report.impression


def test_atrial_fibrillation_keeps_no_atrial_cycle() -> None:
    """The guard does not touch fibrillation: AF at 60-120/min with 0.05-0.15 mV waves
    (test seeds 11-16) is still named."""
    for seed, rate, f_wave in zip(range(11, 17), (60, 75, 90, 105, 120, 80), (0.05, 0.1, 0.15) * 2):
        spec = RhythmSpec(
            rhythm="atrial_fibrillation", rate_bpm=rate, f_wave_mv=f_wave, noise_mv=0.01, seed=seed
        )
        report = model.analyze(rhythm_ecg(spec)[0])
        assert "AFIB" in report.codes, (seed, report.impression)
