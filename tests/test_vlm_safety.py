"""Text the VLM wrote that names no known ECG statement never becomes the interpretation.

The untaught tiny model (model/vlm/tiny_checkpoint.py) writes nonsense, as an untrained
or broken model does: through the real engine its report must be the measurement
engine's, flagged `engine-fallback` and saying why, or the job held where the site
chose `engine_unavailable: hold`. The tiny model taught one answer
(tests/vlm_support.py) is the positive control: its text is read and reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import model
from gateway.delivery import prepare
from gateway.routing import FileDestination
from model.engine import EngineChoice, Held
from model.report import MEASUREMENT_KEYS
from model.vlm.engine import VlmEngine
from model.vlm.page_image import load_page
from model.vlm.parse import parse_generated_text
from model.vlm.report import Generation, waveform_report
from model.vlm.settings import VlmSettings
from tests import dicom_samples as samples
from tests.test_engines import gateway_with

FAST = {"longest_edge": 512, "max_new_tokens": 16, "batch_size": 4}
GARBAGE = "ctlatera\ufffdsentst ECGINJLA"  # what the review saw become an impression


@pytest.fixture(scope="module")
def untaught(tiny: Path) -> VlmEngine:
    return VlmEngine(VlmSettings(model=str(tiny), **FAST))


@pytest.fixture(scope="module")
def ecg(shared_data: Path) -> model.Ecg:
    return model.load(shared_data / "ptbxl/records500/00000/00001_hr")


def assert_measurement_fallback(report, measured) -> None:
    assert report.statements == measured.statements
    assert report.impression == measured.impression
    assert report.engine == measured.engine  # says what produced it: the measurement engine
    assert "engine-fallback" in report.source.quality_flags
    notice = [w for w in report.warnings if "names no recognised ECG statement" in w]
    assert notice and "this report is from the measurement engine" in notice[0]


def test_garbage_text_gives_the_measurement_engines_interpretation(untaught: VlmEngine, ecg):
    measured = model.analyze(ecg)
    report = waveform_report(measured, Generation(GARBAGE, 9, False), untaught.info, hybrid=True)
    assert_measurement_fallback(report, measured)
    assert "ctlatera" not in report.impression and "ECGINJLA" not in report.impression
    assert report.measurements == measured.measurements
    assert report.generated_text == GARBAGE  # kept for audit, never as the interpretation
    assert any("limit of 9 new tokens" in w for w in report.warnings)


def test_the_untaught_models_nonsense_falls_back_through_the_engine(untaught: VlmEngine, ecg):
    report = untaught.interpret(ecg)
    assert not parse_generated_text(report.generated_text).readable  # it wrote nonsense
    assert_measurement_fallback(report, model.analyze(ecg))


def test_hold_returns_held_instead_of_a_report(tiny: Path, ecg, shared_data: Path):
    holding = VlmEngine(VlmSettings(model=str(tiny), **FAST), on_unreadable="hold")
    scan = load_page(shared_data / "images/ecg-image-kit/ecg00003.png")
    results = holding.interpret_batch([ecg, scan])
    assert all(isinstance(r, Held) for r in results)
    assert "names no recognised ECG statement" in results[0].reason
    with pytest.raises(ValueError, match="on_unreadable"):
        VlmEngine(VlmSettings(model=str(tiny), **FAST), on_unreadable="ignore")


def test_an_unreadable_page_gets_no_interpretation(untaught: VlmEngine, shared_data: Path):
    report = untaught.interpret_image(load_page(shared_data / "images/ecg-image-kit/ecg00003.png"))
    assert report.statements == [] and report.codes == []
    assert report.impression.startswith("No automated interpretation")
    assert "engine-fallback" in report.source.quality_flags
    assert report.null_reasons.keys() == set(MEASUREMENT_KEYS)
    assert any("carries no interpretation" in w for w in report.warnings)


def test_lines_the_parser_cannot_read_stay_out_of_the_impression(untaught: VlmEngine, ecg):
    measured = model.analyze(ecg)
    text = f"Rhythm: sinus rhythm.\n{GARBAGE}\nAxis: normal axis.\nMeasurements: PR 160 ms."
    report = waveform_report(measured, Generation(text, 30, True), untaught.info, hybrid=False)
    assert report.codes == ["SR"] and report.engine == untaught.info
    assert report.impression == "Rhythm: sinus rhythm. Axis: normal axis."
    assert "1 line(s) of the generated text name no recognised ECG statement" in " ".join(
        report.warnings
    )


def test_readable_text_is_the_interpretation(taught: Path, ecg):
    """The positive control: a model whose text parses writes the report."""
    engine = VlmEngine(VlmSettings(model=str(taught), **{**FAST, "max_new_tokens": 24}))
    report = engine.interpret(ecg)
    assert report.engine.name == "vlm" and report.codes == ["SR", "NORM"]
    assert "engine-fallback" not in report.source.quality_flags


@pytest.mark.parametrize("on_unavailable", ["fallback", "hold"])
def test_the_gateway_follows_engine_unavailable(tmp_path, tiny, shared_data, on_unavailable):
    """Through intake, the workers and delivery: the EHR gets the measurement engine's
    impression (fallback) or nothing yet, the job held with its reason (hold)."""
    settings = VlmSettings(model=str(tiny), mode="hybrid", **FAST)
    gw = gateway_with(tmp_path / "data", EngineChoice("hybrid", settings, on_unavailable))
    job_id = gw.receive(shared_data / samples.VENDOR_ECG)
    assert gw.pipeline.run_once("test-worker")
    job = gw.store.get_job(job_id)
    if on_unavailable == "hold":
        assert job.state == "queued" and job.attempts == 0
        assert job.error.startswith("held: hybrid engine: the hybrid engine's text")
        assert gw.store.list_deliveries() == []  # nothing reached the EHR
    else:
        assert job.state == "done", job.error
        package = gw.package(job_id)
        measured = model.analyze(model.load(shared_data / samples.VENDOR_ECG))
        assert package.report.impression == measured.impression
        assert package.report.codes == measured.codes
        assert "engine-fallback" in package.report.source.quality_flags
        outbox = FileDestination(type="file", directory=str(tmp_path / "outbox"))
        fhir = prepare("outbox", outbox, package)[".fhir.json"].decode()
        assert json.dumps(measured.impression) in fhir
        assert package.report.generated_text not in fhir  # the model's words stay out
    gw.store.close()
