"""Rule statements on synthetic ECGs built to meet (or miss) each criterion."""

from __future__ import annotations

from pathlib import Path

import pytest

import model
from model.measure import measure
from model.scp_statements import STATEMENTS
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


def test_left_axis_deviation() -> None:
    codes = _codes(SyntheticSpec(qrs_axis_deg=-50, r_mv=2.0))
    assert codes == ["SR", "LAD"]


def test_statement_carries_code_text_snomed_and_evidence() -> None:
    statements = interpret(measure(synthetic_ecg(SyntheticSpec(pr_ms=240))))
    block = next(s for s in statements if s.code == "1AVB")
    assert block.text == "First degree AV block"
    assert block.snomed == "270492004"
    assert block.evidence.criterion == "PR > 200 ms"
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
    for code in EMITTED_CODES:
        assert code in STATEMENTS
        if code != "NORM":
            assert STATEMENTS[code].snomed, code


@pytest.mark.parametrize("rate, expected", [(55, "SBRAD"), (64, "SR"), (96, "SR"), (106, "STACH")])
def test_sinus_rate_limits_are_the_aha_ones(rate: int, expected: str) -> None:
    """Below 60/min bradycardia, above 100/min tachycardia (AHA/ACCF/HRS 2009)."""
    assert _codes(SyntheticSpec(heart_rate_bpm=rate, qt_ms=320))[0] == expected


@pytest.mark.parametrize("record", ["6", "12", "71"])
def test_ludb_sinus_bradycardia_at_51_to_57_per_min(shared_data: Path, record: str) -> None:
    """LUDB's cardiologists call these sinus bradycardia; the 2018 50/min limit missed them."""
    ecg = model.load(shared_data / "ludb" / "data" / record)
    statements = interpret(measure(ecg))
    assert statements[0].code == "SBRAD"
    assert 50 <= statements[0].evidence.values["heart_rate_bpm"] < 60
