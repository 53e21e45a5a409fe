"""Atrial fibrillation whose RR is only mildly irregular, named from its fibrillatory
waves (model.measure.atrial.FibrillatoryWaves), and a sinus P wave's harmonics not
taken for flutter waves (model.measure.pipeline). Synthetic rhythms with seeds 11-101;
each AF case was named no rhythm before (its premature-looking beats explained the
irregularity)."""

from __future__ import annotations

import pytest

import model
from model.measure import measure
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg


def _af(rate: float, f_wave_mv: float, seed: int) -> RhythmSpec:
    return RhythmSpec(
        rhythm="atrial_fibrillation", rate_bpm=rate, f_wave_mv=f_wave_mv, seed=seed, noise_mv=0.01
    )


MILD_AF = [
    _af(56.76077581923261, 0.16554298446585364, 261),
    _af(90.23574830528665, 0.11191589568707233, 504),
    _af(51.54616936086928, 0.12133746193077047, 705),
    _af(101.81165202723923, 0.18045538446455514, 781),
]


@pytest.mark.parametrize("spec", MILD_AF)
def test_mildly_irregular_atrial_fibrillation_is_named_from_its_fibrillatory_waves(
    spec: RhythmSpec,
) -> None:
    ecg, _ = rhythm_ecg(spec)
    measured = measure(ecg)
    assert measured.fibrillatory is not None and measured.fibrillatory.clear
    report = model.analyze(ecg)
    assert report.codes[0] == "AFIB"
    statement = next(s for s in report.statements if s.code == "AFIB")
    assert "fibrillatory waves" in statement.evidence.criterion
    assert statement.evidence.values["fibrillatory_wave_share"] >= 0.45


@pytest.mark.parametrize("rate", [140, 155])
@pytest.mark.parametrize("seed", [13, 57])
def test_fast_sinus_rhythm_with_premature_atrial_beats_shows_no_fibrillatory_waves(
    rate: int, seed: int
) -> None:
    """40 % premature atrial beats at 140-155/min: the P wave sits on the T wave and is
    often not delimited, the RR is irregular; the P wave's harmonics lie in 4-9 Hz but
    repeat before every beat, so no fibrillatory waves are seen and no AF is named."""
    ecg, _ = rhythm_ecg(RhythmSpec(rate_bpm=rate, pac_fraction=0.4, noise_mv=0.02, seed=seed))
    measured = measure(ecg)
    assert measured.fibrillatory is not None
    assert not measured.fibrillatory.clear
    assert "AFIB" not in model.analyze(ecg).codes
