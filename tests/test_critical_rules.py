"""Critical-result rules (routes.yaml `critical:`): each shipped default firing and not
firing on reports the engines produce (a real AF recording, synthetic ECGs analysed by
the rule engine, generated text read by the VLM engine's own parser), errors with key
and line, and hot reload."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import model
from gateway.routing import DEFAULT_RULES, Router, check_routes, critical_findings, load_routes
from model.report import EngineInfo, Measurements, Report, Statement
from model.rhythm_synthetic import RhythmSpec, rhythm_ecg
from model.synthetic import SyntheticSpec, synthetic_ecg
from model.vlm.report import Generation, waveform_report

VLM = EngineInfo(name="vlm", version="test")


def _fired(report: Report) -> list[str]:
    return [finding.rule for finding in critical_findings(DEFAULT_RULES, report)]


def _vlm_report(text: str) -> Report:
    """What the VLM engine reports for this generated text (its own parser, negation
    included), on the rule engine's measurements of a normal ECG."""
    measured = model.analyze(synthetic_ecg(SyntheticSpec()))
    return waveform_report(measured, Generation(text, 20, True), VLM, hybrid=False)


def test_real_atrial_fibrillation_at_118_per_minute_is_critical(shared_data: Path) -> None:
    report = model.analyze(model.load(shared_data / "wfdb-samples" / "muse-af.hea"))
    assert "AFIB" in report.codes and report.measurements.heart_rate_bpm > 110
    (finding,) = critical_findings(DEFAULT_RULES, report)
    assert finding.rule == "afib-flutter-rapid"
    assert finding.values == {
        "heart_rate_bpm": report.measurements.heart_rate_bpm,
        "codes": "AFIB",
    }


def test_real_sinus_rhythm_is_not_critical(shared_data: Path) -> None:
    report = model.analyze(model.load(shared_data / "wfdb-samples" / "muse-sinus.hea"))
    assert "SR" in report.codes
    assert _fired(report) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=130), ["afib-flutter-rapid"]),
        (RhythmSpec(rhythm="atrial_fibrillation", rate_bpm=90), []),
        (
            RhythmSpec(rhythm="atrial_flutter", rate_bpm=260, flutter_conduction=2, f_wave_mv=0.2),
            ["afib-flutter-rapid"],
        ),
        (
            RhythmSpec(rhythm="atrial_flutter", rate_bpm=300, flutter_conduction=4, f_wave_mv=0.15),
            [],
        ),
        (RhythmSpec(rate_bpm=60, morphology=SyntheticSpec(qt_ms=540)), ["qtc-500"]),
        (RhythmSpec(rate_bpm=60, morphology=SyntheticSpec(qt_ms=430)), []),
    ],
)
def test_rate_and_qtc_rules_on_engine_reports(spec: RhythmSpec, expected: list[str]) -> None:
    report = model.analyze(rhythm_ecg(spec)[0])
    assert _fired(report) == expected, (report.codes, report.measurements)


def test_wide_qrs_sinus_tachycardia_is_not_called_ventricular_tachycardia() -> None:
    report = model.analyze(synthetic_ecg(SyntheticSpec(heart_rate_bpm=150, qrs_ms=160, qt_ms=340)))
    assert report.measurements.qrs_ms >= 120 and report.measurements.heart_rate_bpm > 100
    assert "STACH" in report.codes
    assert _fired(report) == []


def test_wide_qrs_tachycardia_without_sinus_rhythm_is_critical() -> None:
    """No engine states ventricular tachycardia (no generator draws one either): the
    rule is the measured pattern, here a wide-QRS tachycardia the engine finds no sinus
    rhythm in."""
    report = Report(
        measurements=Measurements(heart_rate_bpm=168.0, qrs_ms=164.0),
        statements=[Statement(code="IVCD", text="IVCD")],
        engine=EngineInfo(name="measure", version="test"),
    )
    (finding,) = critical_findings(DEFAULT_RULES, report)
    assert finding.rule == "wide-complex-tachycardia"
    assert finding.values == {"heart_rate_bpm": 168.0, "qrs_ms": 164.0}
    narrow = report.model_copy(
        update={"measurements": Measurements(heart_rate_bpm=168.0, qrs_ms=118.0)}
    )
    assert _fired(narrow) == []
    unmeasured = report.model_copy(update={"measurements": Measurements(heart_rate_bpm=168.0)})
    assert _fired(unmeasured) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sinus rhythm. Complete heart block.", ["complete-heart-block"]),
        ("Sinus rhythm. First degree AV block.", []),
        ("Sinus rhythm. ST elevation in V2-V4.", ["st-elevation"]),
        ("Sinus rhythm. No ST elevation.", []),
    ],
)
def test_code_rules_on_vlm_engine_reports(text: str, expected: list[str]) -> None:
    assert _fired(_vlm_report(text)) == expected


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


BASE = """
destinations:
  outbox: {type: file, directory: out}
default: [outbox]
"""


def test_critical_section_errors_name_key_and_line(tmp_path: Path) -> None:
    routes = _write(
        tmp_path / "routes.yaml",
        BASE
        + """
critical:
  rules:
    - name: qt
      text: long
      measurements:
        qtc_ms: {ge: 500}
    - name: qt
      text: nothing
    - name: bounds
      text: no bound
      measurements:
        heart_rate_bpm: {}
  targets:
    pager: {type: webhook, url: not-a-url}
    mail: {type: smtp, host: mx, sender: gw, to: [ward@example.org]}
  notify: [pager, phone]
  escalate_after: soon
  escalate_to: []
  report_link: https://ecg/{patient}
""",
    )
    issues = {(issue.line, issue.where): issue.message for issue in check_routes(routes)}
    assert set(issues) == {
        (9, "critical.rules[0].measurements"),
        (11, "critical.rules[1]"),
        (11, "critical.rules[1].name"),
        (16, "critical.rules[2].measurements.heart_rate_bpm"),
        (18, "critical.targets.pager.url"),
        (19, "critical.targets.mail.sender"),
        (20, "critical.notify[1]"),
        (21, "critical.escalate_after"),
        (22, "critical.escalate_to"),
        (23, "critical.report_link"),
    }
    assert "unknown measurement qtc_ms" in issues[(9, "critical.rules[0].measurements")]
    assert "needs codes or measurements" in issues[(11, "critical.rules[1]")]
    assert issues[(11, "critical.rules[1].name")] == "rule name 'qt' is used twice"
    assert issues[(20, "critical.notify[1]")] == "unknown target 'phone'"
    assert "at least 1 item" in issues[(22, "critical.escalate_to")]  # no escalation is unsafe


def test_defaults_apply_without_a_section_and_an_empty_list_turns_them_off(
    tmp_path: Path,
) -> None:
    plain = load_routes(_write(tmp_path / "a.yaml", BASE))
    assert [rule.name for rule in plain.critical.active_rules] == [
        "afib-flutter-rapid",
        "qtc-500",
        "complete-heart-block",
        "wide-complex-tachycardia",
        "st-elevation",
    ]
    off = load_routes(_write(tmp_path / "b.yaml", BASE + "critical: {rules: []}\n"))
    assert off.critical.active_rules == []


def test_changed_rules_take_effect_on_reload_and_bad_ones_do_not(tmp_path: Path) -> None:
    path = _write(tmp_path / "routes.yaml", BASE)
    router = Router(path, tmp_path)
    sinus_60 = model.analyze(synthetic_ecg(SyntheticSpec(heart_rate_bpm=60)))
    assert critical_findings(router.config.critical.active_rules, sinus_60) == []
    _write(
        path,
        BASE
        + """
critical:
  rules:
    - {name: slow, text: Heart rate under 65/min, measurements: {heart_rate_bpm: {lt: 65}}}
""",
    )
    assert router.reload_if_changed()
    (finding,) = critical_findings(router.config.critical.active_rules, sinus_60)
    assert finding.rule == "slow" and finding.text == "Heart rate under 65/min"
    _write(path, BASE + "critical: {rules: [{name: broken, text: x}]}\n")
    assert not router.reload_if_changed()
    assert [r.name for r in router.config.critical.active_rules] == ["slow"]


def test_routes_test_shows_the_critical_rules_met(shared_data: Path, capsys) -> None:
    from gateway.cli import main

    example = Path(__file__).resolve().parent.parent / "config" / "routes.example.yaml"
    af = str(shared_data / "wfdb-samples" / "muse-af.hea")
    assert main(["routes", "test", af, "-r", str(example)]) == 0
    assert "critical:    afib-flutter-rapid -> pager" in capsys.readouterr().out
    sinus = str(shared_data / "wfdb-samples" / "muse-sinus.hea")
    assert main(["routes", "test", sinus, "-r", str(example)]) == 0
    assert "critical:    -\n" in capsys.readouterr().out
