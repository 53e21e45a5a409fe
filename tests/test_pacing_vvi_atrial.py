"""The sinus rhythm beside ventricular pacing that does not track it (VVI;
docs/measurement.md 3.30): the P waves found along the recording with each beat class
cancelled with its own median beat, regular at a sinus rate with a sinus axis and not
at one delay before the paced beats, name SR, SBRAD or STACH beside PACE ("Ventricular
pacing (P waves not tracked)"); where they keep no cycle and fibrillatory-looking waves
fill that residual, the atrial rhythm is reported undetermined, not coded AF (limb
tremor gives the same waves). Synthetic paced rhythms
(model.rhythm_paced), test seeds 11-40; each named-rhythm test fails on 23c57a0
("Pacemaker rhythm" alone)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import model
from model.measure import measure
from model.paced_atrial_rhythm import NOT_TRACKED, UNCLEAR_ATRIAL_RHYTHM
from model.rhythm_paced import PacedSpec, paced_ecg
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import SyntheticSpec

# 1 mV one-sample stimuli in all leads, the QRS axis 30 degrees.
PACED = PacedSpec(spike_mv=1.0, noise_mv=0.01, morphology=SyntheticSpec(qrs_axis_deg=30))
SINUS_CODES = {"SR", "SBRAD", "STACH", "SARRH"}


def analyze(spec: PacedSpec, seed: int, rate: float) -> model.Report:
    return model.analyze(paced_ecg(replace(spec, seed=seed, sampling_rate=rate))[0])


@pytest.mark.parametrize("rate", [500.0, 250.0])
@pytest.mark.parametrize("seed", range(11, 21))
def test_dissociated_sinus_rhythm_named(seed: int, rate: float) -> None:
    """VVI at 70/min, sinus P waves at 90/min marching through the paced beats."""
    spec = replace(PACED, mode="VVI", lower_rate_bpm=70, sinus_rate_bpm=90)
    report = analyze(spec, seed, rate)
    assert report.codes == ["SR", "PACE"]
    assert report.impression.startswith(
        "Sinus rhythm with ventricular pacing (P waves not tracked)."
    )
    sinus, pace = report.statements[:2]
    assert pace.text == NOT_TRACKED
    assert "not at one delay" in sinus.evidence.criterion
    assert abs(sinus.evidence.values["atrial_rate_per_min"] - 90) <= 5
    spread = (
        pace.evidence.values["p_to_paced_qrs_max_ms"]
        - pace.evidence.values["p_to_paced_qrs_min_ms"]
    )
    assert spread >= 120


@pytest.mark.parametrize(
    ("sinus_rate", "code", "seeds"),
    [(120, "STACH", (11, 14, 15, 16)), (45, "SBRAD", (11, 13, 14, 15))],
)
def test_rate_coded_by_the_atrial_rate(sinus_rate: int, code: str, seeds: tuple[int, ...]) -> None:
    """The sinus rate code follows the P waves' rate, not the paced ventricular rate
    (70/min)."""
    spec = replace(PACED, mode="VVI", lower_rate_bpm=70, sinus_rate_bpm=sinus_rate)
    for seed in seeds:
        report = analyze(spec, seed, 500.0)
        assert report.codes == [code, "PACE"], seed
        assert abs(report.statements[0].evidence.values["atrial_rate_per_min"] - sinus_rate) <= 3


@pytest.mark.parametrize("seed", [12, 15])
def test_intermittently_conducted_sinus_rhythm_named(seed: int) -> None:
    """VVI over a sinus rhythm near the lower rate, 5 of 11 beats paced: the beats not
    paced conducted at one PR, the paced ones fired before the sinus beat conducted."""
    report = analyze(replace(PACED, mode="VVI_SINUS", lower_rate_bpm=70), seed, 500.0)
    assert report.codes == ["SR", "PACE"]
    assert report.impression.startswith("Sinus rhythm with ventricular pacing (P waves")
    values = report.statements[1].evidence.values
    assert 130 <= values["conducted_pr_ms"] <= 190
    assert values["conducted_beats"] >= 3


@pytest.mark.parametrize("rate", [500.0, 250.0])
def test_atrial_fibrillation_under_pacing_never_named_sinus(rate: float) -> None:
    """VVI in atrial fibrillation: the fibrillatory waves keep no atrial cycle, so no
    sinus rhythm and no "not tracked" wording (test seeds 11-40)."""
    spec = replace(PACED, mode="VVI_AF", lower_rate_bpm=70, af_rate_bpm=60)
    for seed in range(11, 41):
        report = analyze(spec, seed, rate)
        assert not SINUS_CODES & set(report.codes), seed
        assert "not tracked" not in report.impression, seed


@pytest.mark.parametrize(
    ("seed", "rate"),
    [(12, 500.0), (13, 500.0), (18, 500.0), (21, 500.0), (15, 250.0), (19, 250.0), (20, 250.0)],
)
def test_fibrillatory_waves_between_paced_beats_reported_not_coded(seed: int, rate: float) -> None:
    """VVI in AF paced 40 % or more whose conducted beats are too few to judge by
    their RR: the fibrillatory waves between the paced beats are reported, the atrial
    rhythm left undetermined (on 23c57a0: "Pacemaker rhythm" alone)."""
    spec = replace(PACED, mode="VVI_AF", lower_rate_bpm=70, af_rate_bpm=60)
    report = analyze(spec, seed, rate)
    assert report.codes == ["PACE"]
    assert report.impression.startswith(f"{UNCLEAR_ATRIAL_RHYTHM}.")
    (pace,) = [s for s in report.statements if s.code == "PACE"]
    assert pace.evidence.values["fibrillatory_wave_share"] >= 0.5
    assert "no atrial stimulus" in pace.evidence.criterion


def arm_tremor(ecg: model.Ecg, amplitude_mv: float, seed: int) -> model.Ecg:
    """Tremor of both arms at 5.0 and 5.4 Hz, its size and rate wavering, carried into
    each lead by its electrodes (the precordial leads through the central terminal)."""
    rng = np.random.default_rng(seed)
    t = np.arange(ecg.signal.shape[1]) / ecg.sampling_rate

    def arm(hz: float) -> np.ndarray:
        size = 1 + 0.3 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))
        wobble = 0.1 * np.sin(2 * np.pi * 0.2 * t)
        return amplitude_mv * size * np.sin(2 * np.pi * (hz + wobble) * t + rng.uniform(0, 6))

    ra, la = arm(5.0), arm(5.4)
    limb = {"I": la - ra, "II": -ra, "III": -la, "aVR": ra - la / 2, "aVL": la - ra / 2}
    limb["aVF"] = -(ra + la) / 2
    signal = ecg.signal.copy()
    for i, name in enumerate(ecg.lead_names):
        signal[i] += limb.get(name, -(ra + la) / 3)
    return replace(ecg, signal=signal)


@pytest.mark.parametrize("sinus_rate", [90.0, 55.0])
def test_arm_tremor_on_ventricular_pacing_is_no_atrial_fibrillation(sinus_rate: float) -> None:
    """0.06 mV of arm tremor at 5 Hz fills the residual between the paced beats as
    fibrillatory waves do; on VVI pacing over sinus P waves it must not read AF (before
    review, test seeds 11-20: 8 and 5 of 10 read AFIB at 90 and 55/min)."""
    spec = replace(PACED, mode="VVI", lower_rate_bpm=70, sinus_rate_bpm=sinus_rate)
    for seed in range(11, 21):
        ecg = arm_tremor(paced_ecg(replace(spec, seed=seed))[0], 0.06, seed)
        report = model.analyze(ecg)
        assert "PACE" in report.codes, (seed, report.impression)
        assert "AFIB" not in report.codes, (seed, report.impression)


@pytest.mark.parametrize("rate", [500.0, 250.0])
def test_no_atrial_fibrillation_on_paced_strips_drawn_without_it(rate: float) -> None:
    """A false AF leads to anticoagulation: none on VVI over dissociated or
    intermittently conducted sinus rhythms, tracking or AV sequential DDD, or AAI
    (test seeds 11-30)."""
    specs = [
        replace(PACED, mode="VVI", lower_rate_bpm=70, sinus_rate_bpm=90),
        replace(PACED, mode="VVI", lower_rate_bpm=70, sinus_rate_bpm=55),
        replace(PACED, mode="VVI_SINUS", lower_rate_bpm=70),
        replace(PACED, mode="DDD", lower_rate_bpm=60, sinus_rate_bpm=80),
        replace(PACED, mode="DDD", lower_rate_bpm=70, sinus_rate_bpm=55),
        replace(PACED, mode="AAI", lower_rate_bpm=70),
    ]
    for spec in specs:
        for seed in range(11, 31):
            assert "AFIB" not in analyze(spec, seed, rate).codes, (spec.mode, seed)


@pytest.mark.parametrize("rate", [500.0, 250.0])
def test_tracking_and_atrial_pacing_keep_their_names(rate: float) -> None:
    """DDD tracking a sinus rhythm stays "atrial-sensed", AAI "atrial-paced": never
    worded as untracked pacing."""
    ddd = replace(PACED, mode="DDD", lower_rate_bpm=60, sinus_rate_bpm=80)
    aai = replace(PACED, mode="AAI", lower_rate_bpm=70)
    for seed in range(11, 21):
        tracked, paced = analyze(ddd, seed, rate), analyze(aai, seed, rate)
        assert tracked.impression.startswith("Sinus rhythm with atrial-sensed ventricular pacing.")
        assert paced.impression.startswith("Atrial-paced rhythm.")


def test_unpaced_strip_gets_no_paced_p_wave_search() -> None:
    """The per-class P-wave search runs on paced strips only: a sinus rhythm with PVCs
    keeps no paced_atrial."""
    ecg, _ = rhythm_ecg(RhythmSpec(rhythm="sinus", rate_bpm=75, pvc_fraction=0.2, seed=31))
    m = measure(ecg)
    assert m.atrial is not None
    assert m.paced_atrial is None
