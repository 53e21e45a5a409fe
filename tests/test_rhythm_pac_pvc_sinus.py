"""Slow sinus rhythm, each cycle a sinus beat, a PAC and a PVC, read as atrial
fibrillation (docs/measurement.md 3.37). At 45/min with a sinus arrhythmia and a small
P wave the PAC is taken for a dominant beat; the PVCs leave no two successive pairs of
intervals, so the RR is judged only in its sequence around them (3.37), where the
PAC's short cycle and the PVC's long one alternate as atrial fibrillation's would.
Where the RR is judged only so, the atrial activity must be fibrillatory too (its
strongest frequency at 4-9 Hz, not repeating before the dominant beats).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

import model
from model.measure import measure
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import SyntheticSpec


def _sinus_pac_pvc(seed: int) -> RhythmSpec:
    return RhythmSpec(
        rate_bpm=45.0,
        pattern="pac_pvc",
        sinus_arrhythmia=0.12,
        noise_mv=0.02,
        seed=seed,
        morphology=replace(SyntheticSpec(), p_mv=0.06),
    )


def test_the_generator_draws_a_sinus_beat_a_pac_and_a_pvc_in_turn() -> None:
    _, truth = rhythm_ecg(_sinus_pac_pvc(11))
    assert truth.beats == ("N", "A", "V") * 3
    assert truth.rhythm == "SBRAD"


# Test seeds (11-101) on which the PVCs leave the RR to be judged only in sequence; on
# 5caf9cc 29, 82, 87 and 92 read AFIB.
@pytest.mark.parametrize("seed", [17, 29, 57, 82, 87, 92])
def test_rr_judged_only_in_sequence_is_no_fibrillation_without_fibrillatory_waves(
    seed: int,
) -> None:
    ecg, _ = rhythm_ecg(_sinus_pac_pvc(seed))
    beats = measure(ecg).beats
    assert beats is not None and beats.irregularity() is None
    assert beats.irregularity(in_sequence=True) is not None
    assert "AFIB" not in model.analyze(ecg).codes
