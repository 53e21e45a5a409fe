"""Rule statements on synthetic ECGs built to meet (or miss) each criterion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import model
from model.beats import label_beats
from model.measure import EcgMeasurement, measure
from model.measure.rhythm import analyse_rhythm
from model.rhythm_statements import rhythm_statements
from model.scp_statements import STATEMENTS
from model.statement_limits import DEFAULT_LIMITS
from model.statements import EMITTED_CODES, NORMAL_RHYTHM_CODES, interpret
from model.synthetic import SyntheticSpec, synthetic_ecg


def _codes(spec: SyntheticSpec, sex: str | None = None) -> list[str]:
    return [s.code for s in interpret(measure(synthetic_ecg(spec)), sex=sex)]


@pytest.mark.parametrize(
    "spec, expected",
    [
        (SyntheticSpec(), ["SR", "NORM"]),
        (SyntheticSpec(heart_rate_bpm=44), ["SBRAD", "NORM"]),
        (SyntheticSpec(heart_rate_bpm=120, pr_ms=140, qt_ms=300), ["STACH", "NORM"]),
        (SyntheticSpec(rhythm="atrial_fibrillation", seed=3), ["AFIB"]),
        (SyntheticSpec(pvc_beats=(4,)), ["SR", "PVC"]),
        (SyntheticSpec(pr_ms=240), ["SR", "1AVB"]),
        (SyntheticSpec(qrs_axis_deg=120), ["SR", "RAD"]),
        (SyntheticSpec(r_mv=3.0), ["SR", "LVH"]),
        (SyntheticSpec(r_mv=0.35, p_mv=0.08, t_mv=0.12), ["SR", "LVOLT"]),
        (SyntheticSpec(qt_ms=480), ["SR", "LNGQT"]),
        (SyntheticSpec(qrs_ms=130), ["SR", "IVCD"]),
    ],
    ids=[
        "normal",
        "brady",
        "tachy",
        "afib",
        "pvc",
        "1avb",
        "rad",
        "lvh",
        "lowvolt",
        "longqt",
        "ivcd",
    ],
)
def test_each_criterion_fires_alone(spec: SyntheticSpec, expected: list[str]) -> None:
    assert _codes(spec) == expected


def test_pre_excitation_explains_the_wide_qrs() -> None:
    """Short PR with a wide QRS is WPW; the accessory pathway, not a bundle branch or
    fascicle, widens that QRS, so no IVCD (or BBB, LVH) is stated beside it."""
    spec = SyntheticSpec(pr_ms=100, p_duration_ms=80, qrs_ms=130)
    statements = interpret(measure(synthetic_ecg(spec)))
    assert [s.code for s in statements] == ["SR", "WPW"]
    assert statements[1].evidence.values["pr_ms"] < 120
    assert statements[1].evidence.values["qrs_ms"] >= 110


def test_left_axis_deviation() -> None:
    codes = _codes(SyntheticSpec(qrs_axis_deg=-50, r_mv=2.0))
    assert codes == ["SR", "LAD"]


def test_statement_carries_code_text_snomed_and_evidence() -> None:
    statements = interpret(measure(synthetic_ecg(SyntheticSpec(pr_ms=240))))
    block = next(s for s in statements if s.code == "1AVB")
    assert block.text == "First degree AV block"
    assert block.snomed == "270492004"
    assert block.evidence.criterion == "PR >= 220 ms"
    assert block.evidence.values["pr_ms"] == pytest.approx(240, abs=4)


def test_norm_only_when_nothing_abnormal() -> None:
    for spec in (SyntheticSpec(pr_ms=240), SyntheticSpec(r_mv=3.0), SyntheticSpec(qt_ms=480)):
        assert "NORM" not in _codes(spec)
    statements = interpret(measure(synthetic_ecg(SyntheticSpec())))
    assert statements[-1].code == "NORM"
    assert {s.code for s in statements[:-1]} <= NORMAL_RHYTHM_CODES


def test_cornell_limit_depends_on_sex() -> None:
    """R(aVL) + S(V3) between the women's (2.0) and the men's (2.8 mV) Cornell limits."""
    spec = SyntheticSpec(qrs_axis_deg=-20, r_mv=1.9)
    assert "LVH" in _codes(spec, sex="F")
    assert "LVH" not in _codes(spec, sex="M")
    assert "LVH" not in _codes(spec)  # unknown sex: the men's limit, never more LVH


def test_long_qt_limit_depends_on_sex() -> None:
    spec = SyntheticSpec(qt_ms=420, heart_rate_bpm=75)  # QTc Fridericia 452 ms
    assert "LNGQT" in _codes(spec, sex="M")
    assert "LNGQT" not in _codes(spec, sex="F")


def test_no_statements_without_a_measurable_ecg() -> None:
    measured = measure(synthetic_ecg(SyntheticSpec(noise_mv=0.6, seed=2)))
    assert interpret(measured) == []


def test_every_emitted_code_is_a_known_statement() -> None:
    """BIGU and TRIGU (SCP: origin unknown) carry the concept of their origin instead
    (tests/test_rhythm.py)."""
    for code in EMITTED_CODES:
        assert code in STATEMENTS
        if code not in ("NORM", "BIGU", "TRIGU"):
            assert STATEMENTS[code].snomed, code


@pytest.mark.parametrize(
    "rate, expected", [(46, "SBRAD"), (55, "SR"), (64, "SR"), (96, "SR"), (106, "STACH")]
)
def test_sinus_rate_limits(rate: int, expected: str) -> None:
    """Below 50/min bradycardia (ACC/AHA/HRS 2018), above 100/min tachycardia."""
    assert _codes(SyntheticSpec(heart_rate_bpm=rate, qt_ms=320))[0] == expected


@pytest.mark.parametrize(
    "record, expected", [("HR06002", "SBRAD"), ("HR06007", "SR"), ("HR06009", "SR")]
)
def test_ptbxl_cardiologists_rate_limit(shared_data: Path, record: str, expected: str) -> None:
    """PTB-XL ECGs in CinC 2021: 41/min coded sinus bradycardia, 53 and 56/min sinus rhythm."""
    ecg = model.load(shared_data / "cinc2021" / record)
    statements = interpret(measure(ecg))
    assert statements[0].code == expected
    assert statements[0].evidence.values["heart_rate_bpm"] < 60


def _without_p_waves(positions: list[int]) -> EcgMeasurement:
    """A measurement with these beats (all of the dominant shape) and no P wave found."""
    beats = label_beats(np.array(positions), np.ones(len(positions), dtype=bool))
    no_signal = np.zeros((12, 1))
    rhythm = analyse_rhythm(no_signal, np.arange(8), beats, no_signal, None, None)
    measured = EcgMeasurement(beats=beats, rhythm=rhythm)
    measured.values.heart_rate_bpm = 70
    measured.null_reasons["pr_ms"] = "no consistent P wave"
    return measured


def test_premature_beats_alone_are_not_atrial_fibrillation() -> None:
    """Regular beats with two premature ones: the RR is irregular, the normal beats' is not."""
    regular = [430 * i for i in range(12)]
    regular[4] -= 150
    regular[8] -= 150
    assert rhythm_statements(_without_p_waves(regular), DEFAULT_LIMITS) == []


# PTB-XL 269's RR intervals (ms): sinus rhythm with a respiratory swing and one
# premature atrial beat (538 ms, then the pause).
PTBXL_269_RR_MS = [818, 784, 746, 720, 700, 768, 846, 768, 674, 538, 1002, 826]


def test_rr_differences_across_a_premature_beat_are_not_successive() -> None:
    """The interval after the pause follows the one before the premature beat in the
    normal-to-normal list, but not in time: their difference is no beat-to-beat change."""
    positions = [0, *np.cumsum(np.array(PTBXL_269_RR_MS) // 2)]
    measured = _without_p_waves(positions)
    assert list(measured.beats.labels).count("N") == len(positions) - 1
    assert rhythm_statements(measured, DEFAULT_LIMITS) == []


def test_irregular_normal_beats_without_p_waves_are_atrial_fibrillation() -> None:
    rr = np.random.default_rng(4).uniform(340, 560, 14)
    statements = rhythm_statements(
        _without_p_waves([0, *np.cumsum(rr).astype(int)]), DEFAULT_LIMITS
    )
    assert [s.code for s in statements] == ["AFIB"]
    assert statements[0].evidence.values["normal_to_normal_rmssd_normalised"] > 0.08


@pytest.mark.parametrize("record", ["38", "44", "96", "112", "129"])
def test_ludb_atrial_fibrillation(shared_data: Path, record: str) -> None:
    """Where most beats come early (44, 112, 129) few intervals between non-premature
    beats are left, and the premature beats' timing or number decides; LUDB 38's
    median 'P wave' points up and right, which no sinus P wave does."""
    statements = interpret(measure(model.load(shared_data / "ludb" / "data" / record)))
    afib = statements[0]
    assert afib.code == "AFIB"
    assert afib.evidence.values["rr_rmssd_normalised"] > 0.08
    assert "without consistent P waves" in afib.evidence.criterion


def test_sinus_rhythm_with_tremor_and_a_premature_beat_is_not_atrial_fibrillation(
    shared_data: Path,
) -> None:
    """PTB-XL 269 (sinus rhythm, a premature atrial beat, tremor): the tremor hides the
    P waves' beat-to-beat likeness, but the normal beats' rhythm is regular."""
    ecg = model.load(shared_data / "ptbxl" / "records500" / "00000" / "00269_hr")
    assert "AFIB" not in [s.code for s in interpret(measure(ecg))]
