"""Reading generated report text: statements and codes, impression, stated numbers, and the
consistency warnings against measurements. No model needed: the texts are written here
or built by training/targets.py from real PTB-XL labels."""

from __future__ import annotations

from pathlib import Path

import pytest

import model
from model.report import Measurements, Statement
from model.vlm.findings import find_statements
from model.vlm.parse import (
    impression,
    omitted_rule_warnings,
    parse_generated_text,
    stated_values,
    statement_warnings,
    value_warnings,
)
from model.vlm.prompt import measurement_phrases, report_prompt

TARGET_STYLE = """Rhythm: sinus rhythm.
Conduction: first degree AV block; probable left anterior fascicular block.
Axis: left axis deviation.
ST-T: non-specific ST changes.
Interpretation: abnormal ECG.
Measurements: heart rate 72 bpm; PR 230 ms; QRS 98 ms; QT 400 ms; QTc (Bazett) 438 ms; P axis 45°; QRS axis -52°; T axis 30°."""

MEASURED = Measurements(
    heart_rate_bpm=72,
    pr_ms=228,
    qrs_ms=96,
    qt_ms=398,
    qtc_bazett_ms=436,
    qtc_fridericia_ms=425,
    p_axis_deg=47,
    qrs_axis_deg=-50,
    t_axis_deg=33,
)


def codes(text: str) -> list[str]:
    return [s.code for s in find_statements(text)]


def test_training_target_format_is_read_back_line_by_line():
    parsed = parse_generated_text(TARGET_STYLE)
    assert parsed.codes == ["SR", "1AVB", "LAFB", "LAD", "NST_"]
    lafb = parsed.statements[2]
    assert lafb.hedge == "probable"
    assert lafb.statement_text() == "Probable left anterior fascicular block"
    assert parsed.impression.startswith("Rhythm: sinus rhythm. Conduction: first degree AV block")
    assert "Measurements" not in parsed.impression and "72 bpm" not in parsed.impression
    assert parsed.impression.endswith("Interpretation: abnormal ECG.")


def test_every_ptbxl_target_gives_back_its_codes(shared_data: Path):
    """The texts the model is trained on (training/targets.py) parse to their own labels."""
    pd = pytest.importorskip("pandas")
    from training.targets import load_scp_statements, parse_scp_codes, report_target

    statements = load_scp_statements(shared_data / "ptbxl" / "scp_statements.csv")
    table = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv", index_col=0)
    axis_codes = {"LAD": "LAD", "ALAD": "LAD", "AXL": "LAD", "RAD": "RAD", "ARAD": "RAD"}
    mismatches = []
    for ecg_id, row in table.iterrows():
        scp_codes = parse_scp_codes(row.scp_codes)
        axis = row.heart_axis if isinstance(row.heart_axis, str) else None
        text = report_target(scp_codes, axis, MEASURED, statements)
        expected = set(scp_codes) | ({axis_codes[axis]} if axis in axis_codes else set())
        if set(codes(text)) != expected:
            mismatches.append((ecg_id, sorted(expected), codes(text)))
    assert len(table) >= 400
    assert mismatches == []


def test_hedges_are_kept_in_the_statement_text():
    found = find_statements("Cannot rule out anterior infarct. Possible LVH. Sinus rhythm.")
    assert [(f.code, f.hedge) for f in found] == [
        ("AMI", "possible"),
        ("LVH", "possible"),
        ("SR", None),
    ]
    assert found[0].statement_text() == "Possible anterior myocardial infarction"


def test_each_code_once_in_order_of_first_mention():
    assert codes("Atrial fibrillation. LBBB. Atrial fibrillation again, AF.") == ["AFIB", "CLBBB"]


def test_stated_numbers_in_target_and_cart_styles():
    values = {(v.key, v.value) for v in stated_values(TARGET_STYLE)}
    assert values == {
        ("heart_rate_bpm", 72),
        ("pr_ms", 230),
        ("qrs_ms", 98),
        ("qt_ms", 400),
        ("qtc_bazett_ms", 438),
        ("p_axis_deg", 45),
        ("qrs_axis_deg", -52),
        ("t_axis_deg", 30),
    }
    cart = "Vent. rate 61 BPM, PR interval 180 ms, QRS duration 88 ms, QT/QTc 402/405 ms, axis −12°"
    assert {(v.key, v.value) for v in stated_values(cart)} == {
        ("heart_rate_bpm", 61),
        ("pr_ms", 180),
        ("qrs_ms", 88),
        ("qt_ms", 402),
        (None, 405),
        ("qrs_axis_deg", -12),
    }
    unmeasured = "QRS axis not measurable; left axis deviation; P axis not measurable"
    assert stated_values(unmeasured) == []


def test_numbers_that_agree_within_tolerance_give_no_warning():
    assert value_warnings(stated_values(TARGET_STYLE), MEASURED, {}) == []


def test_contradicting_numbers_are_flagged_and_name_both_values():
    text = "Sinus rhythm, heart rate 110 bpm. PR 160 ms. QTc 520 ms. QRS axis 75°."
    warnings = value_warnings(stated_values(text), MEASURED, {})
    assert len(warnings) == 4
    assert "heart rate 110 bpm but heart rate was measured at 72 bpm" in warnings[0]
    assert "PR 160 ms but PR was measured at 228 ms" in warnings[1]
    assert "QTc 520 ms" in warnings[2] and "436 ms" in warnings[2]
    assert "QRS axis 75° but QRS axis was measured at -50°" in warnings[3]
    assert all(w.startswith("consistency:") and "measured value" in w for w in warnings)


def test_unspecified_qtc_agrees_with_either_formula():
    assert value_warnings(stated_values("QTc 426 ms"), MEASURED, {}) == []


def test_number_for_an_unmeasurable_value_is_flagged_with_the_reason():
    measured = MEASURED.model_copy(update={"pr_ms": None})
    warnings = value_warnings(
        stated_values("PR 180 ms"), measured, {"pr_ms": "no P waves (atrial fibrillation)"}
    )
    assert warnings == [
        (
            "consistency: the text gives PR 180 ms but it was not measured "
            "(no P waves (atrial fibrillation)); the report leaves it empty"
        )
    ]


def test_statements_contradicted_by_measured_thresholds():
    found = find_statements("Sinus tachycardia. First degree AV block. Possible LBBB. LAD.")
    warnings = statement_warnings(found, MEASURED)
    assert len(warnings) == 1 and "sinus tachycardia" in warnings[0] and "72 bpm" in warnings[0]
    slow = MEASURED.model_copy(update={"pr_ms": 150, "qrs_axis_deg": 40})
    warnings = statement_warnings(found, slow)
    assert [w.split("'")[1] for w in warnings] == [
        "sinus tachycardia",
        "first degree av block",
        "left axis deviation",
    ]


def test_hybrid_omissions_name_the_rule_statement():
    rules = [
        Statement(code="SR", text="Sinus rhythm"),
        Statement(code="1AVB", text="First degree AV block"),
    ]
    assert omitted_rule_warnings(find_statements("Sinus rhythm."), rules) == [
        "consistency: the text leaves out the rule statement 'First degree AV block' (1AVB)"
    ]


def test_impression_of_free_text_and_of_measurements_only():
    assert impression("  Sinus rhythm\nNormal ECG  ") == "Sinus rhythm. Normal ECG."
    assert impression("Measurements: heart rate 70 bpm.") == ""  # no interpretation in it
    assert impression("Sinus rhythm.\nctlatera\ufffdsentst\nAxis: normal axis.") == (
        "Sinus rhythm. Axis: normal axis."
    )


def test_hybrid_prompt_carries_the_measured_values_of_a_real_ecg(shared_data: Path):
    report = model.analyze(model.load(shared_data / "ptbxl/records500/00000/00001_hr"))
    prompt = report_prompt(report.measurements, report.statements)
    heart_rate = round(report.measurements.heart_rate_bpm)
    assert f"heart rate {heart_rate} bpm" in prompt
    assert all(phrase in prompt for phrase in measurement_phrases(report.measurements))
    assert all(s.text in prompt for s in report.statements)
    assert prompt.endswith(report_prompt())
    parsed_back = {(v.key, v.value) for v in stated_values(prompt)}
    assert ("heart_rate_bpm", heart_rate) in parsed_back
