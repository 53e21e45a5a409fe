"""Serial comparison (model/serial_comparison.py): each kind of statement, each threshold
at its edge, and the reports a page without statements cannot contradict."""

from __future__ import annotations

import pytest

from model.report import EngineInfo, Measurements, Report, Statement
from model.serial_comparison import ComparisonThresholds, Prior, compare

UID = "1.2.3.4"


def _report(codes: list[str], **values: float | None) -> Report:
    return Report(
        measurements=Measurements(**values),
        statements=[Statement(code=code, text=code) for code in codes],
        engine=EngineInfo(name="measure", version="test"),
    )


def _codes(current: Report, prior: Report, **limits: float) -> list[tuple] | None:
    comparison = compare(current, Prior(prior, UID), ComparisonThresholds(**limits))
    if comparison is None:
        return None
    assert comparison.prior_sop_instance_uid == UID
    return [(s.code, s.current, s.prior) for s in comparison.statements]


@pytest.mark.parametrize(
    ("current", "prior", "expected"),
    [
        (["AFIB"], ["SR"], [("NEW_RHYTHM", "AFIB", "SR"), ("RESOLVED_RHYTHM", "AFIB", "SR")]),
        (
            ["SR", "1AVB"],
            ["AFLT"],
            [("NEW_RHYTHM", "SR", "AFLT"), ("RESOLVED_RHYTHM", "SR", "AFLT")],
        ),
        # sinus variants are one rhythm: the heart rate says the rest
        (["STACH"], ["SR"], [("NO_CHANGE", None, None)]),
        (["SBRAD", "SARRH"], ["SR"], [("NO_CHANGE", None, None)]),
        (
            ["PACE"],
            ["SR", "CLBBB"],
            [
                ("NEW_RHYTHM", "PACE", "SR"),
                ("RESOLVED_RHYTHM", "PACE", "SR"),
                ("RESOLVED_BBB", None, "CLBBB"),
            ],
        ),
        (["SR", "CLBBB"], ["SR"], [("NEW_BBB", "CLBBB", None)]),
        (
            ["SR", "CRBBB"],
            ["SR", "IRBBB"],
            [("NEW_BBB", "CRBBB", "IRBBB"), ("RESOLVED_BBB", "CRBBB", "IRBBB")],
        ),
        (["SR", "IRBBB"], ["SR", "IRBBB"], [("NO_CHANGE", None, None)]),
        # a prior without statements or measurements (a received page): no comparison
        (["AFIB", "CLBBB"], [], None),
        # no rhythm stated in one of them: no rhythm change claimed
        (["CLBBB"], ["SR"], [("NEW_BBB", "CLBBB", None)]),
    ],
)
def test_statement_changes(current, prior, expected):
    assert _codes(_report(current), _report(prior)) == expected


@pytest.mark.parametrize(
    ("key", "limit_key", "limit", "current", "prior", "expected"),
    [
        ("heart_rate_bpm", "heart_rate_bpm", 20, 95.0, 75.0, ("RATE_INCREASED", 95.0, 75.0)),
        ("heart_rate_bpm", "heart_rate_bpm", 20, 94.9, 75.0, None),
        ("heart_rate_bpm", "heart_rate_bpm", 20, 55.0, 75.0, ("RATE_DECREASED", 55.0, 75.0)),
        ("qtc_fridericia_ms", "qtc_ms", 60, 500.0, 440.0, ("QTC_INCREASED", 500.0, 440.0)),
        ("qtc_fridericia_ms", "qtc_ms", 60, 499.0, 440.0, None),
        ("qtc_fridericia_ms", "qtc_ms", 30, 410.0, 440.0, ("QTC_DECREASED", 410.0, 440.0)),
        # Bazett is not compared unless chosen
        ("qtc_bazett_ms", "qtc_ms", 60, 560.0, 440.0, None),
        ("qrs_axis_deg", "qrs_axis_deg", 45, 15.0, 60.0, ("AXIS_SHIFT", 15.0, 60.0)),
        ("qrs_axis_deg", "qrs_axis_deg", 45, 16.0, 60.0, None),
        # across +-180: 20 degrees apart, not 340
        ("qrs_axis_deg", "qrs_axis_deg", 45, -170.0, 170.0, None),
        ("qrs_axis_deg", "qrs_axis_deg", 15, -170.0, 170.0, ("AXIS_SHIFT", -170.0, 170.0)),
        # not measured on one side: no claim
        ("heart_rate_bpm", "heart_rate_bpm", 20, None, 75.0, None),
    ],
)
def test_measurement_thresholds(key, limit_key, limit, current, prior, expected):
    found = _codes(
        _report(["SR"], **{key: current}), _report(["SR"], **{key: prior}), **{limit_key: limit}
    )
    assert found == [expected] if expected else found == [("NO_CHANGE", None, None)]


def test_bazett_when_configured():
    current, prior = _report(["SR"], qtc_bazett_ms=520.0), _report(["SR"], qtc_bazett_ms=450.0)
    comparison = compare(current, Prior(prior, UID), ComparisonThresholds(qtc="bazett"))
    (statement,) = comparison.statements
    assert statement.code == "QTC_INCREASED"
    assert "Bazett" in statement.text and "450 -> 520 ms" in statement.text


def test_text_carries_both_values():
    comparison = compare(
        _report(["AFIB"], heart_rate_bpm=130.0), Prior(_report(["SR"], heart_rate_bpm=70.0), UID)
    )
    texts = [s.text for s in comparison.statements]
    assert texts == [
        "Atrial fibrillation is new (previously sinus rhythm)",
        "Sinus rhythm is no longer present (now atrial fibrillation)",
        "Heart rate increased by 60/min (70 -> 130/min)",
    ]


def test_thresholds_refuse_nonsense():
    with pytest.raises(ValueError, match="qtc_ms"):
        ComparisonThresholds(qtc_ms=0)


def test_gateway_yaml_comparison_errors_name_key_and_line(tmp_path):
    from gateway.config import ConfigError, load_config

    path = tmp_path / "gateway.yaml"
    path.write_text(
        "workers: 1\ncomparison:\n  thresholds:\n    qtc_ms: -5\n  archive: {host: pacs}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "line 4: comparison.thresholds.qtc_ms" in message
    assert "line 5: comparison.archive.port" in message


def test_no_change_names_what_was_compared():
    current = _report(["SR"], heart_rate_bpm=72.0, qtc_fridericia_ms=420.0)
    prior = _report(["SR"], heart_rate_bpm=70.0, qtc_fridericia_ms=415.0)
    (statement,) = compare(current, Prior(prior, UID)).statements
    assert statement.text == (
        "No change beyond the comparison thresholds in rhythm, bundle branch block, QTc, heart rate"
    )
    page = _report([], heart_rate_bpm=71.0)  # a page read without a model: a rate, no codes
    (statement,) = compare(current, Prior(page, UID)).statements
    assert statement.text == "No change beyond the comparison thresholds in heart rate"
