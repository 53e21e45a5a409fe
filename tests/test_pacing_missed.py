"""Paced strips at 250 and 500 Hz that read atrial fibrillation, a sinus rhythm or no
rhythm without the pacemaker (docs/measurement.md 3.24). Synthetic paced rhythms
(model.rhythm_paced), test seeds; each paced test fails on 9e16754."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import resample_poly

import model
from model.rhythm_paced import PacedSpec, paced_ecg
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import SyntheticSpec

# 1 mV stimuli at 500 Hz, the QRS axis 30 degrees.
PACED = PacedSpec(spike_mv=1.0, noise_mv=0.01, morphology=SyntheticSpec(qrs_axis_deg=30))
# VVI pacing filling the longer pauses of atrial fibrillation, stimuli low-passed to 2
# samples.
VVI_IN_AF = replace(PACED, mode="VVI_AF", lower_rate_bpm=66, af_rate_bpm=74, spike_width=2)
# VVI over a sinus rhythm at about its lower rate, one-sample stimuli in 6 leads.
VVI_OVER_SINUS = replace(PACED, mode="VVI_SINUS", lower_rate_bpm=70, spike_leads=6)
# AV sequential pacing (sinus rate under the lower rate), AV delay 120 ms, 0.31 mV
# stimuli low-passed to 4 samples, resampled to 250 Hz.
HEART = SyntheticSpec(pr_ms=153, qrs_ms=94, qt_ms=416, p_axis_deg=45, qrs_axis_deg=87)
AV_SEQUENTIAL = replace(
    PACED,
    mode="DDD",
    lower_rate_bpm=72.6,
    sinus_rate_bpm=58.4,
    av_delay_ms=120,
    spike_mv=0.31,
    spike_width=4,
    noise_mv=0.001,
    wander_mv=0.07,
    morphology=replace(HEART, t_axis_deg=12, p_mv=0.16),
    sampling_rate=250.0,
)


def test_vvi_in_af_paced_beats_aligned_on_their_own_shape() -> None:
    """4 of 13 beats paced (test seed 61): the paced QRS complexes were placed on the
    conducted beats' median QRS, their positions 9-80 samples after their stimuli, no
    three at one delay; read "Atrial fibrillation" alone."""
    ecg, truth = paced_ecg(replace(VVI_IN_AF, seed=61))
    assert truth.beats.count("P") == 4
    report = model.analyze(ecg)
    assert report.codes[:2] == ["AFIB", "PACE"]
    assert report.impression.startswith(
        "Atrial fibrillation with intermittent ventricular pacing (4 of 13 beats paced)."
    )


@pytest.mark.parametrize("seed", [19, 33, 87, 97])
def test_atrial_fibrillation_named_beside_few_conducted_pairs(seed: int) -> None:
    """3-4 of 12-13 beats paced: too few intervals between two conducted beats in a row
    to judge (19, 33: "Intermittent ventricular pacing" alone), or a median "P wave"
    that the beats do not show one by one (87, 97: "Atrial fibrillation" alone, the
    pacing missed; with it found, the AF was lost)."""
    ecg, truth = paced_ecg(replace(VVI_IN_AF, seed=seed))
    assert 3 <= truth.beats.count("P") <= 4
    report = model.analyze(ecg)
    assert report.codes[:2] == ["AFIB", "PACE"]
    assert report.impression.startswith("Atrial fibrillation with intermittent ventricular pacing")


@pytest.mark.parametrize(
    ("spec", "seed", "rhythm"),
    [
        (VVI_OVER_SINUS, 25, "Sinus rhythm"),
        (VVI_OVER_SINUS, 53, "Sinus rhythm"),
        (VVI_IN_AF, 17, "Atrial fibrillation"),
        (VVI_IN_AF, 51, "Atrial fibrillation"),
    ],
)
def test_two_paced_beats_at_500_hz_are_stated(spec: PacedSpec, seed: int, rhythm: str) -> None:
    """Two beats of another shape, each after a stimulus at one delay: read as the
    rhythm alone ("SR" or "AFIB") before."""
    ecg, truth = paced_ecg(replace(spec, seed=seed))
    assert truth.beats.count("P") == 2
    report = model.analyze(ecg)
    assert "PACE" in report.codes
    beats = len(truth.beats)
    assert report.impression.startswith(
        f"{rhythm} with intermittent ventricular pacing (2 of {beats} beats paced)."
    )


@pytest.mark.parametrize("seed", [11, 26, 44])
def test_av_sequential_pacing_at_250_hz(seed: int) -> None:
    """Every beat after an atrial and a ventricular stimulus: the atrial stimulus's P
    wave and the smeared ventricular stimulus pulled the measured QRS onset 30-40 ms
    before the ventricular stimulus, and each train failed its position rule; read
    "Sinus rhythm, IVCD"."""
    ecg, truth = paced_ecg(replace(AV_SEQUENTIAL, seed=seed))
    assert set(truth.beats) == {"P"}
    report = model.analyze(ecg)
    assert "PACE" in report.codes
    assert not {"SR", "IVCD", "WPW"} & set(report.codes)


@pytest.mark.parametrize("rate", [250, 500])
def test_two_premature_ventricular_beats_are_no_pacemaker(rate: int) -> None:
    """Sinus rhythm with a few PVCs (test seeds 40-59 with at least two, at 250 and 500
    Hz): two beats of another shape are not paced without a stimulus before each."""
    checked = 0
    for seed in range(40, 60):
        spec = RhythmSpec(rate_bpm=75, pvc_fraction=0.2, noise_mv=0.01, seed=seed)
        ecg, truth = rhythm_ecg(spec)
        if truth.count("V") < 2:
            continue
        if rate != ecg.sampling_rate:
            signal = resample_poly(ecg.signal, rate, int(ecg.sampling_rate), axis=1)
            ecg = replace(ecg, signal=signal.astype(np.float32), sampling_rate=float(rate))
        assert "PACE" not in model.analyze(ecg).codes, seed
        checked += 1
    assert checked >= 10
