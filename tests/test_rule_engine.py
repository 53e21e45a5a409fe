"""model.analyze: the Report the rest of the gateway consumes, and the CLI around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import model
from gateway.cli import main
from gateway.cli.analyze import format_report
from model.report import MEASUREMENT_KEYS, Report
from model.synthetic import SyntheticSpec, synthetic_ecg


def test_report_shape_and_source() -> None:
    ecg = synthetic_ecg(SyntheticSpec(), sampling_rate=1000.0)
    report = model.analyze(ecg)
    assert isinstance(report, Report)
    assert report.status == "preliminary"
    assert report.engine.name == "measure" and report.engine.version
    assert report.source.kind == "ecg-waveform"
    assert report.source.format == "synthetic"
    assert report.source.leads == list(ecg.lead_names)
    assert report.source.sampling_rate_hz == 1000.0
    assert report.source.duration_s == pytest.approx(10.0)
    assert report.source.quality_flags == []
    restored = Report.model_validate_json(report.model_dump_json())
    assert restored.measurements == report.measurements
    assert set(json.loads(report.model_dump_json())["measurements"]) == set(MEASUREMENT_KEYS)


@pytest.mark.parametrize(
    "spec, impression",
    [
        (SyntheticSpec(), "Sinus rhythm. Normal ECG."),
        (SyntheticSpec(heart_rate_bpm=44), "Sinus bradycardia. Normal ECG."),
        (SyntheticSpec(pr_ms=240), "Sinus rhythm. First degree AV block. Otherwise normal ECG."),
        (
            SyntheticSpec(pvc_beats=(4,)),
            "Sinus rhythm with premature ventricular complexes. Otherwise normal ECG.",
        ),
        (SyntheticSpec(r_mv=3.0), "Sinus rhythm. Left ventricular hypertrophy. Abnormal ECG."),
        (SyntheticSpec(rhythm="atrial_fibrillation", seed=3), "Atrial fibrillation. Abnormal ECG."),
    ],
    ids=["normal", "brady", "1avb", "pvc", "lvh", "afib"],
)
def test_impression_reads_as_a_cardiologist_writes(spec: SyntheticSpec, impression: str) -> None:
    assert model.analyze(synthetic_ecg(spec)).impression == impression


def test_summary_shows_values_reasons_and_evidence() -> None:
    text = format_report(
        model.analyze(synthetic_ecg(SyntheticSpec(rhythm="atrial_fibrillation", seed=3)))
    )
    assert "Atrial fibrillation. Abnormal ECG." in text
    assert "PR              not measured: no P wave" in text
    assert "AFIB   Atrial fibrillation" in text
    assert "because irregularly irregular RR" in text


def test_cli_analyze_applies_the_site_rate_limits(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """LUDB 12 (53/min): sinus rhythm by the default 50/min, bradycardia by a 60/min site."""
    record = shared_data / "ludb" / "data" / "12"
    site = tmp_path / "gateway.yaml"
    site.write_text("rules:\n  bradycardia_bpm: 60\n")
    assert main(["analyze", str(record), "--json"]) == 0
    assert Report.model_validate_json(capsys.readouterr().out).codes[0] == "SR"
    assert main(["analyze", str(record), "--json", "--config", str(site)]) == 0
    report = Report.model_validate_json(capsys.readouterr().out)
    assert report.codes[0] == "SBRAD"
    assert report.statements[0].evidence.criterion.endswith("rate < 60/min")


def test_cli_analyze_wfdb_record(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = shared_data / "ptbxl" / "records500" / "00000" / "00001_hr"
    assert main(["analyze", str(record), "--json"]) == 0
    report = Report.model_validate_json(capsys.readouterr().out)
    assert report.codes == ["SR", "NORM"]
    assert report.source.format == "wfdb"
    assert main(["analyze", str(record)]) == 0
    assert "Sinus rhythm. Normal ECG." in capsys.readouterr().out
