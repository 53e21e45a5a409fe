"""Report packages for the routing and delivery tests, built from real files:
the acquisition context of a real DICOM ECG, a real ECG image and a PDF of it."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pydicom
from PIL import Image

from gateway.delivery import Sender, prepare
from gateway.processing.package import Association, ReportPackage
from gateway.processing.received_pages import metadata_from_dataset
from model.ecg import EcgMetadata
from model.report import EngineInfo, Evidence, Measurements, Report, Statement

DICOM_ECG = "vendor/dicom/guangxi_teaching_sinus_rhythm.dcm"
ECG_IMAGE = "images/ecg-image-kit/ecg00015.png"


def real_metadata(data: Path) -> EcgMetadata:
    """The patient, study and device modules of the real DICOM ECG."""
    ds = pydicom.dcmread(data / DICOM_ECG, stop_before_pixels=True)
    return metadata_from_dataset(ds).with_updates(source_format="dicom")


def real_image(data: Path) -> tuple[bytes, bytes]:
    """(PNG, PDF) of a real photographed 12-lead ECG."""
    png = (data / ECG_IMAGE).read_bytes()
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, format="PDF")
    return png, buffer.getvalue()


def afib_report() -> Report:
    """What the rule engine reports for atrial fibrillation with a long QT."""
    return Report(
        measurements=Measurements(
            heart_rate_bpm=112.4,
            rr_ms=534.0,
            qrs_ms=96.0,
            qt_ms=402.0,
            qtc_bazett_ms=550.2,
            qtc_fridericia_ms=497.0,
            qrs_axis_deg=-12.0,
            t_axis_deg=48.0,
        ),
        null_reasons={
            "pr_ms": "no consistent P waves (atrial fibrillation)",
            "p_axis_deg": "no consistent P waves",
            "p_duration_ms": "no P waves",
        },
        statements=[
            Statement(
                code="AFIB",
                text="Atrial fibrillation",
                snomed="164889003",
                evidence=Evidence(criterion="irregular RR without P waves", values={"rr_cv": 0.21}),
            ),
            Statement(code="LNGQT", text="Long QT interval", snomed="111975006"),
            Statement(code="ISC_", text="Non-specific ischemic changes"),
        ],
        impression="Atrial fibrillation with rapid ventricular response. Long QT.",
        engine=EngineInfo(name="measure", version="test"),
    )


def sinus_report() -> Report:
    return Report(
        measurements=Measurements(
            heart_rate_bpm=64.0,
            rr_ms=938.0,
            p_duration_ms=104.0,
            pr_ms=156.0,
            qrs_ms=88.0,
            qt_ms=392.0,
            qtc_bazett_ms=405.0,
            qtc_fridericia_ms=400.0,
            p_axis_deg=52.0,
            qrs_axis_deg=38.0,
            t_axis_deg=41.0,
        ),
        statements=[
            Statement(code="SR", text="Sinus rhythm", snomed="426783006"),
            Statement(code="NORM", text="Normal ECG"),
        ],
        impression="Sinus rhythm. Normal ECG.",
        engine=EngineInfo(name="measure", version="test"),
    )


def package(
    data: Path,
    *,
    job_id: int = 1,
    report: Report | None = None,
    uid_suffix: str = "",
    calling_ae: str = "CART1",
    **metadata_changes,
) -> ReportPackage:
    meta = real_metadata(data)
    if uid_suffix:
        metadata_changes.setdefault("sop_instance_uid", f"{meta.sop_instance_uid}.{uid_suffix}")
    png, pdf = real_image(data)
    return ReportPackage(
        job_id=job_id,
        kind="ecg-waveform",
        metadata=replace(meta, **metadata_changes),
        report=report or sinus_report(),
        association=Association(calling_ae, "ECGGW", "127.0.0.1"),
        png=png,
        pdf=pdf,
    )


def send_now(sender: Sender, pkg: ReportPackage) -> str:
    """Prepare and send in this thread, as the sweeper does without a formatting process."""
    return sender.send(pkg, prepare(sender.name, sender.destination, pkg))
