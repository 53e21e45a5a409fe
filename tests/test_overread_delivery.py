"""Each version a physician makes reaches the EHR as an update of the same report: a
real MLLP peer (python-hl7's server) receives ORU^R01 with OBR-25 P, then F, then C,
and the FHIR test server holds one DiagnosticReport that goes from preliminary to final
to corrected, with the confirming physician as its results interpreter. On both store
backends, through the real store, routing and delivery sweeper."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import hl7
import pydicom
import pytest
from gateway_process import free_port
from overread_support import JONES, SMITH, Site
from peers import DcmtkArchive, FhirTestServer, Hl7TestPeer

from gateway.overread import ReportEdit, StatementEdit


def _results(message: hl7.Message) -> set[str]:
    """OBX-11 of the rows carrying a result (not the X of a value not measured, nor the D
    deleting a row an earlier version sent)."""
    return {str(s[11]) for s in message.segments("OBX") if str(s[11]) not in ("X", "D")}


def _confirm_and_correct(backend, request, tmp_path, shared_data, ehr, ris) -> None:
    """A real ECG sent preliminary, then confirmed by Smith, then corrected by Jones."""
    routes = (
        "destinations:\n"
        f"  ehr: {{type: fhir, endpoint: '{ehr.base_url}', timeout_s: 5}}\n"
        f"  ris: {{type: hl7, endpoint: 'mllp://127.0.0.1:{ris.port}', timeout_s: 5}}\n"
        "default: [ehr, ris]\n"
    )
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    site = Site(tmp_path / "data", url, routes)
    try:
        job_id = site.receive(shared_data)
        assert site.sweeper.sweep().sent == 2
        edit = ReportEdit(
            [StatementEdit("AFIB"), StatementEdit("LVH")], "Atrial fibrillation. LVH."
        )
        site.service.confirm(job_id, SMITH, edit, base_version=1)
        assert site.sweeper.sweep().sent == 2
        correction = ReportEdit([StatementEdit("AFLT")], "Atrial flutter.")
        site.service.confirm(job_id, JONES, correction, base_version=2)
        assert site.sweeper.sweep().sent == 2
    finally:
        site.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_final_and_corrected_versions_update_the_report_at_the_ehr(
    backend, request, tmp_path, shared_data
):
    ehr, ris = FhirTestServer().start(), Hl7TestPeer().start()
    try:
        _confirm_and_correct(backend, request, tmp_path, shared_data, ehr, ris)
    finally:
        ris.stop()
        ehr.stop()

    assert [str(m.segment("OBR")[25]) for m in ris.received] == ["P", "F", "C"]
    assert [_results(m) for m in ris.received] == [{"P"}, {"F"}, {"C"}]
    final, corrected = ris.received[1], ris.received[2]
    assert "Smith" in str(final.segment("OBR")[32]) and "smith" in str(final.segment("OBR")[32])
    assert "Jones" in str(corrected.segment("OBR")[32])
    placer = {str(m.segment("OBR")[3]) for m in ris.received}
    assert len(placer) == 1  # one report, updated: the same filler number each time
    assert "Atrial flutter." in str(corrected)

    assert ehr.rejections == []
    [report] = ehr.resources("DiagnosticReport")
    assert report["status"] == "corrected"
    assert report["conclusion"].startswith("Atrial flutter.")
    assert report["resultsInterpreter"][0]["reference"].startswith("Practitioner/")
    assert len(ehr.resources("Practitioner")) == 2  # Smith confirmed, Jones corrected
    assert len(ehr.transactions) == 3


def _stored_srs(received: Path) -> dict[str, pydicom.Dataset]:
    """The SRs the archive holds, by the impression each states."""
    srs = [pydicom.dcmread(p) for p in received.iterdir()]
    return {_impression(ds): ds for ds in srs if ds.Modality == "SR"}


def _impression(sr: pydicom.Dataset) -> str:
    [summary] = [
        c for c in sr.ContentSequence if c.ConceptNameCodeSequence[0].CodeMeaning == "Summary"
    ]
    return next(
        c.TextValue
        for c in summary.ContentSequence
        if c.ConceptNameCodeSequence[0].CodeMeaning == "Impression"
    )


def _predecessor_uid(sr: pydicom.Dataset) -> str | None:
    if "PredecessorDocumentsSequence" not in sr:
        return None
    [study] = sr.PredecessorDocumentsSequence
    [series] = study.ReferencedSeriesSequence
    [instance] = series.ReferencedSOPSequence
    assert instance.ReferencedSOPClassUID == sr.SOPClassUID
    assert (study.StudyInstanceUID, series.SeriesInstanceUID) == (
        sr.StudyInstanceUID,
        sr.SeriesInstanceUID,
    )
    return instance.ReferencedSOPInstanceUID


@pytest.mark.skipif(shutil.which("storescp") is None, reason="dcmtk not installed")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_corrected_sr_names_the_sr_it_supersedes_at_the_archive(
    backend, request, tmp_path, shared_data
):
    """dcmtk's storescp receives the preliminary, the final and the corrected SR; each
    later one references the one sent before it (Predecessor Documents Sequence), which
    dciodvfy accepts. A version superseded before it was sent is never referenced."""
    archive = DcmtkArchive(tmp_path / "archive", free_port())
    routes = (
        "destinations:\n"
        f"  pacs: {{type: dicom, endpoint: 'dicom://ARCHIVE@127.0.0.1:{archive.port}',"
        " timeout_s: 5}\n"
        "default: [pacs]\n"
    )
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    site = Site(tmp_path / "data", url, routes)
    try:
        job_id = site.receive(shared_data)
        machine_impression = site.service.view(job_id, SMITH).report.impression
        assert site.sweeper.sweep().sent == 1
        site.service.confirm(job_id, SMITH, ReportEdit([StatementEdit("AFIB")], "AF."), 1)
        assert site.sweeper.sweep().sent == 1
        site.service.confirm(job_id, JONES, ReportEdit([StatementEdit("AFLT")], "Flutter."), 2)
        site.service.confirm(job_id, SMITH, ReportEdit([StatementEdit("SR")], "Sinus."), 3)
        assert site.sweeper.sweep().sent == 1  # version 3 superseded before it went out
    finally:
        site.close()
        archive.stop()

    srs = _stored_srs(archive.received)
    assert sorted(srs) == sorted([machine_impression, "AF.", "Sinus."])  # not "Flutter."
    preliminary, final, last = srs[machine_impression], srs["AF."], srs["Sinus."]
    assert preliminary.VerificationFlag == "UNVERIFIED"
    assert _predecessor_uid(preliminary) is None
    assert _predecessor_uid(final) == preliminary.SOPInstanceUID
    assert _predecessor_uid(last) == final.SOPInstanceUID  # not version 3's: never stored
    if shutil.which("dciodvfy"):
        path = tmp_path / "last-sr.dcm"
        last.save_as(path)
        check = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True)
        assert "Error" not in check.stdout + check.stderr
