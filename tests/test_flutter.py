"""Atrial flutter at fixed and variable conduction against drawn truth, and sinus
tachycardia with its P wave on the T wave
(model.rhythm_synthetic, seeds other than the bench's), the rhythms it must not be
taken for, and LUDB's typical flutters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import model
from model.measure import measure
from model.report import Report
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import SyntheticSpec


def _flutter(rate: float, conduction: int, seed: int, size: float = 0.2) -> RhythmSpec:
    return RhythmSpec(
        rhythm="atrial_flutter",
        rate_bpm=rate,
        flutter_conduction=conduction,
        f_wave_mv=size,
        noise_mv=0.01,
        seed=seed,
    )


def _aflt(report: Report):
    return next(s for s in report.statements if s.code == "AFLT")


@pytest.mark.parametrize(
    ("rate", "conduction", "seed"),
    [(270, 2, 31), (300, 2, 32), (320, 2, 33), (260, 3, 34), (300, 3, 35), (250, 4, 36)],
)
def test_flutter_at_fixed_conduction(rate: float, conduction: int, seed: int) -> None:
    """Every flutter wave is locked to the QRS, so the QRS-T cancellation takes them
    all away; the median cycle still holds `conduction` alike waves one flutter cycle
    apart. The atrial rate is the drawn one and the ratio is stated."""
    ecg, truth = rhythm_ecg(_flutter(rate, conduction, seed))
    report = model.analyze(ecg)
    assert truth.rhythm == "AFLT" and report.codes[0] == "AFLT"
    assert "AFIB" not in report.codes
    values = _aflt(report).evidence.values
    assert values["atrial_rate_per_min"] == pytest.approx(rate, abs=10)
    if conduction < 4:  # 4:1 leaves a TQ segment: model.measure.atrial finds it first
        assert values["conduction_ratio"] == conduction
    assert report.measurements.pr_ms is None and report.measurements.p_axis_deg is None


def test_flutter_at_variable_conduction_is_never_fibrillation() -> None:
    """Conducted 2:1 to 4:1 at random, the flutter waves are not locked to the QRS and
    the cancellation leaves them (model.measure.atrial); their size is held to
    FLUTTER_MIN_MV, and the drawn 0.2 mV sawtooth passes it in only some strips
    (docs/measurement.md 3.6). Never fibrillation: the RRs are multiples of one cycle."""
    codes = [model.analyze(rhythm_ecg(_flutter(280, 0, seed))[0]).codes for seed in range(41, 51)]
    assert not any("AFIB" in found for found in codes)
    assert sum(found[0] == "AFLT" for found in codes) >= 4


@pytest.mark.parametrize("seed", [11, 32, 44, 68, 74, 101])
def test_flutter_with_variable_conduction_below_the_size_limit(seed: int) -> None:
    """Flutter at 240-340/min conducted 2:1 to 4:1 at random, its waves 0.1-0.2 mV:
    the cancelled residual's wave is under FLUTTER_MIN_MV in these strips (no rhythm,
    or no flutter, was named before), but regular: every RR is a whole number of
    flutter cycles, or the spectrum is concentrated at one frequency. Named flutter
    with variable conduction, never fibrillation."""
    rng = np.random.default_rng(seed)
    rate, size = float(rng.uniform(240, 340)), float(rng.uniform(0.1, 0.2))
    ecg, truth = rhythm_ecg(_flutter(rate, 0, seed, size))
    report = model.analyze(ecg)
    assert truth.rhythm == "AFLT" and report.codes[0] == "AFLT"
    assert "AFIB" not in report.codes
    statement = _aflt(report)
    assert statement.text == "Atrial flutter with variable conduction"
    assert statement.evidence.values["atrial_rate_per_min"] == pytest.approx(rate, abs=10)
    assert statement.evidence.values["conduction"] == "variable"


@pytest.mark.parametrize(("rate", "pr"), [(125, 200), (140, 180), (150, 170), (158, 150)])
def test_sinus_tachycardia_with_the_p_wave_on_the_t_wave_is_not_flutter(
    rate: float, pr: float
) -> None:
    """One sinus P wave per cycle: nothing alike one flutter cycle earlier."""
    spec = RhythmSpec(
        rate_bpm=rate,
        noise_mv=0.01,
        seed=rate,
        morphology=SyntheticSpec(pr_ms=pr, p_mv=0.2, qt_ms=400),
    )
    ecg, _ = rhythm_ecg(spec)
    measured = measure(ecg)
    assert measured.flutter_ratio is None
    assert "AFLT" not in model.analyze(ecg).codes


@pytest.mark.parametrize(
    "spec",
    [
        RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=130, f_wave_mv=0.2, seed=51),
        RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=100, f_wave_mv=0.15, seed=52),
        RhythmSpec(rate_bpm=120, pac_fraction=0.3, seed=53),
        RhythmSpec(rate_bpm=115, pvc_fraction=0.2, seed=54),
        RhythmSpec(rate_bpm=90, av_block="mobitz2", seed=55),
        RhythmSpec(rate_bpm=80, av_block="third", seed=56),
    ],
    ids=["af-coarse-130", "af-100", "pacs-120", "pvcs-115", "mobitz2", "third-degree"],
)
def test_no_flutter_on_fibrillation_ectopy_or_av_block(spec: RhythmSpec) -> None:
    ecg, _ = rhythm_ecg(spec)
    assert "AFLT" not in model.analyze(ecg).codes


def test_the_same_rate_with_one_p_wave_per_cycle_or_two_flutter_waves() -> None:
    """140/min both: flutter at 280/min conducted 2:1 (its "P wave" is a flutter wave,
    the other one hides in the ST-T) and sinus rhythm."""
    flutter = measure(rhythm_ecg(_flutter(280, 2, 61))[0])
    sinus = measure(rhythm_ecg(RhythmSpec(rate_bpm=140, noise_mv=0.01, seed=61))[0])
    assert flutter.flutter_ratio == 2 and flutter.has_flutter_waves
    assert flutter.flutter_hz * 60 == pytest.approx(280, abs=8)
    assert sinus.flutter_ratio is None and not sinus.has_flutter_waves


def test_ludb_typical_flutter_at_two_to_one(shared_data: Path) -> None:
    """LUDB 35: typical flutter at 284/min, conducted 2:1 with a few longer cycles
    (132/min); it was called sinus tachycardia with sinus arrhythmia."""
    report = model.analyze(model.load(shared_data / "ludb" / "data" / "35"))
    assert report.codes[0] == "AFLT"
    assert _aflt(report).evidence.values["conduction_ratio"] == 2


def test_ludb_typical_flutter_with_variable_conduction(shared_data: Path) -> None:
    """LUDB 52: typical flutter at 269/min, about 4:1 with an RR varying by 10 %; its
    waves were found in all four leads but under the mV limit (LUDB's leads are
    rescaled), and the irregular RR without a P wave was called atrial fibrillation.
    Its residual's power lies at one frequency and its harmonic (0.79-0.83 per lead;
    LUDB's fibrillations up to 0.40)."""
    report = model.analyze(model.load(shared_data / "ludb" / "data" / "52"))
    assert report.codes[0] == "AFLT" and "AFIB" not in report.codes
    values = _aflt(report).evidence.values
    assert values["atrial_rate_per_min"] == pytest.approx(269, abs=5)
    assert values["conduction"] == "variable"


@pytest.mark.parametrize("record", [44, 88, 101, 112])
def test_ludb_atrial_fibrillation_is_not_flutter(shared_data: Path, record: int) -> None:
    """LUDB's atrial fibrillations stay fibrillation: LUDB 101's and 44's residuals
    peak at one frequency in the flutter band in all four leads, but spread their power
    (at most 0.40 at the peak and its harmonic) and their RRs are no multiples of it."""
    report = model.analyze(model.load(shared_data / "ludb" / "data" / str(record)))
    assert "AFLT" not in report.codes and "AFIB" in report.codes


def test_ludb_atrial_fibrillation_with_a_repeating_cycle_is_not_flutter(
    shared_data: Path,
) -> None:
    """LUDB 101: atrial fibrillation whose median cycle holds alike waves a third of
    the RR apart (correlation 0.61-0.77), but only 4 of its 12 RRs are alike: no fixed
    conduction."""
    report = model.analyze(model.load(shared_data / "ludb" / "data" / "101"))
    assert "AFLT" not in report.codes


# The bench's morphology ranges (bench/measure_rhythm.py), PR from 140 ms: the P wave
# then falls on the T wave at 130-160/min.
FAST_SINUS_RANGES = {
    "pr_ms": (140, 190),
    "qrs_ms": (80, 110),
    "qt_ms": (380, 420),
    "p_axis_deg": (20, 75),
    "qrs_axis_deg": (-20, 90),
    "t_axis_deg": (10, 70),
}


def _fast_sinus(seed: int, p_mv: float) -> RhythmSpec:
    """A sinus rhythm at 130-160/min drawn with this test's own seeds; p_mv 0 draws
    the same strip without P waves."""
    rng = np.random.default_rng(seed)
    drawn = {key: round(rng.uniform(*span)) for key, span in FAST_SINUS_RANGES.items()}
    morphology = SyntheticSpec(**drawn, p_mv=p_mv * rng.uniform(0.1, 0.2))
    rate = float(rng.uniform(130, 160))
    return RhythmSpec(rate_bpm=rate, noise_mv=0.01, seed=seed, morphology=morphology)


def test_sinus_tachycardia_with_the_p_wave_on_the_t_wave() -> None:
    """Where no P wave could be delimited (no isoelectric baseline before it), the hump
    it makes on the T wave's descent names the rhythm; the same strips without P waves
    (a junctional or re-entry tachycardia) are named no rhythm."""
    hidden = stach = 0
    for seed in range(81, 101):
        ecg, _ = rhythm_ecg(_fast_sinus(seed, 1.0))
        if measure(ecg).fiducials.p_on is not None:
            continue
        hidden += 1
        report = model.analyze(ecg)
        if report.codes and report.codes[0] == "STACH":
            stach += 1
            criterion = next(s for s in report.statements if s.code == "STACH").evidence.criterion
            assert "on the preceding T wave" in criterion
            # no PR measured: never called normal (a long PR or pre-excitation unseen)
            assert "NORM" not in report.codes
            # (or abnormal for another finding: a seed named since the hump limit was
            # lowered has low QRS voltages)
            assert report.impression.endswith(
                (
                    "PR interval not assessed: the P wave's onset could not be measured.",
                    "Abnormal ECG.",
                )
            )
        assert not {"AFLT", "AFIB"} & set(report.codes)
    assert hidden >= 6 and stach >= hidden / 2


@pytest.mark.parametrize("seed", range(81, 91))
def test_regular_tachycardia_without_p_waves_has_no_p_wave_on_the_t_wave(seed: int) -> None:
    """The T wave's descent alone makes no hump. (Seed 84: locate_p takes the tail of
    a T wave whose peak it could not locate for a P wave; that is not this check's.)"""
    ecg, _ = rhythm_ecg(_fast_sinus(seed, 0.0))
    assert measure(ecg).p_wave_on_t is None
    assert not {"AFLT", "AFIB"} & set(model.analyze(ecg).codes)


def _large_flutter_at_two_to_one(seed: int) -> RhythmSpec:
    """Flutter at 260-290/min conducted 2:1 (130-145/min), waves 0.28 mV, drawn with
    this test's seeds."""
    rng = np.random.default_rng(seed)
    rate = round(rng.uniform(260, 290))
    morphology = SyntheticSpec(
        qrs_ms=round(rng.uniform(80, 100)),
        qt_ms=round(rng.uniform(380, 420)),
        qrs_axis_deg=round(rng.uniform(-20, 90)),
        t_axis_deg=round(rng.uniform(10, 70)),
    )
    return RhythmSpec(
        rhythm="atrial_flutter",
        rate_bpm=rate,
        flutter_conduction=2,
        f_wave_mv=0.28,
        noise_mv=0.01,
        seed=seed,
        morphology=morphology,
    )


@pytest.mark.parametrize("seed", [26, 38, 68, 75])
def test_large_flutter_waves_at_two_to_one_are_not_sinus_tachycardia(seed: int) -> None:
    """The flutter wave before the QRS looks like a P wave at a short PR; its copy one
    flutter cycle earlier stands inside the ST-T. A T direction read over the ST-T alone
    leaned onto that copy and removed it, and the strip was called sinus tachycardia.
    Read square to the wave before the QRS, the copy stays and 2:1 flutter is named."""
    report = model.analyze(rhythm_ecg(_large_flutter_at_two_to_one(seed))[0])
    assert "STACH" not in report.codes
    assert _aflt(report).evidence.values["conduction_ratio"] == 2
