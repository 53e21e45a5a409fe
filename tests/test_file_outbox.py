"""The file outbox: four files per ECG, each readable by its format's library,
written so that a reader never sees half a file."""

from __future__ import annotations

import os
from pathlib import Path

import hl7
from delivery_support import package, send_now
from example_reports import afib_report
from fhir.resources.R4B.bundle import Bundle

from gateway.delivery import deliver_once, open_sender
from gateway.delivery.hl7 import control_id
from gateway.routing import FileDestination


def _outbox(directory: Path, **extra) -> FileDestination:
    return FileDestination.model_validate({"type": "file", "directory": str(directory), **extra})


def test_writes_fhir_hl7_png_and_pdf_named_by_sop_instance_uid(
    shared_data: Path, tmp_path: Path
) -> None:
    pkg = package(shared_data, report=afib_report())
    uid = pkg.metadata.sop_instance_uid
    receipt = deliver_once(pkg, "outbox", _outbox(tmp_path / "outbox"))
    assert receipt.startswith("wrote ")
    names = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert names == sorted(f"{uid}{s}" for s in (".fhir.json", ".hl7", ".png", ".pdf"))
    bundle = Bundle.model_validate_json((tmp_path / "outbox" / f"{uid}.fhir.json").read_bytes())
    report = next(
        e.resource for e in bundle.entry if e.resource.get_resource_type() == "DiagnosticReport"
    )
    assert report.conclusion == pkg.report.impression
    assert report.presentedForm[0].data == pkg.pdf  # fhir.resources decodes base64Binary
    message = hl7.parse((tmp_path / "outbox" / f"{uid}.hl7").read_text(encoding="utf-8"))
    assert str(message.segment("MSH")[10]) == control_id(pkg, "outbox")
    assert (tmp_path / "outbox" / f"{uid}.png").read_bytes() == pkg.png
    assert (tmp_path / "outbox" / f"{uid}.pdf").read_bytes() == pkg.pdf


def test_resend_replaces_files_whole_and_leaves_no_temporary_files(
    shared_data: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "outbox"
    first = package(shared_data)
    deliver_once(first, "outbox", _outbox(directory))
    inode_before = (directory / f"{first.metadata.sop_instance_uid}.hl7").stat().st_ino
    corrected = package(shared_data, report=afib_report())
    deliver_once(corrected, "outbox", _outbox(directory))
    hl7_file = directory / f"{first.metadata.sop_instance_uid}.hl7"
    assert "Atrial fibrillation" in hl7_file.read_text(encoding="utf-8")
    assert hl7_file.stat().st_ino != inode_before  # renamed into place, not rewritten in place
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []
    assert len(os.listdir(directory)) == 4


def test_formats_choose_the_files(shared_data: Path, tmp_path: Path) -> None:
    pkg = package(shared_data)
    sender = open_sender("drop", _outbox(tmp_path, formats=["hl7", "pdf"]))
    send_now(sender, pkg)
    sender.close()
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".hl7", ".pdf"]


def test_scanned_ecg_without_rendering_writes_the_received_image(
    shared_data: Path, tmp_path: Path
) -> None:
    pkg = package(shared_data)
    pkg.kind = "secondary-capture"
    pkg.source_image, pkg.source_image_type = pkg.png, "image/png"
    pkg.png = None
    deliver_once(pkg, "outbox", _outbox(tmp_path, formats=["png", "fhir"]))
    uid = pkg.metadata.sop_instance_uid
    assert (tmp_path / f"{uid}.png").read_bytes() == pkg.source_image
    bundle = Bundle.model_validate_json((tmp_path / f"{uid}.fhir.json").read_bytes())
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert "Media" in kinds
