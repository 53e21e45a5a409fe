"""The file outbox: four files per ECG, each readable by its format's library,
written so that a reader never sees half a file; a confirmed report's replace them."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import hl7
import pytest
from delivery_support import ORDER, package, send_now
from example_reports import afib_report, confirmed, critical_afib_report
from fhir.resources.R4B.bundle import Bundle
from pypdf import PdfReader

import model
from gateway.delivery import deliver_once, open_sender
from gateway.delivery.hl7 import control_id
from gateway.durable import unfinished_folder
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


def test_the_final_report_replaces_the_preliminary_in_every_file(
    shared_data: Path, tmp_path: Path
) -> None:
    """Status, interpreter, order and critical findings in the FHIR JSON, the HL7 and the
    printout; the final's files replace the preliminary's (same names)."""
    ecg = model.load(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")
    preliminary = package(shared_data, report=critical_afib_report(), order=ORDER)
    deliver_once(preliminary, "outbox", _outbox(tmp_path))
    final = replace(preliminary, report=confirmed(critical_afib_report()))
    final.pdf = model.render_pdf(ecg, report=final.report)
    deliver_once(final, "outbox", _outbox(tmp_path))
    uid = final.metadata.sop_instance_uid
    assert len(os.listdir(tmp_path)) == 4
    bundle = Bundle.model_validate_json((tmp_path / f"{uid}.fhir.json").read_bytes())
    [report] = [
        e.resource for e in bundle.entry if e.resource.get_resource_type() == "DiagnosticReport"
    ]
    assert report.status == "final"
    assert report.basedOn[0].identifier.value == "PO-1001"
    assert report.resultsInterpreter[0].reference.startswith("urn:uuid:")
    assert report.conclusion.startswith("CRITICAL: ")
    message = hl7.parse((tmp_path / f"{uid}.hl7").read_bytes().decode())  # CRs kept
    obr = message.segment("OBR")
    assert (str(obr[2]), str(obr[25]), str(obr[32][0][0][0])) == ("PO-1001^EPIC", "F", "dr.jones")
    assert "AA" in {str(obx[8]) for obx in message.segments("OBX")}
    printout = " ".join(
        " ".join(page.extract_text().split())
        for page in PdfReader(io.BytesIO((tmp_path / f"{uid}.pdf").read_bytes())).pages
    )
    assert "FINAL report, confirmed by Dr Alice M Jones (dr.jones)" in printout
    assert "CRITICAL: QTc 550 ms" in printout


def _write_until_killed(directory: Path, size: int) -> int:
    """Run the outbox's write_files in a process that the kernel kills mid-write (SIGXFSZ:
    its file size limit, 1000 bytes, is hit inside a `size`-byte file); its exit code."""
    script = (
        "import resource, signal, sys; from pathlib import Path;"
        " from gateway.durable import write_files;"
        " signal.signal(signal.SIGXFSZ, signal.SIG_DFL);"  # Python ignores it: a kill again
        " resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000));"
        " write_files(Path(sys.argv[1]), {'report.pdf': b'%' * int(sys.argv[2])})"
    )
    done = subprocess.run([sys.executable, "-c", script, str(directory), str(size)], check=False)
    return done.returncode


def test_a_writer_killed_mid_write_leaves_no_partial_file_in_the_drop_folder(
    shared_data: Path, tmp_path: Path
) -> None:
    """A collector that takes every file of the drop folder must never find half of one:
    the temporary files are written in a sibling folder on the same file system and
    renamed in. A killed writer's leftover there is removed by a later write once older
    than any live write."""
    drop = tmp_path / "drop"
    drop.mkdir()
    assert _write_until_killed(drop, 100_000) == -signal.SIGXFSZ
    assert list(drop.iterdir()) == []
    [partial] = list((tmp_path / ".drop.partial").iterdir())
    assert partial.stat().st_size == 1000  # the killed writer's half-written file

    pkg = package(shared_data)
    deliver_once(pkg, "outbox", _outbox(drop))
    assert len(os.listdir(drop)) == 4 and partial.exists()  # it might still be written
    os.utime(partial, (time.time() - 3600, time.time() - 3600))
    deliver_once(pkg, "outbox", _outbox(drop))
    assert list((tmp_path / ".drop.partial").iterdir()) == []
    assert sorted(os.listdir(drop)) == sorted(
        f"{pkg.metadata.sop_instance_uid}{s}" for s in (".fhir.json", ".hl7", ".png", ".pdf")
    )


def test_a_drop_folder_on_a_file_system_of_its_own_gets_its_temporary_files_inside(
    tmp_path: Path,
) -> None:
    """A rename cannot cross file systems: where the drop folder is a mount point (here
    /dev/shm, a tmpfs of its own), the temporary files go to a hidden `.partial` folder
    inside it."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(shm.parent).st_dev:
        pytest.skip("no /dev/shm mount point here")
    if (shm / ".partial").exists():
        pytest.skip("/dev/shm/.partial is in use")
    folder = unfinished_folder(shm)
    try:
        assert folder == shm / ".partial"
    finally:
        folder.rmdir()
