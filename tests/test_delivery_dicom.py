"""The `dicom` route: the report stored by C-STORE to dcmtk's storescp as an Encapsulated
PDF and a TID 3700 ECG Report SR, read back with dsrdump and dcmdump; refusals and
silence are failures, permanent only where the archive will refuse the same object again."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from delivery_support import ORDER, package
from example_reports import afib_report, confirmed, critical_afib_report
from gateway_process import free_port
from peers import DcmtkArchive
from pydantic import ValidationError
from pynetdicom import AE, evt
from pynetdicom.sop_class import ComprehensiveSRStorage, EncapsulatedPDFStorage

import model
from gateway.delivery import DeliveryError, deliver_once, prepare
from gateway.delivery.base import object_uids
from gateway.delivery.dicom import PDF_PART, SR_PART
from gateway.delivery.hl7 import build_oru
from gateway.routing import DicomDestination, Hl7Options

pytestmark = pytest.mark.skipif(shutil.which("storescp") is None, reason="dcmtk not installed")


def destination(port: int, **extra) -> DicomDestination:
    return DicomDestination.model_validate(
        {"type": "dicom", "endpoint": f"dicom://ARCHIVE@127.0.0.1:{port}", "timeout_s": 5, **extra}
    )


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[callable]:
    archives: list[DcmtkArchive] = []

    def start(*options: str) -> tuple[int, Path]:
        received = tmp_path / f"archive-{len(archives)}"
        archives.append(DcmtkArchive(received, free_port(), *options))
        return archives[-1].port, received

    yield start
    for archive in archives:
        archive.stop()


@pytest.fixture
def report_package(shared_data: Path):
    pkg = package(
        shared_data, report=afib_report().model_copy(update={"warnings": ["lead V3 noisy"]})
    )
    ecg = model.load(shared_data / "ptbxl" / "records500" / "00000" / "00001_hr")
    pkg.pdf = model.render_pdf(ecg, report=pkg.report)
    return pkg


def received_files(directory: Path) -> dict[str, Path]:
    """Stored files by modality (storescp names them by SOP class)."""
    return {pydicom.dcmread(path).Modality: path for path in directory.iterdir()}


def test_the_archive_receives_the_pdf_and_an_sr_dsrdump_reads_back(
    storescp, report_package
) -> None:
    port, received = storescp()
    receipt = deliver_once(report_package, "archive", destination(port))
    assert receipt == f"C-STORE to ARCHIVE@127.0.0.1:{port}: stored {PDF_PART}, {SR_PART}"
    files = received_files(received)
    assert sorted(files) == ["DOC", "SR"]

    sr = subprocess.run(["dsrdump", files["SR"]], capture_output=True, text=True, check=True)
    text = sr.stdout
    for expected in (
        "Comprehensive SR Document",
        "Preliminary Flag    : PRELIMINARY",
        "Verification Flag   : UNVERIFIED",
        '<CONTAINER:(,,"ECG Report")=SEPARATE>',
        '<has obs context CODE:(,,"Observer Type")=(121007,DCM,"Device")>',
        '<has obs context TEXT:(,,"Device Observer Model Name")="engine measure test">',
        '<contains CONTAINER:(,,"ECG Global Measurements")=SEPARATE>',
        '<contains NUM:(,,"Heart rate")="112.4" (/min,UCUM,"/min")>',
        '<contains NUM:(,,"QRS duration global")="96" (ms,UCUM,"millisecond")>',
        '<contains NUM:(,,"QTc global using Bazett formula")="550.2" (ms,UCUM,"millisecond")>',
        '<contains NUM:(,,"QRS axis")="-12" (deg,UCUM,"Degree")>',
        '<contains CODE:(,,"Finding")=(164889003,SCT,"Atrial fibrillation")>',
        '<contains CODE:(,,"Finding")=(111975006,SCT,"Long QT interval")>',
        '<contains TEXT:(,,"Finding")="Non-specific ischemic chang...">',
        '<contains TEXT:(,,"Impression")="Atrial fibrillation with ra...">',
    ):
        assert expected in text, expected
    assert "PR interval" not in text  # not measured (AF): left out, never a zero
    codes = subprocess.run(
        ["dsrdump", "+Pc", "+Pt", files["SR"]], capture_output=True, text=True, check=True
    ).stdout
    assert '(28010-7,LN,"ECG Report")' in codes and "TID 3700" in codes.replace("(DCMR)", "")
    assert '(2:16156,MDC,"QRS duration global")' in codes

    dump = subprocess.run(["dcmdump", files["DOC"]], capture_output=True, text=True, check=True)
    assert "=EncapsulatedPDFStorage" in dump.stdout
    assert "[application/pdf]" in dump.stdout and "[YES]" in dump.stdout
    stored = pydicom.dcmread(files["DOC"])
    pdf = bytes(stored.EncapsulatedDocument)[: stored.EncapsulatedDocumentLength]
    assert pdf == report_package.pdf
    meta = report_package.metadata
    for ds in (stored, pydicom.dcmread(files["SR"])):
        assert (ds.PatientID, ds.StudyInstanceUID) == (meta.patient_id, meta.study_instance_uid)


def test_a_resend_is_the_same_instance_a_correction_a_new_one_the_hl7_pointer_names_it(
    storescp, report_package
) -> None:
    port, received = storescp()
    first = prepare("archive", destination(port), report_package)
    again = prepare("archive", destination(port), report_package)
    assert first == again  # byte for byte: the archive sees the same instance again
    corrected = report_package.report.model_copy(update={"is_correction": True})
    report_package.report, original = corrected, report_package.report
    changed = prepare("archive", destination(port), report_package)
    report_package.report = original
    uid = pydicom.dcmread(io.BytesIO(first[PDF_PART])).SOPInstanceUID
    assert uid != pydicom.dcmread(io.BytesIO(changed[PDF_PART])).SOPInstanceUID

    deliver_once(report_package, "archive", destination(port, objects=["pdf"]))
    [stored] = received.iterdir()
    assert (
        pydicom.dcmread(stored).SOPInstanceUID == uid == object_uids(report_package, "pdf").instance
    )
    options = Hl7Options(pdf="reference", pdf_reference_application="ARCHIVE")
    assert f"|RP|11524-6^EKG study^LN|1|{uid}^ARCHIVE^AP^PDF|" in build_oru(
        report_package, options, "x"
    )


def test_a_received_picture_sends_only_the_sr(storescp, report_package) -> None:
    report_package.pdf = None
    port, received = storescp()
    deliver_once(report_package, "archive", destination(port))
    assert sorted(received_files(received)) == ["SR"]


def test_a_refused_association_or_nobody_listening_is_retried(storescp, report_package) -> None:
    port, _ = storescp("--refuse")
    # storescp --refuse answers A-ASSOCIATE-RJ and closes; on a loaded machine the close
    # can reach pynetdicom first, which then reports the association aborted
    with pytest.raises(
        DeliveryError, match=f"ARCHIVE@127.0.0.1:{port}: association (rejected|aborted)"
    ) as caught:
        deliver_once(report_package, "archive", destination(port))
    assert not caught.value.permanent
    with pytest.raises(DeliveryError, match="association") as caught:
        deliver_once(report_package, "archive", destination(free_port()))
    assert not caught.value.permanent


@pytest.mark.parametrize("status, permanent", [(0xA900, True), (0xC123, True), (0xA700, False)])
def test_a_refused_object_is_permanent_only_when_the_archive_will_refuse_it_again(
    report_package, status: int, permanent: bool
) -> None:
    """pynetdicom as the archive, answering every C-STORE with `status` and a comment that
    quotes the patient: the error names the status, not the patient."""
    archive = AE(ae_title="ARCHIVE")
    for context in (EncapsulatedPDFStorage, ComprehensiveSRStorage):
        archive.add_supported_context(context)
    patient_id = report_package.metadata.patient_id

    def refuse(event: evt.Event) -> pydicom.Dataset:
        assert event.dataset.PatientID == patient_id  # decoded, as an archive judges it
        return _status(status, f"patient {patient_id} unknown")

    port = free_port()
    server = archive.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, refuse)]
    )
    try:
        with pytest.raises(DeliveryError, match=f"refused with status 0x{status:04X}") as caught:
            deliver_once(report_package, "archive", destination(port))
    finally:
        server.shutdown()
    assert caught.value.permanent is permanent
    assert patient_id not in str(caught.value)


def _status(code: int, comment: str) -> pydicom.Dataset:
    status = pydicom.Dataset()
    status.Status = code
    status.ErrorComment = comment
    return status


def test_the_endpoint_is_checked_where_it_is_written() -> None:
    for bad in ("dicom://ARCHIVE@pacs", "dicom://@pacs:104", "mllp://pacs:104", "dicom://A@pacs:0"):
        with pytest.raises(ValidationError, match="dicom://CALLED_AE@host:port"):
            destination(0).model_validate({"type": "dicom", "endpoint": bad})
    with pytest.raises(ValidationError, match="objects"):
        destination(104, objects=[])
    assert destination(104).address == ("ARCHIVE", "127.0.0.1", 104)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools not installed")
def test_both_objects_pass_dicom3tools_iod_check(report_package, tmp_path: Path) -> None:
    """dciodvfy (a second, independent DICOM implementation) finds no error in either IOD:
    Encapsulated PDF and Comprehensive SR, every required module and attribute present."""
    for part, data in prepare("archive", destination(104), report_package).items():
        path = tmp_path / part
        path.write_bytes(data)
        check = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True)
        output = check.stdout + check.stderr
        assert "Error" not in output, output
        assert ("EncapsulatedPDF" if part == PDF_PART else "ComprehensiveSR") in output


# ------------------------------------------------ confirmed, ordered and critical reports


def _sr(pkg) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(prepare("archive", destination(104), pkg)[SR_PART]))


@pytest.mark.parametrize("status", ["final", "corrected", "amended"])
def test_a_confirmed_report_is_a_verified_final_sr_naming_the_physician(
    report_package, status: str
) -> None:
    report_package.report = confirmed(report_package.report, status)
    sr = _sr(report_package)
    assert (sr.VerificationFlag, sr.PreliminaryFlag, sr.CompletionFlag) == (
        "VERIFIED",
        "FINAL",
        "COMPLETE",
    )
    [verifier] = sr.VerifyingObserverSequence
    assert str(verifier.VerifyingObserverName) == "Jones^Alice^M^Dr"
    assert verifier.VerificationDateTime == "20261206213005+0000"
    assert verifier.VerifyingOrganization == (
        report_package.metadata.institution_name or "ECG Gateway"
    )
    [user] = verifier.VerifyingObserverIdentificationCodeSequence
    assert (user.CodeValue, user.CodingSchemeDesignator) == ("dr.jones", "99ECGGW")


def test_a_preliminary_sr_names_no_verifier_and_no_request(report_package) -> None:
    sr = _sr(report_package)
    assert (sr.VerificationFlag, sr.PreliminaryFlag) == ("UNVERIFIED", "PRELIMINARY")
    assert "VerifyingObserverSequence" not in sr and "ReferencedRequestSequence" not in sr


def test_an_ordered_ecgs_sr_references_the_request(report_package) -> None:
    report_package.order = ORDER
    [request] = _sr(report_package).ReferencedRequestSequence
    assert request.StudyInstanceUID == report_package.metadata.study_instance_uid
    assert (request.AccessionNumber, request.PlacerOrderNumberImagingServiceRequest) == (
        "ACC-77",
        "PO-1001",
    )
    assert request.FillerOrderNumberImagingServiceRequest == "FO-77"
    assert request.OrderPlacerIdentifierSequence[0].LocalNamespaceEntityID == "EPIC"
    assert request.OrderFillerIdentifierSequence[0].LocalNamespaceEntityID == "ECGGW"
    [procedure] = request.RequestedProcedureCodeSequence
    assert (procedure.CodeValue, procedure.CodingSchemeDesignator) == ("93000", "C4")
    assert request.RequestedProcedureDescription == "Electrocardiogram, 12 lead"


def test_a_confirmed_ordered_critical_sr_reaches_the_archive_and_dsrdump_reads_it(
    storescp, report_package
) -> None:
    report_package.report = confirmed(critical_afib_report())
    report_package.order = ORDER
    port, received = storescp()
    deliver_once(report_package, "archive", destination(port, objects=["sr"]))
    [stored] = received.iterdir()
    text = subprocess.run(["dsrdump", stored], capture_output=True, text=True, check=True).stdout
    for expected in (
        "Preliminary Flag    : FINAL",
        "Verification Flag   : VERIFIED",
        "Jones^Alice^M^Dr",
        '<contains TEXT:(,,"Finding")="CRITICAL: Atrial fibrillati...">',
        '<contains TEXT:(,,"Comment")="Compared with the prior ECG...">',
    ):
        assert expected in text, expected


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools not installed")
@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("status", ["preliminary", "final", "corrected"])
def test_every_sr_variant_passes_dicom3tools_iod_check(
    report_package, tmp_path: Path, ordered: bool, status: str
) -> None:
    report = critical_afib_report()
    report_package.report = report if status == "preliminary" else confirmed(report, status)
    report_package.order = ORDER if ordered else None
    path = tmp_path / "sr.dcm"
    path.write_bytes(prepare("archive", destination(104), report_package)[SR_PART])
    check = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True)
    output = check.stdout + check.stderr
    assert "Error" not in output, output
    assert "ComprehensiveSR" in output


def test_an_order_number_too_long_for_its_vr_is_left_out_not_cut(report_package) -> None:
    report_package.order = replace(ORDER, accession_number="A" * 17, placer_order_number="P" * 65)
    [request] = _sr(report_package).ReferencedRequestSequence
    assert request.AccessionNumber == "" and request.PlacerOrderNumberImagingServiceRequest == ""
    assert request.FillerOrderNumberImagingServiceRequest == "FO-77"
