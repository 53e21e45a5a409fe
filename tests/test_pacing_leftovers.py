"""Pacing leftovers of issue 24's review: a NaN lead beside pacemaker stimuli, real
beats dropped as stimuli taken for beats, and strips with a few paced beats read as
plain sinus rhythm (docs/measurement.md 3.13)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import model
from model.beats import samples
from model.measure import measure
from model.pacing_stimuli import stimuli_taken_for_beats
from model.rhythm_paced import PacedSpec, paced_ecg


def _beats_rate_paced(ecg: model.Ecg) -> tuple[int | None, int | None, int, bool]:
    m = measure(ecg)
    beats = None if m.beats is None else int(m.beats.positions.size)
    return beats, m.values.heart_rate_bpm, m.paced_beats, "PACE" in model.analyze(ecg).codes


@pytest.mark.parametrize(
    ("mode", "fs", "seed", "lead"),
    [("VVI", 500.0, 31, 7), ("DDD", 250.0, 32, 10), ("AAI", 100.0, 33, 8)],
)
def test_nan_lead_is_left_out_of_beats_and_stimuli_alike(
    mode: str, fs: float, seed: int, lead: int
) -> None:
    """A precordial lead that is NaN over a stretch, or wholly, is left out of the beat
    detection and the stimulus search alike: the beats, rate and paced beats equal those
    of the same ECG without that lead (a missing precordial lead cannot be derived)."""
    spec = PacedSpec(mode=mode, sampling_rate=fs, seed=seed, spike_mv=1.5, spike_width=3)
    ecg = paced_ecg(spec)[0]
    keep = [i for i in range(len(ecg.lead_names)) if i != lead]
    without = replace(
        ecg, signal=ecg.signal[keep], lead_names=tuple(ecg.lead_names[i] for i in keep)
    )
    expected = _beats_rate_paced(without)
    assert expected[3]
    n = ecg.n_samples
    for span in (slice(n // 3, n // 2), slice(None)):
        signal = ecg.signal.copy()
        signal[lead, span] = np.nan
        assert _beats_rate_paced(replace(ecg, signal=signal)) == expected


def test_a_beat_with_a_qrs_of_its_own_is_no_stimulus_taken_for_one() -> None:
    """Beside a stimulus and followed within 400 ms by another beat, a detected beat is
    the stimulus itself only where, the stimuli blanked, it has no QRS of its own:
    a QRS a ventricular stimulus captured followed by a premature beat 300 ms later
    was dropped by timing alone, with the spike of an atrial stimulus taken for a beat."""
    t = np.arange(5000)
    blanked = np.zeros((2, t.size))
    for centre in (500, 1000, 1500, 1650, 2600, 3100):  # QRS complexes
        blanked += np.array([[1.0], [-0.6]]) * np.exp(-0.5 * ((t - centre) / 12.0) ** 2)
    blanked[:, 2400:2460] += 0.1  # the P wave after an atrial stimulus at 2500
    positions = np.array([500, 1000, 1500, 1650, 2510, 2600, 3100])
    stimuli = np.array([1480, 2500])
    taken = stimuli_taken_for_beats(stimuli, positions, samples(28), samples(56), blanked)
    assert taken.tolist() == [False, False, False, False, True, False, False]


@pytest.mark.parametrize(("mode", "seed"), [("DDD", 11), ("DDD", 20), ("VVI", 21), ("VVI", 24)])
def test_paced_beats_at_150_per_min_at_100_hz_are_all_counted(mode: str, seed: int) -> None:
    """Paced at 150/min and recorded at 100 Hz, every captured QRS lies inside its
    stimulus's blanked span and the next beat follows within 400 ms: by timing alone
    they were taken for stimuli and dropped (DDD read 68-122/min, VVI 82-130/min)."""
    rate = (
        {"sinus_rate_bpm": 150.0, "lower_rate_bpm": 60.0}
        if mode == "DDD"
        else {"lower_rate_bpm": 150.0}
    )
    width = 5 if mode == "DDD" else 2
    spec = PacedSpec(
        mode=mode, seed=seed, sampling_rate=100.0, spike_mv=2.0, spike_width=width, **rate
    )
    report = model.analyze(paced_ecg(spec)[0])
    assert "PACE" in report.codes
    assert abs(report.measurements.heart_rate_bpm - 150) <= 2


@pytest.mark.parametrize("seed", [18, 25])
def test_three_paced_beats_of_their_own_shape_are_no_plain_sinus_rhythm(seed: int) -> None:
    """VVI pacing taking over from a sinus rhythm for 3 of 10 beats, 3 mV stimuli at
    500 Hz: each beat of the paced shape follows a stimulus, yet 3 paced beats were
    under the 4 intermittent pacing needed, and the strip read plain "SR". The sinus
    rhythm of the other 7 is named beside the pacing (docs/measurement.md 3.19)."""
    spec = PacedSpec(mode="VVI_SINUS", seed=seed, lower_rate_bpm=60.0, spike_mv=3.0, spike_width=4)
    ecg, truth = paced_ecg(spec)
    assert truth.beats.count("P") == 3
    report = model.analyze(ecg)
    assert report.codes[:2] == ["SR", "PACE"]
    # 3 of 10 paced is no pacemaker rhythm either: the report says how many.
    assert report.impression.startswith(
        "Sinus rhythm with intermittent ventricular pacing (3 of 10 beats paced)."
    )


@pytest.mark.parametrize("record", ["43", "109"])
def test_stimulus_like_artefacts_before_dominant_beats_are_no_pacing(
    shared_data: Path, record: str
) -> None:
    """LUDB 43 and 109 (not paced) show 3 QRS-locked one-sample artefacts before beats
    of the dominant shape: three paced beats count only where each is of another shape."""
    assert "PACE" not in model.analyze(model.load(shared_data / "ludb" / "data" / record)).codes


@pytest.mark.parametrize("seed", [45, 52, 67, 88])
def test_aai_at_100_hz_with_large_spikes_is_paced_at_its_own_rate(seed: int) -> None:
    """AAI pacing at 65/min, 4 mV atrial stimuli low-passed to 3 samples and recorded
    at 100 Hz: each stimulus is detected as a beat of its own; the strip read "PVC,
    BIGU" at 134/min. The stimuli that are beats of their own, each followed at the
    same delay by a QRS, are now taken for what they are."""
    spec = PacedSpec(
        mode="AAI", seed=seed, lower_rate_bpm=65.0, spike_mv=4.0, spike_width=3, sampling_rate=100.0
    )
    report = model.analyze(paced_ecg(spec)[0])
    assert "PACE" in report.codes
    assert not {"PVC", "BIGU"} & set(report.codes)
    assert abs(report.measurements.heart_rate_bpm - 65) <= 2
