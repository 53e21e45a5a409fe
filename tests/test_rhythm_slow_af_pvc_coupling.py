"""Slow atrial fibrillation with PVCs after pvct's correct beats (docs/measurement.md
3.35, "Merged with main"). With 8-10 beats and 2-4 PVCs, too few intervals between
non-premature beats judge the rhythm; the PVCs' coupling intervals alone, one focus
coupled to the beat before whatever drives the atria, no longer "explain" the
irregular RR. A "P wave" at a wandering PR stands for the fibrillatory waves' repeat.
The strips asserted AFIB (test seeds) read no rhythm on the pvct merge (16c630d).
"""

from __future__ import annotations

import numpy as np
import pytest

import model
from model.beats import FS, Beats
from model.measure.rhythm import (
    RhythmAnalysis,
    between_normal_beats,
    coupling_spread,
    nn_irregularity,
)
from model.rhythm_statements import unexplained_irregularity
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg


def _analysis(rr_ms: list[float], labels: str) -> RhythmAnalysis:
    positions = np.round(np.r_[0.0, np.cumsum(rr_ms)] * FS / 1000.0).astype(int) + 100
    beats = Beats(positions=positions, labels=np.array(list(labels)), dominant_rr=1000.0)
    return RhythmAnalysis(
        classes=tuple(labels),
        p_waves=0,
        dominant_beats=labels.count("N"),
        nn_irregularity=nn_irregularity(beats),
        nn_intervals=int(np.count_nonzero(between_normal_beats(beats))),
        coupling_spread=coupling_spread(beats),
        atrial_timing_spread=coupling_spread(beats, pvc_coupling=False),
        compensatory_pauses=0,
        pattern=None,
    )


def test_pvcs_at_one_coupling_explain_no_slow_af() -> None:
    """Slow AF at 45/min with three PVCs (tuning sweep, seed 3 draw 8's RRs): the PVCs'
    couplings (720-820 ms) spread 0.05, no pause or PAC is judged, and one interval
    joins two non-premature beats: nothing explains the RR."""
    rhythm = _analysis([1740, 720, 1600, 810, 780, 820, 1310], "NNVNSVVN")
    assert rhythm.nn_irregularity is None
    assert rhythm.coupling_spread == pytest.approx(0.054, abs=0.01)
    assert rhythm.atrial_timing_spread is None
    assert unexplained_irregularity(rhythm)[0] is None


def test_pauses_after_pvcs_still_explain() -> None:
    """Sinus rhythm at 60/min with three PVCs, each coupled at 600 ms and followed by
    a 1,400 ms pause: the pauses are judged (spread 0), and they explain the RR."""
    rhythm = _analysis([1000, 600, 1400, 1000, 600, 1400, 600, 1400], "NNVNNVNVN")
    assert rhythm.atrial_timing_spread == pytest.approx(0.0, abs=1e-9)
    assert unexplained_irregularity(rhythm)[0] is False


def _drawn_slow_af(seed: int, draw: int) -> RhythmSpec:
    """Draw `draw` of the check set: AF at 45-60/min, 10-20 % PVCs, f waves 0.1-0.2 mV."""
    rng = np.random.default_rng(seed + 10100)
    for _ in range(draw + 1):
        spec = RhythmSpec(
            rhythm="atrial_fibrillation",
            rate_bpm=float(rng.uniform(45, 60)),
            f_wave_mv=float(rng.uniform(0.1, 0.2)),
            pvc_fraction=float(rng.uniform(0.1, 0.2)),
            noise_mv=0.01,
            seed=int(rng.integers(1 << 30)),
        )
    return spec


@pytest.mark.parametrize(("seed", "draw"), [(12, 7), (20, 5), (28, 0), (36, 0)])
def test_slow_af_with_pvcs_is_named_with_the_correct_beats(seed: int, draw: int) -> None:
    report = model.analyze(rhythm_ecg(_drawn_slow_af(seed, draw))[0])
    assert "AFIB" in report.codes, report.impression
