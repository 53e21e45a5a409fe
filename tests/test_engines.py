"""The gateway's engines: vlm and hybrid from gateway.yaml, and what the workers do when
the configured model cannot be loaded (fall back to measuring, saying so; or hold jobs).

Objects enter through the real Intake and the pipeline runs them in-thread, as in
tests/test_pipeline.py; the VLM is the tiny SmolVLM-shaped checkpoint built locally.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

import model
from gateway import metrics as m
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.delivery import prepare
from gateway.processing.package import ReportPackage
from gateway.processing.workers import Workers, WorkerSettings
from gateway.routing import FileDestination, Router
from gateway.server import engine_choice, job_lease_s
from gateway.store import SqliteStore
from model.ecg import Ecg
from model.engine import Engine, EngineChoice, engine_for
from model.measurement_engine import FallbackEngine, MeasurementEngine
from model.report import Report
from model.statement_limits import StatementLimits
from model.vlm.page_image import PageImage
from model.vlm.settings import VlmSettings
from tests import dicom_samples as samples
from tests.gateway_process import GatewayProcess
from tests.test_pipeline import Gateway

FAST = {"longest_edge": 512, "max_new_tokens": 24}


@pytest.fixture
def vendor(shared_data: Path) -> Path:
    return shared_data / samples.VENDOR_ECG


def gateway_with(data_dir: Path, choice: EngineChoice, hold_retry_s: float = 60.0) -> Gateway:
    gw = Gateway(data_dir)
    gw.pipeline = Workers(
        gw.store,
        Router(data_dir / "no-routes.yaml", data_dir, optional=True),
        WorkerSettings(
            reports_dir=gw.reports, engine=choice, retry_delay_s=0.0, hold_retry_s=hold_retry_s
        ),
        gw.metrics,
    )
    return gw


def test_hybrid_engine_writes_the_report_of_a_dicom_ecg(tmp_path, taught, vendor):
    settings = VlmSettings(model=str(taught), mode="hybrid", **FAST)
    gw = gateway_with(tmp_path / "data", EngineChoice("hybrid", settings))
    job_id = gw.receive(vendor)
    gw.process_all()
    job = gw.store.get_job(job_id)
    assert job.state == "done", job.error
    report = gw.package(job_id).report
    assert report.engine.name == "hybrid"
    assert report.engine.version == taught.name  # the label names the model that ran
    assert report.codes == ["SR", "NORM"]  # its own text, read
    assert report.measurements.heart_rate_bpm is not None  # measured values fill the fields
    assert "engine-fallback" not in report.source.quality_flags
    gw.store.close()


def test_missing_model_falls_back_to_measuring_and_every_report_says_so(tmp_path, vendor, caplog):
    missing = tmp_path / "no-such-model"
    settings = VlmSettings(model=str(missing), mode="vlm", **FAST)
    gw = gateway_with(tmp_path / "data", EngineChoice("vlm", settings, "fallback"))
    job_id = gw.receive(vendor)
    with caplog.at_level(logging.ERROR, logger="model.engine"):
        gw.process_all()
    job = gw.store.get_job(job_id)
    assert job.state == "done", job.error
    report = gw.package(job_id).report
    assert report.engine.name == "measure"
    assert "engine-fallback" in report.source.quality_flags
    assert (
        "the configured vlm engine could not be loaded; this report is from the measurement"
        " engine" in report.warnings
    )
    assert not any(str(missing) in w for w in report.warnings)  # the why is for the log
    assert str(missing) in caplog.text and "ecg-gateway model tiny" in caplog.text
    outbox = FileDestination(type="file", directory=str(tmp_path / "outbox"))
    delivered = prepare("outbox", outbox, gw.package(job_id))  # what the EHR receives
    assert b"the configured vlm engine could not be loaded; this report is from" in (
        next(s for s in delivered[".hl7"].split(b"\r") if s.startswith(b"NTE|1|L|Technical"))
    )
    assert b"this report is from the measurement engine" in delivered[".fhir.json"]
    gw.store.close()


def test_held_jobs_wait_visibly_and_run_once_the_model_is_provided(tmp_path, taught, vendor):
    model_dir = tmp_path / "model"
    settings = VlmSettings(model=str(model_dir), mode="hybrid", **FAST)
    gw = gateway_with(tmp_path / "data", EngineChoice("hybrid", settings, "hold"), hold_retry_s=0.0)
    job_id = gw.receive(vendor)
    assert gw.pipeline.run_once("test-worker")
    held = gw.store.get_job(job_id)
    assert held.state == "queued" and held.attempts == 0
    assert held.error.startswith("held: hybrid engine unavailable") and str(model_dir) in held.error
    assert gw.metrics.get(m.JOBS_HELD) == 1
    assert gw.store.list_deliveries() == []  # nothing was reported with another engine

    shutil.copytree(taught, model_dir)
    gw.process_all()
    job = gw.store.get_job(job_id)
    assert job.state == "done" and job.attempts == 1
    assert gw.package(job_id).report.engine.name == "hybrid"
    assert len(gw.store.list_deliveries()) == 1
    gw.store.close()


def test_engine_from_gateway_yaml_with_its_vlm_settings(tmp_path, tiny):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"engine: hybrid\nengine_unavailable: hold\nvlm:\n  model: {tiny}\n"
        "  longest_edge: 1024\n  batch_size: 4\n"
    )
    config = load_config(path)
    choice = engine_choice(config)
    assert choice.name == "hybrid" and choice.on_unavailable == "hold"
    assert choice.vlm.mode == "hybrid" and choice.vlm.longest_edge == 1024
    assert config.with_overrides(port=4242).vlm_settings == choice.vlm


def test_missing_model_is_reported_at_start_not_on_the_first_ecg(tmp_path, caplog):
    config = GatewayConfig(engine="vlm", vlm={"model": str(tmp_path / "absent")})
    with caplog.at_level(logging.ERROR, logger="gateway.server"):
        engine_choice(config)
    assert "cannot be loaded" in caplog.text and str(tmp_path / "absent") in caplog.text
    assert "measurement engine runs instead" in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("engine: gpt\n", "line 1: engine"),
        ("engine: vlm\nvlm:\n  longest_edge: 1000\n", "line 3: vlm.longest_edge"),
        ("engine: vlm\nvlm:\n  mode: hybrid\n", "contradicts engine 'vlm'"),
        ("engine_unavailable: retry\n", "line 1: engine_unavailable"),
    ],
)
def test_bad_engine_settings_name_the_field_and_line(tmp_path, text, expected):
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        load_config(path)


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed")
def test_running_gateway_with_hybrid_engine_reports_an_ecg_from_storescu(tmp_path, taught, vendor):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"engine: hybrid\nworkers: 1\nroutes_optional: true\nvlm:\n  model: {taught}\n"
        "  longest_edge: 512\n  max_new_tokens: 24\n"
    )
    server = GatewayProcess(tmp_path / "data", config=config).start()
    try:
        sent = subprocess.run(
            ["storescu", "-aet", "CART1", "127.0.0.1", str(server.port), str(vendor)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        assert server.wait_until_processed(1) == {"done": 1}
        assert server.terminate() == 0
    finally:
        server.stop_if_running()
    store = SqliteStore(tmp_path / "data" / "gateway.sqlite3")
    [job] = store.list_jobs()
    store.close()
    assert ReportPackage.load(Path(job.report_dir)).report.engine.name == "hybrid"


def test_a_routes_rule_chooses_the_engine_from_the_header_before_interpretation(
    tmp_path, taught, vendor
):
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "destinations:\n  drop: {type: file, directory: outbox}\n"
        "rules:\n"
        "  - name: other-carts\n    match: {calling_ae: MUSE*}\n    engine: vlm\n"
        "    destinations: [drop]\n"
        "  - name: ecg-modality\n    match: {modality: ECG, kind: ecg-waveform}\n"
        "    engine: hybrid\n    destinations: [drop]\n"
        "default: [drop]\n"
    )
    data_dir = tmp_path / "data"
    gw = gateway_with(data_dir, EngineChoice())  # gateway.yaml: engine measure
    gw.pipeline = Workers(
        gw.store,
        Router(routes, data_dir),
        WorkerSettings(
            reports_dir=gw.reports,
            engine=EngineChoice(),
            vlm=VlmSettings(model=str(taught), **FAST),
        ),
        gw.metrics,
    )
    job_id = gw.receive(vendor)
    gw.process_all()
    assert gw.store.get_job(job_id).state == "done"
    assert gw.package(job_id).report.engine.name == "hybrid"
    gw.store.close()


def test_the_job_lease_outlasts_a_vlm_generation():
    slow = GatewayConfig(engine="hybrid", vlm={"timeout_s": 600}, job_lease_s=300)
    assert job_lease_s(slow) >= 2 * 600
    assert job_lease_s(GatewayConfig(job_lease_s=300)) == 300


def test_queued_ecgs_are_interpreted_in_one_vlm_batch(tmp_path, taught, vendor, shared_data):
    settings = VlmSettings(model=str(taught), mode="vlm", batch_size=4, **FAST)
    gw = gateway_with(tmp_path / "data", EngineChoice("vlm", settings))
    job_ids = [
        gw.receive(vendor),
        gw.receive(samples.copy_with_new_uid(vendor, tmp_path / "second.dcm")),
        gw.receive(samples.secondary_capture_jpeg(shared_data, tmp_path / "photo.dcm")),
    ]
    assert gw.pipeline.run_once("test-worker")  # one lease round takes the whole queue
    jobs = [gw.store.get_job(job_id) for job_id in job_ids]
    assert [job.state for job in jobs] == ["done"] * 3, [job.error for job in jobs]
    assert gw.metrics.get(m.VLM_BATCHES) == 1
    reports = [gw.package(job_id).report for job_id in job_ids]
    assert {report.engine.name for report in reports} == {"vlm"}
    assert reports[0].measurements.heart_rate_bpm is not None
    assert reports[2].source.kind == "secondary-capture"
    assert reports[2].measurements.heart_rate_bpm is None  # a page: nothing measured
    gw.store.close()


def test_site_rate_limits_reach_the_pipeline_report(tmp_path, vendor):
    """The GE ECG at 97/min: sinus rhythm by default, tachycardia where a site says > 85/min."""
    reports = {}
    for name, limits in (
        ("default", StatementLimits()),
        ("site", StatementLimits(tachycardia_bpm=85)),
    ):
        gw = gateway_with(tmp_path / name, EngineChoice(limits=limits))
        job_id = gw.receive(vendor)
        gw.process_all()
        reports[name] = gw.package(job_id).report
        gw.store.close()
    assert reports["default"].codes[0] == "SR"
    assert reports["site"].codes[0] == "STACH"
    assert reports["site"].statements[0].evidence.criterion.endswith("rate > 85/min")


@pytest.mark.parametrize("key", ["statement_limits", "rules"])  # rules: the key's first name
def test_gateway_yaml_statement_limits_reach_the_engine_choice(tmp_path, key):
    path = tmp_path / "gateway.yaml"
    path.write_text(f"{key}:\n  bradycardia_bpm: 60\n")
    assert engine_choice(load_config(path)).limits == StatementLimits(bradycardia_bpm=60)


def _page() -> PageImage:
    return PageImage(Image.new("RGB", (640, 480), "white"), "secondary-capture", "image/png")


class _InterpretOnly:
    """The engine shape before the protocol had interpret_batch: not an Engine."""

    name = "old"
    reads_pages = False

    def interpret(self, ecg: Ecg) -> Report:
        raise NotImplementedError


def test_the_measurement_engines_honour_the_engine_protocol(vendor):
    """interpret_batch gives interpret's report per waveform, in order, and None per page."""
    ecg = model.load(vendor)
    assert not isinstance(_InterpretOnly(), Engine)
    for engine in (MeasurementEngine(), FallbackEngine("vlm")):
        assert isinstance(engine, Engine)
        single = engine.interpret(ecg)
        batch = engine.interpret_batch([ecg, _page(), ecg])
        assert len(batch) == 3 and batch[1] is None
        for report in (batch[0], batch[2]):
            assert report.model_dump(exclude={"created_at"}) == single.model_dump(
                exclude={"created_at"}
            )
    assert "engine-fallback" in FallbackEngine("vlm").interpret_batch([ecg])[0].source.quality_flags


def test_the_vlm_engine_honours_the_engine_protocol(taught, vendor):
    from model.vlm.engine import VlmEngine

    engine = engine_for(EngineChoice("vlm", VlmSettings(model=str(taught), mode="vlm", **FAST)))
    assert isinstance(engine, VlmEngine) and isinstance(engine, Engine)
    reports = engine.interpret_batch([model.load(vendor), _page()])
    assert [report.source.kind for report in reports] == ["ecg-waveform", "secondary-capture"]
    assert all(report.engine.name == "vlm" for report in reports)


def test_without_a_vlm_a_page_keeps_its_intake_report_beside_measured_ecgs(
    tmp_path, vendor, shared_data
):
    gw = gateway_with(tmp_path / "data", EngineChoice())
    ecg_id = gw.receive(vendor)
    page_id = gw.receive(samples.secondary_capture_native(shared_data, tmp_path / "scan.dcm"))
    gw.process_all()
    ecg_report, page_report = (gw.package(job_id).report for job_id in (ecg_id, page_id))
    assert ecg_report.engine.name == "measure" and ecg_report.measurements.heart_rate_bpm
    assert page_report.source.kind == "secondary-capture" and page_report.statements == []
    assert "received" in page_report.impression and "not available" in page_report.impression
    gw.store.close()
