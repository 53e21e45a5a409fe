"""Rhythm and ectopy statements, beat by beat, on synthetic rhythms with known truth
(model.rhythm_synthetic) and on real records whose labels are clear."""

from __future__ import annotations

from pathlib import Path

import pytest

import model
from model.beats import IRREGULAR_RMSSD
from model.measure import measure
from model.measure.rhythm import MAX_RR_LEVELS
from model.report import Report
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import SyntheticSpec, synthetic_ecg

SINUS = {"SR", "SBRAD", "STACH", "SARRH"}


def _analyze(spec: RhythmSpec) -> tuple[Report, object]:
    ecg, truth = rhythm_ecg(spec)
    return model.analyze(ecg), truth


def _statement(report: Report, code: str):
    return next(s for s in report.statements if s.code == code)


@pytest.mark.parametrize("rate", [55, 80, 110])
@pytest.mark.parametrize("fraction", [0.3, 0.4])
def test_sinus_rhythm_with_frequent_pacs_is_not_atrial_fibrillation(
    rate: int, fraction: float
) -> None:
    """The RR is irregular, but the non-premature beats keep their P waves and the
    premature ones come at one coupling: sinus rhythm with premature atrial complexes,
    each one counted."""
    report, truth = _analyze(
        RhythmSpec(rate_bpm=rate, pac_fraction=fraction, noise_mv=0.01, seed=rate)
    )
    assert not {"AFIB", "AFLT"} & set(report.codes)
    assert report.codes[0] in SINUS
    assert _statement(report, "PAC").evidence.values["count"] == truth.count("A")
    assert "premature atrial complexes" in report.impression


@pytest.mark.parametrize("amplitude", [0.02, 0.08, 0.2])
@pytest.mark.parametrize("seed", [1, 2])
def test_atrial_fibrillation_is_called(amplitude: float, seed: int) -> None:
    spec = RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=95, f_wave_mv=amplitude, seed=seed)
    report, _ = _analyze(spec)
    assert report.codes[0] == "AFIB"
    assert "PAC" not in report.codes  # an early beat in fibrillation is no premature atrial beat


def test_atrial_bigeminy_is_not_atrial_fibrillation() -> None:
    """No two non-premature beats in a row: the premature beats' fixed coupling and
    the equal pauses after them explain the irregular RR."""
    report, _ = _analyze(
        RhythmSpec(rate_bpm=75, pattern="bigeminy", pattern_origin="atrial", seed=3)
    )
    assert "AFIB" not in report.codes and report.codes[0] in SINUS
    bigeminy = _statement(report, "BIGU")
    assert bigeminy.text == "Atrial bigeminy" and bigeminy.snomed == "251173003"


def test_ventricular_bigeminy_keeps_the_conducted_beats_as_dominant() -> None:
    """Half the beats are premature ventricular ones, as alike among themselves as the
    conducted ones: the beats that do not come early are the conducted ones."""
    report, truth = _analyze(
        RhythmSpec(rate_bpm=55, pattern="bigeminy", pattern_origin="ventricular", seed=4)
    )
    assert report.codes[0] in SINUS
    assert _statement(report, "PVC").evidence.values["count"] == truth.count("V")
    bigeminy = _statement(report, "BIGU")
    assert bigeminy.text == "Ventricular bigeminy" and bigeminy.snomed == "11157007"
    assert "CRBBB" not in report.codes and "CLBBB" not in report.codes


def test_ventricular_trigeminy_and_compensatory_pauses() -> None:
    report, truth = _analyze(
        RhythmSpec(rate_bpm=70, pattern="trigeminy", pattern_origin="ventricular", seed=5)
    )
    pvc = _statement(report, "PVC")
    assert pvc.evidence.values["count"] == truth.count("V")
    assert pvc.evidence.values["compensatory_pauses"] >= truth.count("V") - 1
    assert _statement(report, "TRIGU").evidence.values["cycles"] >= 3


def test_junctional_premature_beats_have_no_atrial_wave_before_them() -> None:
    report, truth = _analyze(RhythmSpec(rate_bpm=70, pjc_fraction=0.2, seed=1))
    assert _statement(report, "PJC").evidence.values["count"] == truth.count("J")
    assert "PAC" not in report.codes


def test_flutter_with_4_to_1_conduction() -> None:
    spec = RhythmSpec(rhythm="atrial_flutter", rate_bpm=300, flutter_conduction=4, f_wave_mv=0.2)
    report, _ = _analyze(spec)
    assert report.codes[0] == "AFLT"
    assert abs(_statement(report, "AFLT").evidence.values["atrial_rate_per_min"] - 300) <= 10


@pytest.mark.parametrize("seed", range(3))
def test_flutter_with_2_to_1_conduction_is_flutter(seed: int) -> None:
    """Every flutter wave is locked to the QRS (tests/test_flutter.py has more)."""
    spec = RhythmSpec(rhythm="atrial_flutter", rate_bpm=280 + 10 * seed, f_wave_mv=0.2, seed=seed)
    report, _ = _analyze(spec)
    assert report.codes[0] == "AFLT"


@pytest.mark.parametrize(
    "spec",
    [
        RhythmSpec(av_block="mobitz1", rate_bpm=95, seed=1),
        RhythmSpec(av_block="mobitz1", rate_bpm=95, seed=2),
        RhythmSpec(rhythm="atrial_flutter", rate_bpm=260, flutter_conduction=0, f_wave_mv=0.15),
        RhythmSpec(rhythm="atrial_flutter", rate_bpm=300, flutter_conduction=0, f_wave_mv=0.15),
    ],
    ids=["mobitz1-1", "mobitz1-2", "flutter-variable-260", "flutter-variable-300"],
)
def test_grouped_beating_is_not_atrial_fibrillation(spec: RhythmSpec) -> None:
    """Wenckebach's 4:3 groups and flutter conducted 2:1 to 4:1 at random are irregular
    without a consistent P wave, but their RRs take only a few values (each one a
    multiple of the flutter cycle): regularly irregular, no fibrillation."""
    ecg, _ = rhythm_ecg(spec)
    measured = measure(ecg)
    assert measured.beats.irregularity() > IRREGULAR_RMSSD
    assert measured.rhythm.rr_levels <= MAX_RR_LEVELS
    assert "AFIB" not in model.analyze(ecg).codes


def test_heart_rate_with_three_beats() -> None:
    report = model.analyze(synthetic_ecg(SyntheticSpec(heart_rate_bpm=70), duration_s=3.2))
    assert report.measurements.heart_rate_bpm == 70


def test_heart_rate_kept_where_the_signal_allows_only_the_rhythm() -> None:
    """Coarse fibrillatory waves count as beat-to-beat noise: intervals, axes and
    voltages are not given, but the rate and the rhythm are, and no NORM."""
    spec = RhythmSpec(
        rhythm="atrial_fibrillation",
        rate_bpm=110,
        f_wave_mv=0.2,
        morphology=SyntheticSpec(r_mv=0.9),
    )
    found = model.analyze(rhythm_ecg(spec)[0])
    assert "the rhythm alone is judged" in found.null_reasons["qrs_ms"]
    assert found.codes[0] == "AFIB"
    assert found.measurements.heart_rate_bpm is not None and found.measurements.qt_ms is None
    assert "NORM" not in found.codes
    assert found.impression.endswith(
        "Intervals, axes and voltages not assessed: the signal is too noisy."
    )


def test_noise_taken_for_beats_gives_no_heart_rate() -> None:
    report = model.analyze(synthetic_ecg(SyntheticSpec(noise_mv=0.33, seed=1)))
    assert report.measurements.heart_rate_bpm is None
    assert "distinguishable from noise" in report.null_reasons["heart_rate_bpm"]


@pytest.mark.parametrize("pr, code", [(210, "LPR"), (245, "1AVB"), (180, None)])
def test_borderline_first_degree_av_block(pr: int, code: str | None) -> None:
    report = model.analyze(synthetic_ecg(SyntheticSpec(pr_ms=pr)))
    assert bool({"LPR", "1AVB"} & set(report.codes)) == (code is not None)
    if code == "LPR":
        assert _statement(report, "LPR").text == "Borderline first degree AV block"
    elif code:
        assert code in report.codes


# LUDB records whose cardiologists name single premature atrial beats in sinus rhythm
# (7, 60, 66, 78: "single pac"; 108: quadrigeminy, three in the strip).
@pytest.mark.parametrize("record, count", [("7", 1), ("60", 1), ("66", 1), ("78", 1), ("108", 3)])
def test_ludb_sinus_rhythm_with_premature_atrial_beats(
    shared_data: Path, record: str, count: int
) -> None:
    report = model.analyze(model.load(shared_data / "ludb" / "data" / record))
    assert report.codes[0] in SINUS
    assert _statement(report, "PAC").evidence.values["count"] == count
    assert "AFIB" not in report.codes


@pytest.mark.parametrize("record", ["105", "106"])
def test_ludb_sinus_rhythm_with_premature_ventricular_beats(shared_data: Path, record: str) -> None:
    report = model.analyze(model.load(shared_data / "ludb" / "data" / record))
    assert report.codes[0] in SINUS and "PVC" in report.codes


# LUDB sinus rhythms whose cardiologists name no extrasystole; each had a detection in
# the last 20 ms of the strip (no QRS window to compare) read as a premature ventricular beat.
@pytest.mark.parametrize("record", ["119", "124", "128", "130"])
def test_ludb_no_ventricular_beat_at_the_end_of_the_strip(shared_data: Path, record: str) -> None:
    report = model.analyze(model.load(shared_data / "ludb" / "data" / record))
    assert "PVC" not in report.codes


def test_a_spike_at_the_last_samples_is_no_beat() -> None:
    ecg = synthetic_ecg(SyntheticSpec(heart_rate_bpm=60))
    ecg.signal[:, -6:] += 1.5
    report = model.analyze(ecg)
    assert "PVC" not in report.codes
    assert measure(ecg).values.heart_rate_bpm == 60


@pytest.mark.parametrize(
    "rate, noise, pr, qrs, qt, p_axis, qrs_axis, t_axis, p_mv, seed",
    [
        (151, 0.026, 144, 81, 403, 28, 59, 31, 0.15, 15),
        (155, 0.013, 159, 91, 389, 41, 27, 47, 0.17, 17),
        (151, 0.023, 129, 83, 406, 67, 2, 23, 0.17, 23),
        (132, 0.02, 156, 88, 385, 21, 23, 33, 0.1, 29),
        # Nearly every other beat premature: two intervals between sinus beats, too few
        # to judge, but four compensatory pauses keep the sinus timing.
        (122, 0.014, 163, 91, 395, 64, 86, 18, 0.14, 86),
    ],
)
def test_sinus_tachycardia_with_mixed_ectopy_is_not_atrial_fibrillation(
    rate: int,
    noise: float,
    pr: int,
    qrs: int,
    qt: int,
    p_axis: int,
    qrs_axis: int,
    t_axis: int,
    p_mv: float,
    seed: int,
) -> None:
    """20 % PACs and 20 % PVCs at 122-155/min, the P waves lost in the T waves and the
    noise: the atrial and the ventricular focus each fire at their own coupling, and the
    PVCs' compensatory pauses keep the sinus timing. Pooled, the two couplings read as
    'no single focus' and the rhythm was called atrial fibrillation."""
    morphology = SyntheticSpec(
        pr_ms=pr,
        qrs_ms=qrs,
        qt_ms=qt,
        p_axis_deg=p_axis,
        qrs_axis_deg=qrs_axis,
        t_axis_deg=t_axis,
        p_mv=p_mv,
    )
    spec = RhythmSpec(
        rate_bpm=rate,
        pac_fraction=0.2,
        pvc_fraction=0.2,
        noise_mv=noise,
        wander_mv=0.2,
        seed=seed,
        morphology=morphology,
    )
    report, truth = _analyze(spec)
    assert {"PAC", "PVC"} <= truth.findings
    assert "AFIB" not in report.codes
    assert "PVC" in report.codes
