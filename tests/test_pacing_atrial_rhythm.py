"""The atrial rhythm under a pacemaker that drives most beats (docs/measurement.md
3.28): atrial pacing, AV sequential pacing, a sinus rhythm the pacemaker tracks.
Synthetic paced rhythms (model.rhythm_paced), test seeds 11-20; each named-rhythm test
fails on 5d78c14 ("Pacemaker rhythm" alone). The sinus rhythm beside untracked VVI
pacing: tests/test_pacing_vvi_atrial.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import model
from model.rhythm_paced import PacedSpec, paced_ecg
from model.synthetic import SyntheticSpec

# 1 mV one-sample stimuli in all leads, the QRS axis 30 degrees.
PACED = PacedSpec(spike_mv=1.0, noise_mv=0.01, morphology=SyntheticSpec(qrs_axis_deg=30))
SEEDS = range(11, 21)
RATES = [500.0, 250.0]


def analyze(spec: PacedSpec, seed: int, rate: float) -> model.Report:
    return model.analyze(paced_ecg(replace(spec, seed=seed, sampling_rate=rate))[0])


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("seed", SEEDS)
def test_atrial_pacing_named(seed: int, rate: float) -> None:
    """AAI: an atrial stimulus before each narrow conducted QRS."""
    report = analyze(replace(PACED, mode="AAI", lower_rate_bpm=70), seed, rate)
    assert report.codes[:1] == ["PACE"]
    assert report.impression.startswith("Atrial-paced rhythm.")
    pace = report.statements[0]
    assert "atrial stimulus" in pace.evidence.criterion
    assert 120 <= pace.evidence.values["stimulus_to_qrs_ms"] <= 260


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("seed", SEEDS)
def test_av_sequential_pacing_named(seed: int, rate: float) -> None:
    """DDD with the sinus rate (55/min) under the lower rate (70/min): an atrial and a
    ventricular stimulus before each wide paced QRS."""
    spec = replace(PACED, mode="DDD", lower_rate_bpm=70, sinus_rate_bpm=55)
    report = analyze(spec, seed, rate)
    assert report.codes == ["PACE"]
    assert report.impression.startswith("AV sequential pacing.")


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("seed", SEEDS)
def test_tracked_sinus_rhythm_named(seed: int, rate: float) -> None:
    """DDD with the sinus rate (80/min) above the lower rate (60/min): each sinus P
    wave followed by a ventricular stimulus at the AV delay (160 ms)."""
    spec = replace(PACED, mode="DDD", lower_rate_bpm=60, sinus_rate_bpm=80)
    report = analyze(spec, seed, rate)
    assert report.codes == ["SR", "PACE"]
    assert report.impression.startswith("Sinus rhythm with atrial-sensed ventricular pacing.")
    sinus, pace = report.statements[:2]
    assert "P wave" in sinus.evidence.criterion and "at one delay" in sinus.evidence.criterion
    assert pace.evidence.criterion.endswith("no atrial stimulus")
    assert abs(pace.evidence.values["p_to_qrs_ms"] - 160) <= 25


@pytest.mark.parametrize("seed", SEEDS)
def test_paced_atrial_fibrillation_gets_no_atrial_rhythm(seed: int) -> None:
    """VVI in atrial fibrillation: no sinus rhythm, tracking or atrial pacing named."""
    spec = replace(PACED, mode="VVI_AF", lower_rate_bpm=70, af_rate_bpm=60)
    report = analyze(spec, seed, 500.0)
    assert "PACE" in report.codes
    assert not {"SR", "SBRAD", "STACH", "SARRH"} & set(report.codes)
    assert "atrial-sensed" not in report.impression.lower()
    assert "atrial-paced" not in report.impression.lower()


def test_ludb_104_sinus_rhythm_tracked(shared_data: Path) -> None:
    """LUDB 104: sinus rhythm, P-synchronous ventricular pacing (ludb.csv); P waves
    258-268 ms before all 11 paced beats. Read "Pacemaker rhythm" on 5d78c14."""
    report = model.analyze(model.load(shared_data / "ludb" / "data" / "104"))
    assert report.codes == ["SR", "PACE"]
    assert report.impression.startswith("Sinus rhythm with atrial-sensed ventricular pacing.")


@pytest.mark.parametrize(("seed", "rate"), [(14, 500.0), (17, 500.0), (23, 250.0)])
def test_atrial_fibrillation_under_ventricular_pacing_named_first(seed: int, rate: float) -> None:
    """VVI in AF paced 40 % or more, AF found by its existing tests: "Atrial
    fibrillation with ventricular pacing" (was "Pacemaker rhythm with atrial
    fibrillation" on 5d78c14)."""
    spec = replace(PACED, mode="VVI_AF", lower_rate_bpm=70, af_rate_bpm=60)
    report = analyze(spec, seed, rate)
    assert report.codes == ["AFIB", "PACE"]
    assert report.impression.startswith("Atrial fibrillation with ventricular pacing.")
    assert "no atrial stimulus" in report.statements[1].evidence.criterion
