"""A regular narrow-complex tachycardia without P waves is not called sinus tachycardia
(docs/measurement.md 3.21). At 130-165/min the T peak lies past 60 % of the RR; the T
wave went unfound, the P wave search began at the shortest plausible QT and took the
previous T wave's peak for a P wave, pointing as the T wave does, inside the sinus
range. Synthetic rhythms drawn without P waves, seeds 11-101, each named sinus before."""

from __future__ import annotations

import pytest

import model
from model.measure import measure
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import SyntheticSpec

SINUS_CODES = {"SR", "STACH", "SBRAD", "SARRH"}
# (seed, rate, (PR, QRS, QT at 60/min, QRS axis, T axis)) drawn as the bench draws them.
WITHOUT_P = [
    (35, 139, (152, 108, 418, -20, 37)),
    (99, 145, (160, 95, 419, 43, 27)),
]


def _without_p(seed: int, rate: int, wave: tuple[int, ...]) -> RhythmSpec:
    pr, qrs, qt, qrs_axis, t_axis = wave
    morphology = SyntheticSpec(
        pr_ms=pr, qrs_ms=qrs, qt_ms=qt, qrs_axis_deg=qrs_axis, t_axis_deg=t_axis, p_mv=0.0
    )
    return RhythmSpec(rate_bpm=rate, noise_mv=0.01, wander_mv=0.1, seed=seed, morphology=morphology)


@pytest.mark.parametrize(("seed", "rate", "wave"), WITHOUT_P)
def test_regular_tachycardia_without_p_waves_is_not_sinus(
    seed: int, rate: int, wave: tuple[int, ...]
) -> None:
    ecg, _ = rhythm_ecg(_without_p(seed, rate, wave))
    report = model.analyze(ecg)
    assert not SINUS_CODES & set(report.codes)
    assert report.measurements.p_axis_deg is None
    assert report.impression.startswith("Rhythm undetermined: regular narrow-complex rhythm")
    assert "no P wave measured" in report.impression


@pytest.mark.parametrize(("seed", "rate", "wave"), WITHOUT_P)
def test_t_peak_past_sixty_percent_of_the_rr_is_found(
    seed: int, rate: int, wave: tuple[int, ...]
) -> None:
    """The T wave is found where its rise stops, at 60 % of the RR or later (the edge of
    the first search, where it was given up)."""
    ecg, _ = rhythm_ecg(_without_p(seed, rate, wave))
    result = measure(ecg)
    fid, rr = result.fiducials, result.beats.dominant_rr
    assert fid.t_peak is not None
    assert fid.t_peak - fid.qrs_on >= int(0.6 * rr) - 2
    assert result.values.qt_ms is None
    assert "next" in result.null_reasons["qt_ms"]
