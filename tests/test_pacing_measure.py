"""Paced ECGs measured with their stimuli blanked (model.measure.pipeline's second pass,
model.pacing_stimuli): how paced beats are counted, which beats the second pass
measures, what blanking does to the intervals, and stimuli the search used to miss."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

import model
from model.pacing_stimuli import stimulated
from model.rhythm_paced import PacedSpec, paced_ecg
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import SyntheticSpec, synthetic_ecg

# The pacemaker and heart every test here draws; each test picks the mode and what
# the cart did to the stimuli.
PACEMAKER = PacedSpec(
    lower_rate_bpm=65, sinus_rate_bpm=60, noise_mv=0.01, morphology=SyntheticSpec(qrs_axis_deg=30)
)


def _paced(mode: str, fs: float, width: int, mv: float, seed: int, leads: int = 12) -> PacedSpec:
    stimuli = {"spike_width": width, "spike_mv": mv, "spike_leads": leads}
    return replace(PACEMAKER, mode=mode, sampling_rate=fs, seed=seed, **stimuli)


def test_av_sequential_stimuli_count_one_paced_beat() -> None:
    """An atrial and a ventricular stimulus before the same QRS make one paced beat:
    counted as two, two AV-sequential beats of ten read as intermittent pacing."""
    positions = np.array([300, 800, 1300, 1800, 2300])
    stimuli = np.array([150, 230, 650, 730])
    assert stimulated(stimuli, positions).tolist() == [True, True, False, False, False]


@pytest.mark.parametrize("seed", [14, 21, 28])
def test_blanking_at_100_hz_loses_no_paced_beat(seed: int) -> None:
    """VVI over a sinus rhythm at 100 Hz: detected again on the blanked signal, paced
    QRS complexes whose start was blanked were lost (heart rate 51-56 for 66)."""
    ecg, truth = paced_ecg(_paced("VVI_SINUS", 100.0, 3, 3.0, seed))
    report = model.analyze(ecg)
    assert "PACE" in report.codes
    rate = 60000.0 / np.mean(np.diff(truth.qrs_onsets_ms))
    assert abs(report.measurements.heart_rate_bpm - rate) <= 2


@pytest.mark.parametrize("mode", ["VVI", "DDD"])
def test_paced_qrs_is_not_widened_by_the_blanking(mode: str) -> None:
    """At 500 Hz the blanked stimulus is held at the baseline up to its peak (the heart
    answers after it): the paced QRS was 16-28 ms wider than on the same drawing
    without stimuli. At 100 Hz the smeared stimulus overlaps the QRS onset: no QRS,
    QT or PR is given (they were 46-56 ms long), each with its reason."""
    for seed in (31, 32):
        paced = model.analyze(paced_ecg(_paced(mode, 500.0, 3, 2.0, seed))[0])
        bare = model.analyze(paced_ecg(_paced(mode, 500.0, 3, 0.0, seed))[0])
        assert "PACE" in paced.codes
        assert abs(paced.measurements.qrs_ms - bare.measurements.qrs_ms) <= 10
        low = model.analyze(paced_ecg(_paced(mode, 100.0, 3, 2.0, seed))[0])
        assert "PACE" in low.codes
        # VVI: the sinus P waves march through, no PR to give.
        for key in ("qrs_ms", "qt_ms", "pr_ms") if mode == "DDD" else ("qrs_ms", "qt_ms"):
            assert getattr(low.measurements, key) is None
            assert "pacemaker stimulus" in low.null_reasons[key]


@pytest.mark.parametrize("seed", [12, 16, 20])
def test_stimuli_beside_septal_q_waves_are_found(seed: int) -> None:
    """VVI over a sinus rhythm at 250 Hz, spikes in 6 leads: every conducted beat shows
    a small QRS-locked pulse (its q wave) 6 samples from where the stimuli sit before
    the paced beats; counted together the train mixed both and was not explained
    (read "SR"). The train is now centred on the pulses that weigh most."""
    ecg, truth = paced_ecg(_paced("VVI_SINUS", 250.0, 2, 3.0, seed, leads=6))
    assert truth.count("P") >= 4
    assert "PACE" in model.analyze(ecg).codes


@pytest.mark.parametrize("leads", [6, 12])
def test_stimuli_before_the_paced_beats_alone_where_the_blanked_pass_fails(leads: int) -> None:
    """VVI over a sinus rhythm at 100 Hz, 3 mV spikes: the train the search found
    before every beat held the conducted beats' own R apexes, and with them blanked
    the beats differed too much to measure; the first pass was kept with no pacing
    stated ("SR", or a rhythm-only report). The stimuli are now searched before the
    beats of another shape alone (docs/measurement.md 3.19): pacing is stated at the
    strip's rate, and no conduction statement is made on the paced QRS complexes
    (they read pre-excitation, or a first-degree block with a right bundle block)."""
    ecg, truth = paced_ecg(_paced("VVI_SINUS", 100.0, 3, 3.0, 13, leads=leads))
    report = model.analyze(ecg)
    rate = 60000.0 / np.mean(np.diff(truth.qrs_onsets_ms))
    assert abs(report.measurements.heart_rate_bpm - rate) <= 2
    assert "PACE" in report.codes
    flags = report.source.quality_flags
    assert not any("with them blanked the ECG was not measurable" in f for f in flags)
    assert not {"WPW", "1AVB", "LPR", "CRBBB", "CLBBB", "IRBBB", "IVCD", "NORM"} & set(report.codes)


@pytest.mark.parametrize(("mode", "seed"), [("DDD", 11), ("DDD", 14), ("VVI", 12), ("VVI", 19)])
def test_large_spikes_at_250_hz_are_pacing_wherever_the_qrs_onset_lands(
    mode: str, seed: int
) -> None:
    """4.5 mV one-sample spikes resampled to 250 Hz before every QRS: so large a
    stimulus pulled the QRS delimitation onto itself (a narrow QRS starting before
    it), the position rules failed, and DDD read "SR, 1AVB". A train whose weakest
    pulse scores UNMISTAKABLE_SCORE is a pacemaker's."""
    sinus = 85.0 if mode == "DDD" else 60.0
    spec = replace(_paced(mode, 250.0, 1, 4.5, seed), sinus_rate_bpm=sinus)
    codes = model.analyze(paced_ecg(spec)[0]).codes
    assert "PACE" in codes
    assert "1AVB" not in codes


@pytest.mark.parametrize("seed", [41, 42, 43, 44])
def test_narrow_qrs_peaks_at_100_hz_are_no_stimuli(seed: int) -> None:
    """A sinus rhythm resampled to 100 Hz: each narrow QRS's own peak is as sharp and
    as large as a big stimulus there, 6 samples before the QRS position; a train of
    them is no pacemaker however high it scores."""
    spec = RhythmSpec(rate_bpm=60 + seed % 4 * 15, noise_mv=0.01, seed=seed)
    ecg = rhythm_ecg(spec)[0]
    signal = resample_poly(ecg.signal, 1, 5, axis=1).astype(np.float32)
    low = replace(ecg, signal=signal, sampling_rate=100.0)
    assert "PACE" not in model.analyze(low).codes


@pytest.mark.parametrize("record", ["9", "67", "70", "145"])
def test_unpaced_ludb_resampled_to_100_hz_is_not_paced(shared_data: Path, record: str) -> None:
    """At 100 Hz a narrow QRS's apex is as sharp as a stimulus: found at the QRS
    position it was taken for the next beat's atrial stimulus, a whole RR early
    (LUDB 9), or named a pacemaker by its size alone (LUDB 67, 70, 145)."""
    ecg = model.load(shared_data / "ludb" / "data" / record)
    signal = resample_poly(ecg.signal, 1, 5, axis=1).astype(np.float32)
    low = replace(ecg, signal=signal, sampling_rate=100.0)
    assert "PACE" not in model.analyze(low).codes


def _at_100_hz(shared_data: Path, record: str) -> model.Ecg:
    ecg = model.load(shared_data / "ludb" / "data" / record)
    signal = resample_poly(ecg.signal, 1, 5, axis=1).astype(np.float32)
    return replace(ecg, signal=signal, sampling_rate=100.0)


@pytest.mark.parametrize("record", ["10", "13", "108"])
def test_r_apexes_of_wide_qrs_at_100_hz_are_no_stimuli(shared_data: Path, record: str) -> None:
    """Bundle branch blocks resampled to 100 Hz: the R apex, 34-44 ms into the QRS,
    is as sharp as a stimulus there and sat within the tolerance a smeared ventricular
    stimulus needs after the onset of a wide QRS; it rises from half its height in
    9-15 ms, a stimulus the anti-alias filter spreads in at most about 7.5."""
    assert "PACE" not in model.analyze(_at_100_hz(shared_data, record)).codes


@pytest.mark.parametrize("record", ["34", "45"])
def test_paced_ludb_resampled_to_100_hz_stays_paced(shared_data: Path, record: str) -> None:
    """Their stimuli, smeared by the anti-alias filter, rise from half their height in
    about 6 ms: the rise limit for trains at 100 Hz keeps them."""
    assert "PACE" in model.analyze(_at_100_hz(shared_data, record)).codes


@pytest.mark.parametrize("seed", [11, 14, 20, 32])
def test_wide_single_dipole_qrs_at_250_hz_is_not_paced(seed: int) -> None:
    """A synthetic QRS of 116-128 ms at 250 Hz: its 23-26 ms septal q lobe peaks in
    every lead at once (one heart vector) and, at the 10 ms pulse spacing of 250 Hz,
    passed the narrowness test as a stimulus at the QRS onset. It rises from half
    its height to its peak in about 6 ms, a stimulus in at most 4.3: read as PACE,
    the blanked second pass shortened the QRS by 10-12 ms."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(45, 130)
    spec = SyntheticSpec(
        heart_rate_bpm=round(rate),
        pr_ms=round(rng.uniform(120, 220)),
        qrs_ms=round(rng.uniform(116, 128)),
        qt_ms=round(440 - (rate - 50) * 1.6),
        p_axis_deg=round(rng.uniform(0, 80)),
        qrs_axis_deg=round(rng.uniform(-60, 110)),
        t_axis_deg=round(rng.uniform(0, 80)),
    )
    report = model.analyze(synthetic_ecg(spec, sampling_rate=250.0))
    assert "PACE" not in report.codes
    assert abs(report.measurements.qrs_ms - spec.qrs_ms) <= 5
