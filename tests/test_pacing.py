"""Paced rhythms: the synthetic paced generator (model.rhythm_paced) and the stimulus
search (model.beats.pacing_spikes, model.pacing_stimuli) on synthetic and real ECGs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import model
from model.rhythm_paced import PacedSpec, paced_ecg, spike_shape
from model.synthetic import SyntheticSpec

CONDUCTION = {"CRBBB", "CLBBB", "IRBBB", "ILBBB", "IVCD", "LAFB", "LPFB", "WPW"}


def test_stimuli_are_drawn_as_asked() -> None:
    """A one-sample spike is one sample; a low-passed one spans its width; a spike in 3
    leads is absent from the other 9; the paced beats follow the stimuli."""
    assert spike_shape(1).tolist() == [1.0]
    assert spike_shape(4).size == 4 and spike_shape(4).max() == 1.0
    spec = PacedSpec(mode="VVI", spike_mv=2.0, spike_width=1, spike_leads=3, seed=11)
    ecg, truth = paced_ecg(spec)
    bare, _ = paced_ecg(PacedSpec(mode="VVI", spike_mv=0.0, spike_width=1, seed=11))
    added = np.abs(ecg.signal - bare.signal).max(axis=1)
    assert (added > 1.0).sum() == 1 and (added > 1e-6).sum() <= 3
    assert truth.rhythm == "PACE" and set(truth.beats) == {"P"}
    assert np.allclose(np.diff(truth.qrs_onsets_ms), 60000.0 / spec.lower_rate_bpm)


def test_vvi_in_atrial_fibrillation_mixes_conducted_and_paced_beats() -> None:
    _, truth = paced_ecg(PacedSpec(mode="VVI_AF", lower_rate_bpm=70, af_rate_bpm=65, seed=12))
    assert {"N", "P"} <= set(truth.beats)
    assert truth.codes == {"PACE", "AFIB"}
    escape = 60000.0 / 70
    rr = np.diff(truth.qrs_onsets_ms)
    assert rr.max() <= escape + 1e-6


# Each stimulus shape the one-sample search missed before the beat-locked search
# (model.pacing_stimuli): every one of these was read as a bundle branch block, a
# sinus rhythm or atrial fibrillation.
MISSED_BEFORE = [
    ("VVI", 3, 1.0, 12, 500.0, 21),
    ("VVI", 5, 0.5, 12, 500.0, 22),
    ("VVI", 4, 2.0, 3, 500.0, 23),
    ("VVI", 1, 2.0, 12, 250.0, 24),
    ("VVI", 1, 3.0, 12, 100.0, 25),
    ("VVI", 2, 0.3, 12, 500.0, 26),
    ("AAI", 3, 1.0, 12, 500.0, 27),
    ("AAI", 5, 3.0, 12, 500.0, 28),
    ("DDD", 3, 1.0, 12, 500.0, 29),
    ("DDD", 4, 0.6, 6, 250.0, 30),
    ("DDD", 2, 2.0, 12, 100.0, 31),
    ("VVI_AF", 4, 1.5, 12, 500.0, 32),
]


@pytest.mark.parametrize(("mode", "width", "mv", "leads", "fs", "seed"), MISSED_BEFORE)
def test_paced_rhythm_is_recognised_whatever_the_cart_did_to_the_spike(
    mode: str, width: int, mv: float, leads: int, fs: float, seed: int
) -> None:
    spec = PacedSpec(
        mode=mode,
        lower_rate_bpm=70,
        sinus_rate_bpm=60 if mode == "DDD" else 80,
        af_rate_bpm=60,
        spike_mv=mv,
        spike_width=width,
        spike_leads=leads,
        sampling_rate=fs,
        noise_mv=0.01,
        wander_mv=0.1,
        seed=seed,
        morphology=SyntheticSpec(qrs_axis_deg=30),
    )
    ecg, truth = paced_ecg(spec)
    report = model.analyze(ecg)
    assert "PACE" in report.codes
    assert not CONDUCTION & set(report.codes)
    if "AFIB" not in truth.codes:
        assert "AFIB" not in report.codes
    pacing = next(s for s in report.statements if s.code == "PACE")
    assert pacing.evidence.values["paced_beats"] >= 0.8 * truth.count("P")


def test_ludb_90_bipolar_pacing_with_tiny_spikes(shared_data: Path) -> None:
    """LUDB 90 (bipolar ventricular pacing, complete AV block): the spikes are 0.05-0.4
    mV and one to two samples, found by the one-sample search before 3 of 10 beats only,
    so it read as a right bundle branch block. The beat-locked search finds them at
    the onset of every wide QRS where they stand out of the lead noise."""
    report = model.analyze(model.load(shared_data / "ludb" / "data" / "90"))
    assert report.codes == ["PACE"]
    assert report.statements[0].evidence.values["paced_beats"] >= 5


def _non_paced_records(shared_data: Path) -> list[Path]:
    with (shared_data / "ludb" / "ludb.csv").open(newline="") as f:
        ludb = [
            shared_data / "ludb" / "data" / row["ID"]
            for row in csv.DictReader(f)
            if not row["Cardiac pacing"].strip() and int(row["ID"]) <= 60
        ]
    cinc = [
        header.with_suffix("")
        for header in sorted((shared_data / "cinc2021").glob("*.hea"))
        if "10370003" not in header.read_text()
    ]
    return ludb + cinc


def test_non_paced_records_stay_non_paced(shared_data: Path) -> None:
    """LUDB 1-60 without a pacemaker and every CinC 2021 record here without a pacing
    label (bundle branch blocks, atrial fibrillation, sharp septal q waves and notches
    at a fixed place before the QRS among them) get no PACE."""
    records = _non_paced_records(shared_data)
    assert len(records) >= 80
    paced = [r.name for r in records if "PACE" in model.analyze(model.load(r)).codes]
    assert paced == []


@pytest.mark.parametrize("width", [1, 3])
def test_ventricular_pacing_in_atrial_fibrillation_states_both(width: int) -> None:
    """VVI pacing filling the pauses of atrial fibrillation: PACE and AFIB (SCP and
    PTB-XL code both rhythms), and the fibrillation's conducted beats, early against
    the paced ones, are no premature ventricular beats."""
    spec = PacedSpec(
        mode="VVI_AF",
        lower_rate_bpm=70,
        af_rate_bpm=62,
        f_wave_mv=0.15,
        spike_mv=2.0,
        spike_width=width,
        noise_mv=0.01,
        seed=47,
    )
    ecg, truth = paced_ecg(spec)
    assert truth.codes == {"PACE", "AFIB"}
    assert sorted(model.analyze(ecg).codes) == ["AFIB", "PACE"]


def test_paced_rhythm_with_regular_sinus_p_waves_is_no_fibrillation() -> None:
    """DDD pacing tracking a sinus rhythm (the sinus rhythm named beside it, 3.28) and
    VVI pacing with the sinus P waves marching through (complete AV block; the sinus
    rhythm named beside it, 3.30): never AFIB."""
    for mode, expected in (("DDD", ["SR", "PACE"]), ("VVI", ["SR", "PACE"])):
        for seed in (61, 62, 63):
            spec = PacedSpec(mode=mode, sinus_rate_bpm=85, spike_width=3, noise_mv=0.01, seed=seed)
            codes = model.analyze(paced_ecg(spec)[0]).codes
            assert codes == expected, (mode, seed, codes)


@pytest.mark.parametrize("seed", [64, 65, 66, 67])
def test_intermittent_pacing_in_sinus_rhythm_is_no_fibrillation(seed: int) -> None:
    """A sinus rhythm swinging about the pacemaker's lower rate: conducted and paced
    beats mixed, the RR irregular, the P waves there: never AFIB; PACE where four or
    more beats are paced."""
    spec = PacedSpec(mode="VVI_SINUS", lower_rate_bpm=65, spike_width=3, noise_mv=0.01, seed=seed)
    ecg, truth = paced_ecg(spec)
    assert {"N", "P"} <= set(truth.beats)
    codes = model.analyze(ecg).codes
    assert "AFIB" not in codes
    if truth.count("P") >= 4:
        assert "PACE" in codes


@pytest.mark.parametrize("seed", [42, 46, 55, 63])
def test_conducted_beats_beside_a_pacemaker_are_no_pvcs(seed: int) -> None:
    """VVI in atrial fibrillation: the beats no stimulus drove are conducted, of another
    shape than the paced ones and early against them; they were stated as PVCs."""
    ecg, truth = paced_ecg(PacedSpec(mode="VVI_AF", seed=seed))
    assert "V" not in truth.beats
    report = model.analyze(ecg)
    assert "PACE" in report.codes
    assert not {"PVC", "PAC", "PJC", "BIGU", "TRIGU"} & set(report.codes)


@pytest.mark.parametrize("seed", [42, 53, 60, 65])
def test_beats_of_another_shape_unexplained_are_not_a_normal_ecg(seed: int) -> None:
    """VVI pacing over a sinus rhythm, the stimuli not found: the paced complexes are
    beats of another shape that no statement explains. It read "Sinus rhythm. Normal
    ECG."; now it is not called normal and the impression counts them."""
    report = model.analyze(paced_ecg(PacedSpec(mode="VVI_SINUS", seed=seed))[0])
    assert "NORM" not in report.codes
    assert not report.impression.endswith(("Normal ECG.", "Otherwise normal ECG."))
    if "PACE" not in report.codes:
        assert "QRS complexes of another shape, not classified." in report.impression
