"""Premature atrial and ventricular beats in turn after the sinus beats (N A N V N A N A
N V ...): a bigeminal (or trigeminal) pattern of mixed origin, which SCP's BIGU / TRIGU
name ("unknown origin, SV or Ventricular"), each origin's count in the evidence
(docs/measurement.md 3.36). On 76977e2 no pattern, or one origin's, was named. A pattern
of one origin keeps its own words and SNOMED CT concept; premature beats that do not
alternate with the sinus beats name none. Strips from test seeds.
"""

from __future__ import annotations

import json

import pytest

import model
from model.ectopy_statements import pattern_statements
from model.measure.rhythm import RhythmAnalysis, ectopic_pattern
from model.report import Report, Statement
from model.report_text import interpretation_lines
from model.rhythm_synthetic import RhythmSpec, RhythmTruth, rhythm_ecg

MIXED_BIGEMINY = "Bigeminal pattern of premature atrial and ventricular complexes"
MIXED_TRIGEMINY = "Trigeminal pattern of premature atrial and ventricular complexes"


def _read(spec: RhythmSpec) -> tuple[Report, RhythmTruth]:
    ecg, truth = rhythm_ecg(spec)
    return model.analyze(ecg), truth


def _statement(report: Report, code: str) -> Statement:
    found = [s for s in report.statements if s.code == code]
    assert found, f"no {code} in {report.codes}: {report.impression}"
    return found[0]


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ("NANVNANAN", ("bigeminy", "AVAA")),
        # A ventricular bigeminy of three inside a longer run with PACs: the longest run.
        ("NANVNVNVNANN", ("bigeminy", "AVVVA")),
        ("NVNVNVNN", ("bigeminy", "VVV")),
        ("NNANNVNNANNN", ("trigeminy", "AVA")),
        # Premature beats that do not alternate with the sinus beats three times running.
        ("NANVNNANNVNNNA", (None, "")),
    ],
)
def test_the_pattern_is_the_longest_run_whatever_its_origins(
    classes: str, expected: tuple[str | None, str]
) -> None:
    assert ectopic_pattern(list(classes)) == expected


@pytest.mark.parametrize(
    ("seed", "rate"), [(11, 65.0), (23, 85.0), (37, 65.0), (58, 75.0), (101, 85.0)]
)
def test_mixed_bigeminy_is_named_with_each_origins_count(seed: int, rate: float) -> None:
    """Every other beat premature, atrial or ventricular at random (both drawn)."""
    spec = RhythmSpec(
        rate_bpm=rate, pattern="bigeminy", pattern_origin="mixed", noise_mv=0.01, seed=seed
    )
    report, truth = _read(spec)
    assert {"SR", "PAC", "PVC", "BIGU"} <= set(report.codes), report.impression
    pattern = _statement(report, "BIGU")
    assert pattern.text == MIXED_BIGEMINY
    assert pattern.snomed is None  # no SNOMED CT concept names a mixed bigeminy
    values = pattern.evidence.values
    # The whole strip is the pattern: its counts are the strip's.
    assert (
        values["atrial_premature"]
        == truth.count("A")
        == _statement(report, "PAC").evidence.values["count"]
    )
    assert (
        values["ventricular_premature"]
        == truth.count("V")
        == _statement(report, "PVC").evidence.values["count"]
    )
    assert values["cycles"] == truth.count("A") + truth.count("V")
    assert f"{MIXED_BIGEMINY}." in report.impression
    assert "Atrial bigeminy" not in report.impression
    assert "Ventricular bigeminy" not in report.impression


@pytest.mark.parametrize(("seed", "rate"), [(14, 85.0), (29, 75.0), (62, 85.0), (88, 75.0)])
def test_mixed_trigeminy_is_named_with_each_origins_count(seed: int, rate: float) -> None:
    spec = RhythmSpec(
        rate_bpm=rate, pattern="trigeminy", pattern_origin="mixed", noise_mv=0.01, seed=seed
    )
    report, truth = _read(spec)
    assert "TRIGU" in report.codes and "BIGU" not in report.codes, report.impression
    pattern = _statement(report, "TRIGU")
    assert pattern.text == MIXED_TRIGEMINY
    assert pattern.snomed is None
    assert pattern.evidence.values["atrial_premature"] == truth.count("A")
    assert pattern.evidence.values["ventricular_premature"] == truth.count("V")


def test_the_report_json_and_the_printed_lines_say_the_same() -> None:
    """The statement the report JSON carries, the printout's and HL7 notes' lines and the
    impression agree: code, words, counts; SNOMED CT left out (FHIR and DICOM SR then
    give the text alone, never another concept)."""
    spec = RhythmSpec(
        rate_bpm=75.0, pattern="bigeminy", pattern_origin="mixed", noise_mv=0.01, seed=47
    )
    report, truth = _read(spec)
    stored = json.loads(report.model_dump_json())
    [pattern] = [s for s in stored["statements"] if s["code"] == "BIGU"]
    assert pattern["text"] == MIXED_BIGEMINY and pattern["snomed"] is None
    assert pattern["evidence"]["values"]["atrial_premature"] == truth.count("A")
    assert pattern["evidence"]["values"]["ventricular_premature"] == truth.count("V")
    counts = {s["code"]: s["evidence"]["values"].get("count") for s in stored["statements"]}
    assert counts["PAC"] == truth.count("A") and counts["PVC"] == truth.count("V")
    assert f"{MIXED_BIGEMINY} (BIGU)" in interpretation_lines(report)
    assert stored["impression"] == report.impression


@pytest.mark.parametrize(
    ("pattern", "origin", "text", "snomed"),
    [
        ("bigeminy", "atrial", "Atrial bigeminy", "251173003"),
        ("bigeminy", "ventricular", "Ventricular bigeminy", "11157007"),
        ("trigeminy", "ventricular", "Ventricular trigeminy", "251180001"),
        ("trigeminy", "atrial", "Atrial trigeminy", None),
    ],
)
@pytest.mark.parametrize("seed", [19, 53])
def test_a_pattern_of_one_origin_keeps_its_own_words(
    pattern: str, origin: str, text: str, snomed: str | None, seed: int
) -> None:
    spec = RhythmSpec(
        rate_bpm=75.0, pattern=pattern, pattern_origin=origin, noise_mv=0.01, seed=seed
    )
    report, _ = _read(spec)
    statement = _statement(report, "BIGU" if pattern == "bigeminy" else "TRIGU")
    assert (statement.text, statement.snomed) == (text, snomed)
    assert set(statement.evidence.values) == {"cycles"}


@pytest.mark.parametrize("seed", [21, 43, 57, 100])
def test_premature_beats_that_do_not_alternate_name_no_pattern(seed: int) -> None:
    """10 % PACs and 10 % PVCs at random: both named, no pattern drawn or named."""
    spec = RhythmSpec(rate_bpm=75.0, pac_fraction=0.1, pvc_fraction=0.1, noise_mv=0.01, seed=seed)
    report, truth = _read(spec)
    assert not truth.codes & {"BIGU", "TRIGU"}
    assert {"PAC", "PVC"} <= set(report.codes), report.impression
    assert not set(report.codes) & {"BIGU", "TRIGU"}, report.impression


def _analysis(classes: str) -> RhythmAnalysis:
    pattern, beats = ectopic_pattern(list(classes))
    return RhythmAnalysis(
        classes=tuple(classes),
        p_waves=0,
        dominant_beats=classes.count("N"),
        nn_irregularity=None,
        nn_intervals=0,
        coupling_spread=None,
        compensatory_pauses=0,
        pattern=pattern,
        pattern_beats=beats,
    )


def test_supraventricular_pattern_and_outside_sinus_rhythm_the_pvcs_alone() -> None:
    """Atrial and junctional premature beats in turn: a supraventricular bigeminy (the
    "junctional" ones mostly PACs whose P wave was not found). Where no sinus rhythm is
    named (atrial fibrillation, a rhythm undetermined) an early beat of the dominant
    shape is no premature atrial beat: 'A' and 'V' in turn make no pattern there, and
    PVCs every other beat still make a ventricular one."""
    assert [s.text for s in pattern_statements(_analysis("NANVNANV"), sinus=True)] == [
        MIXED_BIGEMINY
    ]
    assert pattern_statements(_analysis("NANVNANV"), sinus=False) == []
    [supraventricular] = pattern_statements(_analysis("NANJNANJ"), sinus=True)
    assert (supraventricular.text, supraventricular.snomed) == (
        "Supraventricular bigeminy",
        "251168009",
    )
    [ventricular] = pattern_statements(_analysis("NANVNVNVNA"), sinus=False)
    assert (ventricular.text, ventricular.evidence.values) == (
        "Ventricular bigeminy",
        {"cycles": 3},
    )


@pytest.mark.parametrize("pattern", ["bigeminy", "trigeminy"])
@pytest.mark.parametrize("seed", [12, 76])
def test_a_mixed_pattern_is_drawn_with_both_origins_and_its_truth(pattern: str, seed: int) -> None:
    """The generator's mixed pattern: every second (third) beat premature, atrial or
    ventricular, both in every strip; the truth names the pattern with both kinds."""
    _, truth = rhythm_ecg(RhythmSpec(pattern=pattern, pattern_origin="mixed", seed=seed))
    every = 2 if pattern == "bigeminy" else 3
    premature = truth.beats[every - 1 :: every]
    assert set(premature) == {"A", "V"}
    assert {b for i, b in enumerate(truth.beats) if i % every != every - 1} == {"N"}
    assert {"PAC", "PVC", "BIGU" if every == 2 else "TRIGU"} <= truth.codes
