"""A PVC's T wave is not a beat (docs/measurement.md 3.35).

In slow sinus rhythm the compensatory pause after a PVC is longer than 1.6 RR, and the
QRS detector's search-back took the biggest wave in it, the PVC's broad T wave, for a
missed beat: one beat and one PVC too many. Strips from test seeds only.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from model.measure import measure
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import (
    SyntheticSpec,
    drawing_times,
    p_wave_vector,
    pvc_vector,
    vector_to_ecg,
    ventricular_vector,
)

# A QRS axis of 75° puts the PVC's T wave (drawn at the axis - 30°) in most leads.
MORPHOLOGY = SyntheticSpec(qrs_axis_deg=75, t_axis_deg=12)


@pytest.mark.parametrize("seed", [45, 73, 91])
def test_slow_sinus_with_pacs_and_pvcs_counts_each_beat_once(seed: int) -> None:
    # Each read 9 beats with 3 PVCs on 76977e2: a PVC's T wave (292-348 ms after it) as a beat.
    spec = RhythmSpec(
        rate_bpm=46,
        pac_fraction=0.25,
        pvc_fraction=0.2,
        noise_mv=0.01,
        seed=seed,
        morphology=MORPHOLOGY,
    )
    ecg, truth = rhythm_ecg(spec)
    beats = measure(ecg).beats
    assert beats is not None
    assert len(beats.positions) == len(truth.beats) == 8
    assert beats.count("V") == truth.count("V") == 2


def _couplet_strip(seed: int, gap_ms: float) -> tuple[np.ndarray, int]:
    """Sinus at 50/min, every third cycle a ventricular couplet (the first PVC 560 ms
    after the sinus beat, the second `gap_ms` after it): (ECG signal, beats drawn)."""
    rng = np.random.default_rng(seed)
    m = replace(MORPHOLOGY, noise_mv=0.01)
    t = drawing_times(10.0)
    vector = np.zeros((3, t.size))
    at, drawn, beat = 200.0, 0, 0
    while at < 9000.0:
        vector += p_wave_vector(t, m, at - m.pr_ms, m.p_axis_deg)
        vector += ventricular_vector(t, m, at)
        drawn += 1
        if beat % 3 == 1 and at + 560.0 + gap_ms < 9200.0:
            vector += pvc_vector(t, m, at + 560.0) + pvc_vector(t, m, at + 560.0 + gap_ms)
            drawn += 2
        at += 1200.0 * (1 + rng.normal(0, 0.01)) * (2 if beat % 3 == 1 else 1)
        beat += 1
    return vector_to_ecg(vector, m, 500.0, rng), drawn


@pytest.mark.parametrize(("seed", "gap_ms"), [(17, 280.0), (29, 320.0)])
def test_short_coupled_ventricular_couplet_keeps_both_beats(seed: int, gap_ms: float) -> None:
    # Guard: the second PVC of a couplet falls where the first one's T wave would; it is
    # as steep as the first PVC, so the T-wave test leaves it a beat.
    ecg, drawn = _couplet_strip(seed, gap_ms)
    beats = measure(ecg).beats
    assert beats is not None
    assert len(beats.positions) == drawn


@pytest.mark.parametrize("seed", [13, 57])
def test_fast_atrial_fibrillation_keeps_every_beat(seed: int) -> None:
    # Guard: RR intervals down to 300 ms and long pauses; no beat lost to the T-wave test.
    spec = RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=140, f_wave_mv=0.1, seed=seed)
    ecg, truth = rhythm_ecg(spec)
    beats = measure(ecg).beats
    assert beats is not None
    assert len(beats.positions) == len(truth.beats)
