"""Slow sinus rhythm, each sinus beat followed by an early PAC and a PVC, the sinus P
wave due after the PAC's reset conducted after the PVC (docs/measurement.md 3.40). The
PACs (coupled at 0.38-0.42 of the cycle) read as dominant beats ('N'): the only
intervals between two of them are the PACs' couplings, whose irregularity (sinus
arrhythmia, beat-to-beat jitter) was read as atrial fibrillation's, with no P wave
measured (the PAC's P wave lies on the sinus beat's T wave, and the "dominant RR" left
no room for one). Where the dominant-shape beats come only in such pairs between beats
of another shape, the atrial activity decides (model.rhythm_statements). Guards:
atrial fibrillation with PVCs in the same pairs, its fibrillatory waves clear, stays
AFIB; runs of three dominant beats leave the rule out.
"""

from __future__ import annotations

import numpy as np
import pytest

import model
from model.beats import Beats
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg


def _beats(labels: str) -> Beats:
    positions = np.arange(len(labels)) * 400 + 100
    return Beats(positions=positions, labels=np.array(list(labels)), dominant_rr=400.0)


@pytest.mark.parametrize(
    ("labels", "pairs"),
    [
        ("NNVNNXNNVNN", True),
        ("NSVNSVNSV", True),
        ("NNVNNNVNN", False),  # a run of three: the rhythm's own intervals
        ("NVNVNVN", False),  # no pair: bigeminy
        ("NNVVNN", False),  # one beat of another shape between pairs is too few
    ],
)
def test_dominant_beats_in_pairs_between_beats_of_another_shape(labels: str, pairs: bool) -> None:
    assert _beats(labels).dominant_in_pairs() is pairs


# Test seeds of the design (rate, seed), each AFIB on main 0044ca7: sinus at 42-50/min,
# noise 0.02 mV, a sinus arrhythmia of 10 % on odd seeds.
@pytest.mark.parametrize(
    ("rate", "seed"),
    [(42.0, 13), (42.0, 23), (45.0, 11), (45.0, 15), (45.0, 21), (50.0, 15), (50.0, 21)],
)
def test_sinus_with_a_pac_and_pvc_and_a_conducted_reset_p_is_no_atrial_fibrillation(
    rate: float, seed: int
) -> None:
    spec = RhythmSpec(
        rate_bpm=rate,
        pattern="pac_pvc",
        reset_p_conducts=True,
        noise_mv=0.02,
        seed=seed,
        sinus_arrhythmia=0.1 if seed % 2 else 0.0,
    )
    ecg, truth = rhythm_ecg(spec)
    assert "".join(truth.beats).startswith("NAVNAVNAV")
    report = model.analyze(ecg)
    assert "AFIB" not in report.codes, report.impression


# Atrial fibrillation with 30 % PVCs on test seeds whose beats come in such pairs
# (labels such as NNVSNVVNVN, NNVNVNVNN): AFIB on main and here.
@pytest.mark.parametrize(("rate", "seed"), [(50.0, 35), (70.0, 11), (70.0, 46)])
def test_atrial_fibrillation_with_pvcs_in_pairs_stays_atrial_fibrillation(
    rate: float, seed: int
) -> None:
    spec = RhythmSpec(
        rhythm="atrial_fibrillation",
        rate_bpm=rate,
        pvc_fraction=0.3,
        f_wave_mv=0.15,
        noise_mv=0.02,
        seed=seed,
    )
    ecg, _ = rhythm_ecg(spec)
    assert "AFIB" in model.analyze(ecg).codes
